"""Declaration and citizen-ID payload parsers: tables, masking and Hypothesis properties."""

from __future__ import annotations

import time
import unicodedata
from datetime import date

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appliance.analyzers.payloads import (
    MAX_PAYLOAD_CHARS,
    CccdRecord,
    explain_cccd,
    explain_declaration,
    parse_cccd,
    parse_declaration,
)
from appliance.errors import PayloadError
from appliance.reads import BBox, CodeRead

NUMBER = "305123456789"
OTHER = "305987654321"

# -- declarations -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "form"),
    [
        (NUMBER, "bare"),
        (f"  {NUMBER}\r\n", "bare"),
        (NUMBER.encode(), "bare"),
        (f"VNACCS|{NUMBER}|20260115|0101234567", "vnaccs"),
        (f"vnaccs|{NUMBER}|20240229|0101234567-001", "vnaccs"),
        (f"https://pus.customs.gov.vn/tra-cuu?so_tk={NUMBER}", "url"),
        (f"http://example.vn/x?a=1&sotk={NUMBER}&b=2", "url"),
        (f"https://example.vn/?declaration={NUMBER}&so_tk={NUMBER}", "url"),
        (f"https://example.vn/{NUMBER}/?SO_TK={NUMBER}", "url"),
    ],
)
def test_declaration_forms_accepted(payload: str | bytes, form: str) -> None:
    result = explain_declaration(payload)
    assert result.ok, result.reason
    assert result.form == form
    assert result.declaration is not None
    assert result.declaration.number == NUMBER


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ("30512345678", "no 12-digit"),
        ("3051234567891", "no 12-digit"),
        (f"{NUMBER}0", "no 12-digit"),
        (f"{NUMBER} {OTHER}", "ambiguous"),
        (f"https://example.vn/?so_tk={NUMBER}&note={OTHER}", "ambiguous"),
        (f"https://example.vn/?so_tk={NUMBER}&so_tk=", "ambiguous"),
        (f"VNACCS|{NUMBER}|20260115|{OTHER}", "ambiguous"),
        (f"VNACCS|{NUMBER}|20260230|0101234567", "yyyymmdd"),
        (f"VNACCS|{NUMBER}|15012026|0101234567", "yyyymmdd"),
        (f"VNACCS|{NUMBER}|20260115|01012345", "tax code"),
        (f"VNACCS|{NUMBER}|20260115", "4 '|'-separated"),
        (f"VNACCS|{NUMBER}|20260115|0101234567|extra", "4 '|'-separated"),
        ("VNACCS|30512345678|20260115|0101234567", "field 2"),
        (f"ftp://example.vn/?so_tk={NUMBER}", "unrecognised"),
        ("https://example.vn/?id=1", "no so_tk"),
        ("https://example.vn/?so_tk=3051234567", "not 12 digits"),
        (f"Declaration {NUMBER}", "unrecognised"),
        ("３０５１２３４５６７８９", "no 12-digit"),  # full-width digits are not ASCII digits
        (f"{NUMBER}\x00", "control"),
        (f"\x1b[2J{NUMBER}", "control"),
        ("", "empty"),
        ("   \r\n", "empty"),
        (b"\xff\xfe" + NUMBER.encode(), "UTF-8"),
    ],
)
def test_declaration_payloads_rejected_with_reason(payload: str | bytes, reason: str) -> None:
    result = explain_declaration(payload)
    assert result.declaration is None
    assert parse_declaration(payload) is None
    assert reason in result.reason


def test_declaration_carries_its_code_read() -> None:
    code = CodeRead(text=NUMBER, format="QRCode", bbox=BBox(1, 2, 3, 4), decoder="zxing", raw=NUMBER.encode())
    read = parse_declaration(code.text, code)
    assert read is not None
    assert read.code is code


def test_vnaccs_form_returns_date_and_tax_code() -> None:
    result = explain_declaration(f"VNACCS|{NUMBER}|20260115|0101234567-001")
    assert result.registered == date(2026, 1, 15)
    assert result.tax_code == "0101234567-001"


@pytest.mark.parametrize("parse", [parse_declaration, parse_cccd])
def test_oversized_and_wrong_type_payloads_raise_payload_error(parse: object) -> None:
    assert callable(parse)
    with pytest.raises(PayloadError, match="cap"):
        parse("1" * (MAX_PAYLOAD_CHARS + 1))
    with pytest.raises(PayloadError, match="cap"):
        parse(b"|" * (8 * MAX_PAYLOAD_CHARS))
    with pytest.raises(PayloadError, match="str or bytes"):
        parse(305123456789)


# -- citizen ID ---------------------------------------------------------------------------

NAME = "Nguyễn Thị Minh Khai"
ADDRESS = "Số 12 Hàng Bạc, Hoàn Kiếm, Hà Nội"
CCCD = f"001190012345|012345678|{NAME}|15031990|Nữ|{ADDRESS}|20082021"


def test_cccd_parsed() -> None:
    record = parse_cccd(CCCD)
    assert record == CccdRecord(
        id_number="001190012345",
        old_id="012345678",
        full_name=NAME,
        date_of_birth=date(1990, 3, 15),
        sex="Nữ",
        address=ADDRESS,
        issue_date=date(2021, 8, 20),
    )


