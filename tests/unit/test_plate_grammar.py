"""VN/CN plate grammar: strict parsing, canonical forms, look-alike correction, two-line joins."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.analyzers import plate_grammar as g

# -- strict parsing -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "canonical", "country", "trailer"),
    [
        ("29C-123.45", "29C-123.45", "VN", False),
        ("29C12345", "29C-123.45", "VN", False),
        ("29c 123 45", "29C-123.45", "VN", False),
        ("29C-1234", "29C-1234", "VN", False),
        ("51F-678.90", "51F-678.90", "VN", False),
        ("12C-123.45", "12C-123.45", "VN", False),
        ("51R-141.39", "51R-141.39", "VN", True),
        ("51R-14139", "51R-141.39", "VN", True),
        ("29LD-123.45", "29LD-123.45", "VN", False),
        ("59C1-618.91", "59C1-618.91", "VN", False),
        ("80NG-636-70", "80NG-636-70", "VN", False),
        ("80-636-NG-70", "80NG-636-70", "VN", False),
        ("２９Ｃ－１２３．４５", "29C-123.45", "VN", False),
        ("桂A12345", "桂A12345", "CN", False),
        ("桂A·12345", "桂A12345", "CN", False),
        ("云A1234S", "云A1234S", "CN", False),
        ("桂P0A123", "桂P0A123", "CN", False),
        ("桂A1234挂", "桂A1234挂", "CN", True),
        ("桂AD12345", "桂AD12345", "CN", False),
        ("桂AFA2345", "桂AFA2345", "CN", False),
        ("桂A12345D", "桂A12345D", "CN", False),
        ("粤Z1234港", "粤Z1234港", "CN", False),
    ],
)
def test_valid_plates_parse_to_their_canonical_form(text: str, canonical: str, country: str, trailer: bool) -> None:
    parsed = g.parse(text)
    assert parsed is not None, text
    assert parsed.canonical == canonical
    assert parsed.country == country
    assert parsed.is_trailer is trailer
    assert parsed.corrections == 0


@pytest.mark.parametrize(
    "text",
    [
        "00C-123.45",  # locality 00
        "29I-123.45",  # I is no VN series letter
        "29O-1234",  # nor O
        "29C-123",  # 3-digit order
        "29C-123456",  # 6-digit order
        "2C-123.45",  # 1-digit locality
        "29-123.45",  # no series
        "桂AI2345",  # I never used in CN serials
        "桂O12345",  # nor O as authority letter
        "桂A1234",  # too short
        "桂A123456",  # 6 serial digits without D/F
        "桂AD1234X",  # small new energy ends in 4 digits
        "A123456",  # no province
        "京",
        "",
        "HELLO",
    ],
)
def test_invalid_plates_do_not_parse(text: str) -> None:
    assert g.parse(text) is None
    assert not g.is_valid(text)


def test_parse_reports_region_and_series() -> None:
    vn = g.parse("51R-141.39")
    cn = g.parse("桂P12345")
    assert vn is not None and cn is not None
    assert (vn.locality, vn.province, vn.series, vn.serial) == ("51", None, "R", "14139")
    assert (cn.province, cn.locality, cn.series, cn.serial) == ("桂", None, "P", "12345")


def test_parse_keeps_the_written_layout_when_characters_fit_two() -> None:
    both = "59C16189"
    assert g.parse("59C1-6189").canonical == "59C1-6189"  # type: ignore[union-attr]
    assert g.parse("59C-161.89").canonical == "59C-161.89"  # type: ignore[union-attr]
    assert g.parse(both).canonical == "59C-161.89"  # type: ignore[union-attr]


# -- correction ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("29C-I23.45", "29C-123.45"),
        ("29C-123.4S", "29C-123.45"),
        ("Z9C-123.45", "29C-123.45"),
        ("29C-l23.45", "29C-123.45"),
        ("51R-I4I.39", "51R-141.39"),
        ("290-123.45", "29D-123.45"),  # a series letter read as 0
        ("298-123.45", "29B-123.45"),
        ("桂AI2345", "桂A12345"),
        ("皖AON718", "皖A0N718"),
        ("桂A1234S", "桂A1234S"),  # S is legal in a CN serial: left alone
        ("桂A·I2345", "桂A12345"),
        ("|29C-123.45|", "29C-123.45"),  # border strokes dropped at the ends
    ],
)
def test_correction_fixes_lookalikes_only_where_the_grammar_needs_it(raw: str, expected: str) -> None:
    best = g.best(raw)
    assert best is not None, raw
    assert best.canonical == expected
    assert g.normalise(raw)[0] == expected


def test_clean_reading_needs_no_correction_and_keeps_full_confidence() -> None:
    best = g.best("29C-123.45")
    assert best is not None
    assert best.corrections == 0 and best.dropped == 0
    assert best.confidence == pytest.approx(1.0)
    assert best.agreement == pytest.approx(1.0)


def test_corrections_lower_confidence() -> None:
    clean = g.best("29C-123.45")
    fixed = g.best("29C-I23.45")
    assert clean is not None and fixed is not None
    assert fixed.corrections == 1
    assert fixed.confidence < clean.confidence
    assert fixed.agreement < 1.0


def test_recogniser_alternatives_rank_the_correction() -> None:
    text = "29C-12B.45"
    alts: list[list[tuple[str, float]]] = [[(c, 0.99)] for c in text]
    # Without evidence B in a digit slot becomes its look-alike 8 ...
    assert g.best(text).canonical == "29C-128.45"  # type: ignore[union-attr]
    # ... but the recogniser listed 3 as its second choice for that character.
    alts[6] = [("B", 0.6), ("3", 0.35), ("E", 0.05)]
    assert g.best(text, alts).canonical == "29C-123.45"  # type: ignore[union-attr]


def test_misaligned_alternatives_are_ignored() -> None:
    assert g.best("29C-I23.45", [[("2", 1.0)]]).canonical == "29C-123.45"  # type: ignore[union-attr]


def test_unlisted_lookalike_is_much_less_likely_than_a_listed_one() -> None:
    text = "376-8750"  # a phone number: 6 would have to be the series letter G
    listed = [[(c, 0.99)] for c in text]
    unlisted = g.best(text, listed)
    assert unlisted is not None and unlisted.agreement < 0.03
    listed[2] = [("6", 0.7), ("G", 0.3)]
    supported = g.best(text, listed)
    assert supported is not None and supported.canonical == "37G-8750" and supported.agreement > 0.3


def test_n_best_is_ranked_and_every_entry_valid() -> None:
    results = g.correct("29C-1234S")
    assert len(results) >= 2
    scores = [r.score for r in results]
    assert scores == sorted(scores, reverse=True)
    for r in results:
        assert g.parse(r.canonical) is not None


@pytest.mark.parametrize("text", ["2014-05-12", "c014-05-10", "2014-05-1206:12:32", "06:12:32", "12/05/2014"])
def test_dates_and_times_are_never_plates(text: str) -> None:
    assert g.looks_like_date_or_time(text)
    assert g.correct(text, countries=("VN", "CN", "FOREIGN")) == ()


@pytest.mark.parametrize("text", ["29C-123.45", "29C-123:45", "80NG-636-70", "T4:3213"])
def test_plates_with_colons_are_not_times(text: str) -> None:
    assert not g.looks_like_date_or_time(text)


def test_words_are_not_plates() -> None:
    for word in ("TOYOTA", "EXIT", "CUSTOMS", "STOR-IT", "SELF"):
        assert g.correct(word, countries=("VN", "CN", "FOREIGN")) == ()


# -- foreign fallback ---------------------------------------------------------------------


def test_foreign_plates_only_when_asked_and_ranked_below_vn_cn() -> None:
    assert g.correct("RK-896AL") == ()
    foreign = g.correct("RK-896AL", countries=("VN", "CN", "FOREIGN"))
    assert foreign and foreign[0].canonical == "RK896AL" and foreign[0].country == "FOREIGN"
    mixed = g.correct("29C12345", countries=("VN", "CN", "FOREIGN"))
    assert mixed[0].country == "VN"


def test_foreign_format_corrects_one_lookalike_and_generic_needs_letter_and_digit() -> None:
    fixed = g.best("BA3020Z", countries=("FOREIGN",))
    assert fixed is not None and fixed.canonical == "BA302OZ"
    generic = g.best("W053011", countries=("FOREIGN",))
    assert generic is not None and generic.kind == "foreign_generic" and generic.canonical == "W053011"
    assert g.best("123456", countries=("FOREIGN",)) is None
    assert g.best("ABCDEF", countries=("FOREIGN",)) is None


# -- two-line plates ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("top", "bottom", "expected", "trailer"),
    [
        ("29C", "123.45", "29C-123.45", False),
        ("51R", "141.39", "51R-141.39", True),
        ("59-C1", "618.91", "59C1-618.91", False),
        ("12C", "1234", "12C-1234", False),
        ("桂A", "12345", "桂A12345", False),
        ("桂A", "1234挂", "桂A1234挂", True),
        ("桂A·", "I2345", "桂A12345", False),
    ],
)
def test_two_line_plates_join(top: str, bottom: str, expected: str, trailer: bool) -> None:
    results = g.assemble(top, bottom)
    assert results, (top, bottom)
    assert results[0].canonical == expected
    assert results[0].is_trailer is trailer


def test_two_line_join_must_fall_between_the_rows() -> None:
    assert g.parse("29C12345") is not None
    assert g.assemble("29", "C12345") == ()  # the series letter belongs to the top row
    assert g.assemble("HELLO", "WORLD") == ()
    assert g.assemble("", "12345") == ()


# -- properties ---------------------------------------------------------------------------

_digit = st.sampled_from("0123456789")
_locality = st.integers(min_value=1, max_value=99).map(lambda n: f"{n:02d}")
_vn_series = st.one_of(
    st.sampled_from(sorted(g.VN_SERIES)),
    st.sampled_from([s for s in g.VN_TWO_LETTER_SERIES if s not in g.VN_FOREIGN_SERIES]),
    st.tuples(st.sampled_from(sorted(g.VN_SERIES)), _digit).map("".join),
)
_vn_order = st.one_of(st.text(_digit, min_size=4, max_size=4), st.text(_digit, min_size=5, max_size=5))


@st.composite
def vn_plates(draw: st.DrawFn) -> str:
    order = draw(_vn_order)
    written = f"{order[:3]}.{order[3:]}" if len(order) == 5 else order
    return f"{draw(_locality)}{draw(_vn_series)}-{written}"


_cn_alnum = st.sampled_from(sorted(g.CN_ALNUM))


@st.composite
def cn_plates(draw: st.DrawFn) -> str:
    head = draw(st.sampled_from(g.CN_PROVINCES)) + draw(st.sampled_from(sorted(g.CN_LETTERS)))
    kind = draw(st.sampled_from(["standard", "trailer", "small", "large"]))
    if kind == "standard":
        return head + "".join(draw(st.lists(_cn_alnum, min_size=5, max_size=5)))
    if kind == "trailer":
        return head + "".join(draw(st.lists(_cn_alnum, min_size=4, max_size=4))) + g.CN_TRAILER
    digits = draw(st.text(_digit, min_size=4, max_size=5))
    if kind == "small":
        return head + draw(st.sampled_from("DF")) + draw(_cn_alnum) + digits[:4]
    return head + digits.ljust(5, "0") + draw(st.sampled_from("DF"))


@settings(max_examples=150, deadline=None)
@given(st.one_of(vn_plates(), cn_plates()))
def test_canonical_forms_reparse_to_themselves(plate: str) -> None:
    parsed = g.parse(plate)
    assert parsed is not None, plate
    assert parsed.canonical == plate
    again = g.parse(parsed.canonical)
    assert again is not None and again.canonical == parsed.canonical
    assert not g.looks_like_date_or_time(plate)


_noise = st.text(
    alphabet=st.sampled_from("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ-. ·|桂云京挂学OIlo:"), min_size=0, max_size=12
)


@settings(max_examples=200, deadline=None)
@given(_noise)
def test_correction_never_yields_an_invalid_plate(text: str) -> None:
    for result in g.correct(text, n_best=3):
        reparsed = g.parse(result.canonical)
        assert reparsed is not None, (text, result.canonical)
        assert reparsed.canonical == result.canonical
        assert 0.0 <= result.confidence <= 1.0


@settings(max_examples=100, deadline=None)
@given(st.one_of(vn_plates(), cn_plates()), st.data())
def test_one_lookalike_on_a_valid_plate_is_corrected_to_a_valid_plate(plate: str, data: st.DataObject) -> None:
    positions = [i for i, c in enumerate(plate) if c in g.TO_LETTER or c in g.TO_DIGIT]
    if not positions:
        return
    i = data.draw(st.sampled_from(positions))
    c = plate[i]
    swapped = g.TO_LETTER[c][0] if c in g.TO_LETTER else g.TO_DIGIT[c]
    results = g.correct(plate[:i] + swapped + plate[i + 1 :])
    assert results
    assert all(g.parse(r.canonical) is not None for r in results)
