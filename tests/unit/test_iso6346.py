"""ISO 6346: check digit, parsing, size/type codes and OCR candidate correction."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.analyzers import iso6346
from appliance.analyzers.iso6346 import (
    SIMILAR,
    TO_DIGIT,
    TO_LETTER,
    best_size_type,
    candidates,
    check_digit,
    is_valid,
    is_valid_size_type,
    parse,
    parse_size_type,
    scored_candidates,
)


@pytest.mark.parametrize(
    ("letter", "value"),
    [("A", 10), ("B", 12), ("J", 20), ("K", 21), ("L", 23), ("T", 31), ("U", 32), ("V", 34), ("Z", 38)],
)
def test_letter_values_skip_multiples_of_eleven(letter: str, value: int) -> None:
    assert iso6346.LETTER_VALUES[letter] == value


@pytest.mark.parametrize(
    ("prefix", "digit"),
    [
        ("MWCU605978", 4),  # DOMAIN.md, matches prefixlist.com
        ("CSQU305438", 3),
        ("ABCD123456", 0),  # remainder 10 becomes 0
        ("XINU157721", 4),
        ("PCIU274312", 9),
        ("TEMU503702", 9),
        ("SEGU604789", 5),
        ("HALU208997", 6),
    ],
)
def test_check_digit_table(prefix: str, digit: int) -> None:
    assert check_digit(prefix) == digit
    well_formed = prefix[3] in "UJZ"  # ABCD is a check-digit example, not a number (category D)
    assert is_valid(prefix + str(digit)) is well_formed
    assert not is_valid(prefix + str((digit + 1) % 10))


@pytest.mark.parametrize("bad", ["MWCU60597", "MWCU6059784X", "MWC!605978", ""])
def test_check_digit_rejects_malformed_prefix(bad: str) -> None:
    with pytest.raises(ValueError):
        check_digit(bad)


@pytest.mark.parametrize(
    ("number", "valid"),
    [
        ("MWCU6059784", True),
        ("MWCU 605978 4", True),  # spaces as painted
        ("mwcu6059784", True),
        ("MWCU6059785", False),  # wrong check digit
        ("MWCX6059784", False),  # category must be U, J or Z
        ("MWC06059784", False),
        ("MWCU605978", False),
        ("MWCU60597844", False),
    ],
)
def test_is_valid(number: str, valid: bool) -> None:
    assert is_valid(number) is valid


def test_parse_splits_owner_category_serial_check() -> None:
    parsed = parse("CSQU 305438 3")
    assert (parsed.owner, parsed.category, parsed.serial, parsed.check) == ("CSQ", "U", "305438", 3)
    assert parsed.owner_code == "CSQU"
    assert parsed.number == "CSQU3054383"
    assert parsed.formatted() == "CSQU 305438 3"
    assert parsed.check_holds
    assert not parse("CSQU3054384").check_holds
    with pytest.raises(ValueError):
        parse("CSQX3054383")


@pytest.mark.parametrize("code", ["22G1", "42G1", "45G1", "22R1", "L5G1", "45R1", "22U1", "22T6", "42P1", "25G1"])
def test_valid_size_types(code: str) -> None:
    assert is_valid_size_type(code)


@pytest.mark.parametrize("code", ["22X1", "9ZG1", "2AG1", "22G9", "22G", "22G11", "", "ZZZZ"])
def test_invalid_size_types(code: str) -> None:
    assert not is_valid_size_type(code)


def test_size_type_fields() -> None:
    parsed = parse_size_type("45G1")
    assert parsed is not None
    assert (parsed.length, parsed.height, parsed.kind) == ("40ft", "9ft6in", "general purpose")
    l5 = parse_size_type("L5G1")
    assert l5 is not None and l5.length == "45ft"


@pytest.mark.parametrize(("text", "code"), [("22G1", "22G1"), ("4SG1", "45G1"), ("2ZG1", "22G1"), ("45GI", "45G1")])
def test_best_size_type_maps_look_alikes(text: str, code: str) -> None:
    found = best_size_type(text)
    assert found is not None and found[0] == code


def test_best_size_type_rejects_non_codes() -> None:
    assert best_size_type("AB12") is None
    assert best_size_type("22G1X") is None


# -- candidates ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "MWCU6059784",
        "MWCU 605978 4",  # painted groups as separate tokens
        "MWCU6O5978④",  # O for 0, boxed check digit read as a circled digit
        "MWCU605978|4|",  # box outline read as bars
        "mwcu6059784",
        "MWCU60597844",  # one extra character
    ],
)
def test_candidates_recover_and_verify(text: str) -> None:
    ranked = scored_candidates(text)
    assert ranked[0].number == "MWCU6059784"
    assert ranked[0].verified


def test_missing_check_digit_is_a_candidate_not_a_read() -> None:
    ranked = scored_candidates("MWCU605978")
    assert ranked[0].number == "MWCU6059784"
    assert not ranked[0].verified  # the check digit was inferred, so it vouches for nothing


def test_invalid_number_gives_only_valid_unverified_candidates() -> None:
    ranked = scored_candidates("MWCU6059785")
    assert ranked, "a candidate set is expected"
    assert all(is_valid(c.number) and not c.verified for c in ranked)
    assert "MWCU6059785" not in [c.number for c in ranked]
    assert "MWCU6059784" in [c.number for c in ranked]


def test_recogniser_alternatives_decide_between_look_alikes() -> None:
    text = "MWCU6059884"  # 7 read as 8; the recogniser's second choice is 7
    alts: list[tuple[tuple[str, float], ...]] = [((c, 0.95),) for c in text]
    alts[8] = (("8", 0.55), ("7", 0.4))
    ranked = scored_candidates(text, alts)
    assert ranked[0].number == "MWCU6059784"
    assert not ranked[0].verified  # a character was changed


def test_category_letter_beyond_the_table_is_still_offered() -> None:
    assert candidates("SEGE6047895")[0] == "SEGU6047895"


def test_short_or_empty_text_gives_nothing() -> None:
    assert candidates("") == []
    assert candidates("MWCU") == []
    assert candidates("MWCU6059784", n=0) == []


def test_junk_is_not_verified() -> None:
    # A weight-table line can pass the check digit after several letter/digit mappings.
    assert not any(c.verified for c in scored_candidates("MAX.GROSS30.480KGS"))


# -- properties ---------------------------------------------------------------------------

_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 O|"


@st.composite
def valid_numbers(draw: st.DrawFn) -> str:
    owner = draw(st.text(alphabet=iso6346.LETTERS, min_size=3, max_size=3))
    category = draw(st.sampled_from("UJZ"))
    serial = draw(st.text(alphabet=iso6346.DIGITS, min_size=6, max_size=6))
    prefix = owner + category + serial
    return prefix + str(check_digit(prefix))


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=_CHARS, max_size=16), st.integers(min_value=1, max_value=8))
def test_every_candidate_is_valid(text: str, n: int) -> None:
    found = candidates(text, n=n)
    assert len(found) <= n
    assert len(set(found)) == len(found)
    assert all(is_valid(number) for number in found)


@settings(max_examples=150, deadline=None)
@given(valid_numbers())
def test_a_clean_valid_number_is_read_verified(number: str) -> None:
    ranked = scored_candidates(f"{number[:4]} {number[4:10]} {number[10]}")
    assert ranked[0].number == number and ranked[0].verified


def _shape_confusions(char: str) -> set[str]:
    """What a character is misread as by the letter/digit shape table (mapped back on reading)."""
    return {k for k, v in TO_DIGIT.items() if v == char} | {k for k, v in TO_LETTER.items() if v == char}


@settings(max_examples=150, deadline=None)
@given(valid_numbers(), st.data())
def test_shape_confusion_is_recovered_first(number: str, data: st.DataObject) -> None:
    slots = [i for i, c in enumerate(number) if i != 3 and _shape_confusions(c)]
    if not slots:
        return
    i = data.draw(st.sampled_from(slots))
    wrong = data.draw(st.sampled_from(sorted(_shape_confusions(number[i]))))
    ranked = scored_candidates(number[:i] + wrong + number[i + 1 :])
    assert ranked[0].number == number


@settings(max_examples=200, deadline=None)
@given(valid_numbers(), st.data())
def test_look_alike_confusion_is_recovered_in_top_n(number: str, data: st.DataObject) -> None:
    """One character read as a look-alike; the recogniser's second choice is the true one."""
    i = data.draw(st.integers(min_value=0, max_value=10))
    options = sorted(SIMILAR.get(number[i], ""))
    if not options:
        return
    wrong = data.draw(st.sampled_from(options))
    text = number[:i] + wrong + number[i + 1 :]
    alts: list[tuple[tuple[str, float], ...]] = [((c, 0.95),) for c in text]
    alts[i] = ((wrong, 0.6), (number[i], 0.3))
    assert number in candidates(text, alts, n=5)
