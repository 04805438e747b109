"""Parse code payloads into typed reads: VNACCS declaration numbers and citizen-ID QR.

Payloads are untrusted input. Every parser here:

- accepts ``str`` or ``bytes`` (bytes must be UTF-8);
- raises :class:`PayloadError` only for a payload longer than :data:`MAX_PAYLOAD_CHARS`
  or of the wrong type, and otherwise returns ``None`` for anything it does not accept;
  the ``explain_*`` variants say why;
- works in time linear in the (capped) payload length, and never logs a payload.

Declaration payloads accepted (VNACCS numbers are 12 digits):

- the bare number: ``305123456789``;
- ``VNACCS|<12 digits>|<yyyymmdd>|<tax code>`` (tax code: 10 digits, optionally
  ``-`` and a 3-digit branch);
- an ``http(s)`` URL with a ``so_tk``, ``sotk`` or ``declaration`` query parameter.

A payload holding two different 12-digit numbers anywhere is ambiguous and rejected;
runs of 11 or 13 digits are not declaration numbers.

Citizen-ID (CCCD) QR: ``id|old id|full name|ddmmyyyy|sex|address|issue ddmmyyyy``.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date
from typing import Literal
from urllib.parse import parse_qsl, urlsplit

from appliance.errors import PayloadError
from appliance.reads import CodeRead, DeclarationRead

#: Longest payload the parsers look at (characters). QR codes hold at most 7089.
MAX_PAYLOAD_CHARS = 4096

_DIGIT_RUN = re.compile(r"[0-9]+")
_TWELVE = re.compile(r"[0-9]{12}")
_TAX_CODE = re.compile(r"[0-9]{10}(?:-[0-9]{3})?")
_DECLARATION_KEYS = frozenset({"so_tk", "sotk", "declaration"})
_MIN_YEAR = 1900


# -- results ------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeclarationParse:
    """Outcome of :func:`explain_declaration`: the read, or None and the reason."""

    declaration: DeclarationRead | None
    reason: str
    form: Literal["bare", "vnaccs", "url", "none"] = "none"
    registered: date | None = None
    tax_code: str | None = None

    @property
    def ok(self) -> bool:
        return self.declaration is not None


@dataclass(frozen=True, repr=False)
class CccdRecord:
    """A Vietnamese citizen-ID (CCCD) QR record. Sensitive: ``repr`` masks it."""

    id_number: str
    old_id: str
    full_name: str
    date_of_birth: date
    sex: Literal["Nam", "Nữ"]
    address: str
    issue_date: date

    def __repr__(self) -> str:
        words = len(self.full_name.split())
        return (
            f"CccdRecord(id_number='{_mask(self.id_number)}', old_id='{_mask(self.old_id)}', "
            f"full_name=<{words} word(s) hidden>, date_of_birth=<year {self.date_of_birth.year}>, "
            f"sex='{self.sex}', address=<hidden>, issue_date={self.issue_date.isoformat()})"
        )

    __str__ = __repr__


@dataclass(frozen=True)
class CccdParse:
    """Outcome of :func:`explain_cccd`: the record, or None and the reason."""

    record: CccdRecord | None
    reason: str

    @property
    def ok(self) -> bool:
        return self.record is not None


def _mask(value: str) -> str:
    if len(value) <= 3:
        return "*" * len(value)
    return "*" * (len(value) - 3) + value[-3:]


# -- shared input checks ------------------------------------------------------------------


def _as_text(payload: object) -> str | None:
    """The payload as text; None for non-UTF-8 bytes; PayloadError if too long or not text."""
    if isinstance(payload, bytes | bytearray | memoryview):
        data = bytes(payload)
        if len(data) > 4 * MAX_PAYLOAD_CHARS:
            raise PayloadError(f"payload of {len(data)} bytes is larger than the {MAX_PAYLOAD_CHARS}-character cap")
        try:
            payload = data.decode("utf-8")
        except UnicodeDecodeError:
            return None
    if not isinstance(payload, str):
        raise PayloadError(f"payload must be str or bytes, got {type(payload).__name__}")
    if len(payload) > MAX_PAYLOAD_CHARS:
        raise PayloadError(f"payload of {len(payload)} characters is larger than the {MAX_PAYLOAD_CHARS} cap")
    return payload


def _has_controls(text: str) -> bool:
    return any(unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn") for ch in text)


# -- declarations -------------------------------------------------------------------------


def parse_declaration(payload: str | bytes, code: CodeRead | None = None) -> DeclarationRead | None:
    """The VNACCS declaration number in ``payload``, or None (see :func:`explain_declaration`)."""
    return explain_declaration(payload, code).declaration


def explain_declaration(payload: str | bytes, code: CodeRead | None = None) -> DeclarationParse:
    """Parse ``payload`` as a declaration payload and say why when it is rejected."""
    text = _as_text(payload)
    if text is None:
        return DeclarationParse(None, "payload is not UTF-8")
    text = text.strip()
    if not text:
        return DeclarationParse(None, "payload is empty")
    if _has_controls(text):
        return DeclarationParse(None, "payload holds control characters")
    numbers = {m.group() for m in _DIGIT_RUN.finditer(text) if len(m.group()) == 12}
    if len(numbers) > 1:
        return DeclarationParse(None, f"ambiguous: {len(numbers)} different 12-digit numbers")
    if _TWELVE.fullmatch(text):
        return DeclarationParse(DeclarationRead(text, code), "ok", "bare")
    if text.upper().startswith("VNACCS|"):
        return _vnaccs(text, code)
    if text.lower().startswith(("http://", "https://")):
        return _url(text, code)
    if numbers:
        return DeclarationParse(None, "a 12-digit number in an unrecognised payload form")
    return DeclarationParse(None, "no 12-digit declaration number")


def _vnaccs(text: str, code: CodeRead | None) -> DeclarationParse:
    fields = text.split("|")
    if len(fields) != 4:
        return DeclarationParse(None, f"VNACCS payload needs 4 '|'-separated fields, got {len(fields)}")
    _, number, day, tax = (f.strip() for f in fields)
    if not _TWELVE.fullmatch(number):
        return DeclarationParse(None, "VNACCS field 2 is not a 12-digit declaration number")
    registered = _date(day, "%Y%m%d")
    if registered is None:
        return DeclarationParse(None, "VNACCS field 3 is not a valid yyyymmdd date")
    if not _TAX_CODE.fullmatch(tax):
        return DeclarationParse(None, "VNACCS field 4 is not a tax code (10 digits, optional -NNN branch)")
    return DeclarationParse(DeclarationRead(number, code), "ok", "vnaccs", registered, tax)


def _url(text: str, code: CodeRead | None) -> DeclarationParse:
    try:
        parts = urlsplit(text)
        query = parse_qsl(parts.query, keep_blank_values=True, max_num_fields=64)
    except ValueError:
        return DeclarationParse(None, "URL cannot be parsed")
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return DeclarationParse(None, "URL must be http(s) with a host")
    values = {value.strip() for key, value in query if key.lower() in _DECLARATION_KEYS}
    if not values:
        return DeclarationParse(None, "URL has no so_tk, sotk or declaration parameter")
    if len(values) > 1:
        return DeclarationParse(None, "ambiguous: URL parameters name different declarations")
    value = values.pop()
    if not _TWELVE.fullmatch(value):
        return DeclarationParse(None, "URL declaration parameter is not 12 digits")
    return DeclarationParse(DeclarationRead(value, code), "ok", "url")


def _date(text: str, pattern: Literal["%Y%m%d", "%d%m%Y"]) -> date | None:
    if len(text) != 8 or not text.isascii() or not text.isdigit():
        return None
    if pattern == "%Y%m%d":
        year, month, day = int(text[:4]), int(text[4:6]), int(text[6:])
    else:
        day, month, year = int(text[:2]), int(text[2:4]), int(text[4:])
    if year < _MIN_YEAR:
        return None
    try:
        return date(year, month, day)
    except ValueError:
        return None


# -- citizen ID (CCCD) --------------------------------------------------------------------

_CCCD_FIELDS = 7
_NAME_PUNCTUATION = frozenset(" -.'")
_MAX_NAME = 100
_MAX_ADDRESS = 300


def parse_cccd(payload: str | bytes) -> CccdRecord | None:
    """The citizen-ID record in ``payload``, or None (see :func:`explain_cccd`)."""
    return explain_cccd(payload).record


def explain_cccd(payload: str | bytes) -> CccdParse:
    """Parse ``payload`` as a CCCD QR and say why when it is rejected."""
    text = _as_text(payload)
    if text is None:
        return CccdParse(None, "payload is not UTF-8")
    text = unicodedata.normalize("NFC", text.strip())
    if _has_controls(text):
        return CccdParse(None, "payload holds control characters")
    fields = text.split("|")
    if len(fields) != _CCCD_FIELDS:
        return CccdParse(None, f"CCCD payload needs {_CCCD_FIELDS} '|'-separated fields, got {len(fields)}")
    id_number, old_id, name, born, sex, address, issued = (f.strip() for f in fields)
    problem = _cccd_problem(id_number, old_id, name, sex, address)
    if problem:
        return CccdParse(None, problem)
    birth, issue = _date(born, "%d%m%Y"), _date(issued, "%d%m%Y")
    if birth is None or issue is None:
        return CccdParse(None, "date of birth and issue date must be valid ddmmyyyy dates")
    if issue < birth:
        return CccdParse(None, "issue date is before the date of birth")
    if not _id_matches_person(id_number, birth.year, sex):
        return CccdParse(None, "id digits 4-6 disagree with the sex and year of birth")
    record = CccdRecord(id_number, old_id, name, birth, "Nam" if sex == "Nam" else "Nữ", address, issue)
    return CccdParse(record, "ok")


def _cccd_problem(id_number: str, old_id: str, name: str, sex: str, address: str) -> str | None:
    if not _TWELVE.fullmatch(id_number):
        return "id must be 12 digits"
    if old_id and not (old_id.isascii() and old_id.isdigit() and len(old_id) in (9, 12)):
        return "old id must be empty, 9 or 12 digits"
    if not _valid_name(name):
        return "full name must be letters and spaces (at most 100)"
    if sex not in ("Nam", "Nữ"):
        return "sex must be Nam or Nữ"
    if not address or len(address) > _MAX_ADDRESS:
        return "address must be present (at most 300 characters)"
    return None


def _valid_name(name: str) -> bool:
    if not name or len(name) > _MAX_NAME or not any(ch.isalpha() for ch in name):
        return False
    return all(ch.isalpha() or ch in _NAME_PUNCTUATION for ch in name)


def _id_matches_person(id_number: str, birth_year: int, sex: str) -> bool:
    """Digit 4 codes century and sex, digits 5-6 the year of birth.

    0/1: 1900-1999, 2/3: 2000-2099, ... 8/9: 2300-2399; even for Nam, odd for Nữ
    (Circular 07/2016/TT-BCA, article 7).
    """
    code = int(id_number[3])
    century = 1900 + 100 * (code // 2)
    same_year = century <= birth_year < century + 100 and birth_year % 100 == int(id_number[4:6])
    return same_year and (code % 2 == 0) == (sex == "Nam")