@pytest.mark.parametrize(
    ("payload", "ok"),
    [
        (CCCD, True),
        (CCCD.encode(), True),
        (CCCD + "\r\n", True),
        (CCCD.replace("012345678", ""), True),  # no old id
        ("001090012345|012345678|Trần Văn Nam|01011990|Nam|Lạng Sơn|01012021", True),
        ("024204001234||Lò Văn Pá|29022004|Nam|Bát Xát, Lào Cai|01052021", True),  # born 2004: digit 4 is 2
        (CCCD.replace("Nữ", unicodedata.normalize("NFD", "Nữ")), True),  # decomposed ữ is normalised (NFC)
        (CCCD.replace("Nữ", "Nam"), False),  # digit 4 (1) says female
        (CCCD.replace("15031990", "15031991"), False),  # digits 5-6 say 1990
        (CCCD.replace("001190012345", "00119001234"), False),
        (CCCD.replace("001190012345", "0011900123456"), False),
        (CCCD.replace("15031990", "31021990"), False),
        (CCCD.replace("20082021", "20082A21"), False),
        (CCCD.replace("20082021", "20081989"), False),  # issued before birth
        (CCCD.replace("Nữ", "Female"), False),
        (CCCD.replace(NAME, "Nguyen 123"), False),
        (CCCD.replace(NAME, ""), False),
        (CCCD.replace(ADDRESS, ""), False),
        (CCCD.replace("012345678", "12AB"), False),
        (CCCD + "|extra", False),
        (CCCD.replace("|", ";"), False),
        (CCCD.replace("|", "｜"), False),  # full-width bar
        (CCCD.replace(NAME, "Nguyễn\x00Thị"), False),
        (b"\xc3\x28" + CCCD.encode(), False),
        ("|" * 6, False),
        ("", False),
    ],
)
def test_cccd_table(payload: str | bytes, ok: bool) -> None:
    result = explain_cccd(payload)
    assert result.ok is ok, result.reason
    assert (parse_cccd(payload) is not None) is ok


def test_cccd_repr_masks_sensitive_fields() -> None:
    record = parse_cccd(CCCD)
    assert record is not None
    for shown in (repr(record), str(record), f"{record}", repr(explain_cccd(CCCD))):
        assert "Nguyễn" not in shown and "Khai" not in shown
        assert "Hàng Bạc" not in shown and "Hà Nội" not in shown
        assert "001190012345" not in shown and "0011900" not in shown
        assert "012345678" not in shown
        assert "15031990" not in shown and "1990-03-15" not in shown
        assert "***" in shown


# -- properties ---------------------------------------------------------------------------

_digits = st.text(alphabet="0123456789", min_size=12, max_size=12)
_separators = st.sampled_from(["|", "||", "|||", "｜", "\x00", "\u2028", "\r\n", "%7C", "&", "=", "?"])
_hostile_text = st.one_of(
    st.text(max_size=300),
    st.lists(st.one_of(_separators, st.text(max_size=8), _digits), max_size=80).map("".join),
)


@given(_hostile_text)
@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
def test_hostile_text_never_crashes(text: str) -> None:
    declaration = parse_declaration(text)
    if declaration is not None:
        assert len(declaration.number) == 12 and declaration.number.isdigit()
        assert declaration.number in text
    record = parse_cccd(text)
    if record is not None:
        assert record.id_number in text


@given(st.binary(max_size=600))
@settings(max_examples=300)
def test_hostile_bytes_never_crash(data: bytes) -> None:
    parse_declaration(data)
    parse_cccd(data)


@given(_digits)
def test_bare_and_url_numbers_round_trip(number: str) -> None:
    assert parse_declaration(number) is not None
    read = parse_declaration(f"https://h.vn/q?so_tk={number}")
    assert read is not None and read.number == number


@given(_digits, _digits)
def test_two_different_numbers_are_always_ambiguous(a: str, b: str) -> None:
    result = explain_declaration(f"{a} {b}")
    if a == b:
        assert result.declaration is None  # one number, but not in an accepted form
    else:
        assert "ambiguous" in result.reason


@given(
    st.dates(min_value=date(1920, 1, 1), max_value=date(2015, 12, 31)),
    st.booleans(),
    st.text(
        alphabet="abcdefghijklmnopqrstuvwxyzàáảãạăằắẳẵặâầấẩẫậđèéẻẽẹêềếểễệìíỉĩịòóỏõọôồốổỗộơờớởỡợùúủũụưừứửữựỳýỷỹỵ ",
        min_size=2,
        max_size=40,
    ).filter(lambda s: s.strip() != "" and s == s.strip()),
    st.integers(min_value=1, max_value=96),
)
def test_valid_cccd_round_trips(born: date, male: bool, name: str, province: int) -> None:
    code = (0 if born.year < 2000 else 2) + (0 if male else 1)
    id_number = f"{province:03d}{code}{born.year % 100:02d}{123456:06d}"
    sex = "Nam" if male else "Nữ"
    payload = f"{id_number}||{name}|{born:%d%m%Y}|{sex}|{ADDRESS}|{date(2021, 7, 1):%d%m%Y}"
    record = parse_cccd(payload)
    assert record is not None, explain_cccd(payload).reason
    assert (record.id_number, record.date_of_birth, record.sex) == (id_number, born, sex)
    # The name never shows: another name with the same words gives the very same repr.
    other = "".join(" " if ch == " " else "q" for ch in name)
    twin = parse_cccd(payload.replace(f"||{name}|", f"||{other}|"))
    assert twin is not None and repr(twin) == repr(record)


@pytest.mark.parametrize("size", [MAX_PAYLOAD_CHARS, MAX_PAYLOAD_CHARS // 2])
def test_worst_case_payloads_are_fast(size: int) -> None:
    payloads = ["|" * size, "1" * size, ("1" * 12 + " ") * (size // 13), "https://h.vn/?" + "&so_tk=1" * (size // 9)]
    start = time.perf_counter()
    for payload in payloads:
        parse_declaration(payload[:MAX_PAYLOAD_CHARS])
        parse_cccd(payload[:MAX_PAYLOAD_CHARS])
    assert time.perf_counter() - start < 1.0
