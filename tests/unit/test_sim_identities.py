"""Identities the simulator generates: formats, ISO 6346 arithmetic, payload forms."""

from __future__ import annotations

import random
import re
from urllib.parse import parse_qs, urlparse

import pytest

from appliance.errors import SimulationError
from appliance.sim import identities as ids

# Expected formats written out independently of the generator's own regexes.
VN_TRUCK = re.compile(r"^(1[1-9]|[2-9]\d)(C|H|LD)-(\d{3}\.\d{2}|\d{4})$")
VN_TRAILER = re.compile(r"^(1[1-9]|[2-9]\d)R-(\d{3}\.\d{2}|\d{4})$")
NO_IO = "ABCDEFGHJKLMNPQRSTUVWXYZ"
PROVINCE = "[京津沪渝冀晋蒙辽吉黑苏浙皖闽赣鲁豫鄂湘粤桂琼川贵云藏陕甘青宁新]"
CN_STANDARD = re.compile(rf"^{PROVINCE}[{NO_IO}][{NO_IO}0-9]{{5}}$")
CN_TRAILER = re.compile(rf"^{PROVINCE}[{NO_IO}][{NO_IO}0-9]{{4}}挂$")
CN_NEV_SMALL = re.compile(rf"^{PROVINCE}[{NO_IO}][DF][{NO_IO}0-9]\d{{4}}$")
CN_NEV_LARGE = re.compile(rf"^{PROVINCE}[{NO_IO}]\d{{5}}[DF]$")


@pytest.mark.parametrize(("code10", "digit"), [("MWCU605978", 4), ("CSQU305438", 3)])
def test_iso6346_check_digit_of_known_numbers(code10: str, digit: int) -> None:
    assert ids.iso6346_check_digit(code10) == digit
    assert ids.iso6346_valid(code10 + str(digit))


def test_iso6346_rejects_wrong_digit_and_bad_shapes() -> None:
    assert not ids.iso6346_valid("MWCU6059785")
    assert not ids.iso6346_valid("CSQU3054384")
    assert not ids.iso6346_valid("MWCU605978")  # no check digit
    with pytest.raises(SimulationError):
        ids.iso6346_check_digit("MWC1605978")


def test_iso6346_letter_values_skip_multiples_of_eleven() -> None:
    # A=10, B=12 (11 skipped), K=21, L=23 (22 skipped), U=32, V=34 (33 skipped), Z=38.
    # With serial 000000 the sum is v(owner[0]) + 2 v(owner[1]) + 4 v(owner[2]) + 8 v(U).
    def check(owner: str) -> int:
        return ids.iso6346_check_digit(owner + "U000000")

    def expected(a: int, b: int, c: int) -> int:
        return (a + 2 * b + 4 * c + 8 * 32) % 11 % 10

    assert check("ABK") == expected(10, 12, 21)
    assert check("LVZ") == expected(23, 34, 38)


def test_generated_container_numbers_hold_their_check_digit() -> None:
    rng = random.Random(1)
    for _ in range(500):
        number = ids.container_number(rng)
        assert re.fullmatch(r"[A-Z]{3}U\d{7}", number)
        assert ids.iso6346_check_digit(number[:10]) == int(number[10])
        other = ids.other_container_number(rng, number)
        assert other != number and ids.iso6346_valid(other)


def test_size_type_codes_match_length() -> None:
    rng = random.Random(2)
    assert all(ids.size_type(rng, True)[0] == "4" for _ in range(50))
    assert all(ids.size_type(rng, False)[0] == "2" for _ in range(50))
    assert all(re.fullmatch(r"[24][25][GRU]1", ids.size_type(rng, bool(i % 2))) for i in range(50))


def test_vietnamese_plates_match_their_format() -> None:
    rng = random.Random(3)
    trucks = [ids.vn_plate(rng) for _ in range(400)]
    assert all(VN_TRUCK.fullmatch(p) for p in trucks), [p for p in trucks if not VN_TRUCK.fullmatch(p)]
    assert any("." in p for p in trucks) and any("." not in p for p in trucks)  # both order lengths
    assert {p[:2] for p in trucks} >= {"12", "14", "24", "11"}  # border provinces show up
    trailers = [ids.vn_trailer_plate(rng) for _ in range(200)]
    assert all(VN_TRAILER.fullmatch(p) for p in trailers)
    with pytest.raises(SimulationError):
        ids.vn_plate(rng, series="Q")


def test_chinese_plates_match_their_format() -> None:
    rng = random.Random(4)
    standard = [ids.cn_plate(rng) for _ in range(400)]
    assert all(CN_STANDARD.fullmatch(p) for p in standard)
    assert {p[0] for p in standard} >= {"桂", "云"}
    assert all(CN_TRAILER.fullmatch(ids.cn_trailer_plate(rng)) for _ in range(200))
    assert all(CN_NEV_SMALL.fullmatch(ids.cn_nev_plate(rng, large=False)) for _ in range(200))
    assert all(CN_NEV_LARGE.fullmatch(ids.cn_nev_plate(rng, large=True)) for _ in range(200))
    assert not any(c in "IO" for p in standard for c in p[1:])


def test_other_plate_changes_one_order_digit() -> None:
    rng = random.Random(5)
    for text in ("29C-123.45", "桂A12345", "12R-014.39", "桂A1234挂"):
        other = ids.other_plate(rng, text)
        assert other != text and len(other) == len(text)
        assert sum(a != b for a, b in zip(other, text, strict=True)) == 1


def test_seal_declaration_and_fleet_formats() -> None:
    rng = random.Random(6)
    for _ in range(200):
        serial = ids.seal_serial(rng)
        assert re.fullmatch(r"[A-Z]{3}\d{7}", serial)
        other = ids.other_seal_serial(rng, serial)
        assert other != serial and other[:3] == serial[:3]
        assert re.fullmatch(r"[13]0\d{10}", ids.declaration_number(rng))
        assert re.fullmatch(r"0\d{9}", ids.tax_code(rng))
        assert re.fullmatch(r"IGV-\d{2}", ids.fleet_id(rng))


def test_declaration_payload_forms_all_carry_the_number() -> None:
    rng = random.Random(7)
    number, tax = "301234567890", "0101234567"
    forms = set()
    for _ in range(200):
        payload = ids.declaration_payload(rng, number, tax, 1795000000.0)
        if payload == number:
            forms.add("bare")
        elif payload.startswith("VNACCS|"):
            fields = payload.split("|")
            assert fields[1] == number and re.fullmatch(r"\d{8}", fields[2]) and fields[3] == tax
            assert fields[2] == "20261118"  # 1795000000 is 2026-11-18 UTC
            forms.add("pipe")
        else:
            assert parse_qs(urlparse(payload).query)["so_tk"] == [number]
            forms.add("url")
    assert forms == {"bare", "pipe", "url"}
    with pytest.raises(SimulationError):
        ids.declaration_payload(rng, "12345", tax, 0.0)
