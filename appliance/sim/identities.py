"""Seeded generators of the identities a cargo lane carries.

Every generator takes a :class:`random.Random` so a seed reproduces the same lane:

* Vietnamese plates: ``29C-123.45`` (5-digit order printed with a dot), ``29C-1234``
  (4-digit order), trailers in series ``R`` (``12R-014.39``), foreign-invested ``LD``.
* Chinese plates: ``桂A12345``, trailers ``桂A1234挂``, new energy ``桂AD12345`` (small)
  and ``桂A12345D`` (large). Canonical text carries no separator dot.
* ISO 6346 container numbers with a valid check digit, size/type codes.
* ISO 17712 seal serials (3 letters + 7 digits), VNACCS declaration numbers (12 digits),
  Vietnamese tax codes, IGV fleet IDs and the declaration QR payload.
"""

from __future__ import annotations

import logging
import random
import re
from datetime import UTC, datetime

from appliance.errors import SimulationError

log = logging.getLogger(__name__)

# --- Vietnam -----------------------------------------------------------------------------

# Border provinces first (12 Lạng Sơn, 14 Quảng Ninh, 24 Lào Cai, 11 Cao Bằng), then
# provinces whose trucks commonly reach the northern gates.
VN_BORDER_LOCALITIES = ("12", "14", "24", "11")
VN_OTHER_LOCALITIES = (
    "15", "16", "17", "18", "19", "20", "21", "22", "23", "25", "26", "27", "29", "30",
    "33", "34", "35", "36", "37", "38", "43", "47", "49", "50", "51", "60", "61", "65",
    "72", "79", "88", "89", "90", "98", "99",
)  # fmt: skip
# Series letters used on Vietnamese plates (no I, J, O, Q, R, W except R for trailers).
VN_SERIES_LETTERS = "ABCDEFGHKLMNPSTUVXYZ"
VN_TRUCK_SERIES = ("C", "H", "LD")
VN_TRUCK_SERIES_WEIGHTS = (0.72, 0.18, 0.10)

VN_PLATE_RE = re.compile(r"^\d{2}(?:[A-HK-NPS-VXYZ]{1,2}|[A-HK-NPS-VXYZ]\d|R)-(?:\d{3}\.\d{2}|\d{4})$")
VN_TRAILER_RE = re.compile(r"^\d{2}R-(?:\d{3}\.\d{2}|\d{4})$")

# --- China -------------------------------------------------------------------------------

# Guangxi 桂 (Hữu Nghị / Móng Cái side) and Yunnan 云 (Lào Cai side) dominate.
CN_PROVINCES = ("桂", "云", "粤", "湘", "川", "贵", "琼", "闽", "浙", "苏", "沪", "鲁", "豫", "鄂", "渝")
CN_PROVINCE_WEIGHTS = (0.42, 0.24, 0.10, 0.04, 0.03, 0.03, 0.02, 0.02, 0.02, 0.02, 0.01, 0.02, 0.01, 0.01, 0.01)
CN_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"  # A-Z without I and O
CN_DIGITS = "0123456789"
CN_PROVINCE_CLASS = "".join(CN_PROVINCES)

CN_STANDARD_RE = re.compile(rf"^[{CN_PROVINCE_CLASS}][A-HJ-NP-Z][A-HJ-NP-Z0-9]{{5}}$")
CN_TRAILER_RE = re.compile(rf"^[{CN_PROVINCE_CLASS}][A-HJ-NP-Z][A-HJ-NP-Z0-9]{{4}}挂$")
CN_NEV_SMALL_RE = re.compile(rf"^[{CN_PROVINCE_CLASS}][A-HJ-NP-Z][DF][A-HJ-NP-Z0-9]\d{{4}}$")
CN_NEV_LARGE_RE = re.compile(rf"^[{CN_PROVINCE_CLASS}][A-HJ-NP-Z]\d{{5}}[DF]$")

# --- Containers, seals, declarations -------------------------------------------------------

ISO6346_RE = re.compile(r"^[A-Z]{3}[UJZ]\d{7}$")
SIZE_TYPES_20 = ("22G1", "22G1", "22G1", "22R1", "22U1")
SIZE_TYPES_40 = ("42G1", "45G1", "45G1", "42G1", "45R1", "42R1")
SEAL_RE = re.compile(r"^[A-Z]{3}\d{7}$")
DECLARATION_RE = re.compile(r"^\d{12}$")
FLEET_ID_RE = re.compile(r"^IGV-\d{2}$")

# Owner codes: the two from the domain brief plus made-up ones (no real operator implied).
OWNER_CODES = ("MWC", "CSQ", "TGH", "BLK", "VNL", "HNC", "GXL", "DHX", "KLT", "LSN", "YNT", "PHB")
SEAL_PREFIXES = ("VNH", "VNS", "CNS", "GXS", "HLS", "TSL", "YNS", "LCS")


# The simulator computes ISO 6346 check digits on its own, on purpose, instead of importing
# appliance.analyzers.iso6346: ground truth made with the reader's code would hide a bug that
# both share. Tests check both against the worked examples of the standard.
def _letter_values() -> dict[str, int]:
    """ISO 6346 letter values: A=10, then +1 per letter skipping multiples of 11."""
    values: dict[str, int] = {}
    value = 10
    for letter in "ABCDEFGHIJKLMNOPQRSTUVWXYZ":
        if value % 11 == 0:
            value += 1
        values[letter] = value
        value += 1
    return values


_LETTER_VALUES = _letter_values()


def iso6346_check_digit(code10: str) -> int:
    """Check digit of the first 10 characters of a container number (owner, category, serial).

    Letters take their ISO 6346 values, digits their own; position i weighs 2**i; the sum
    modulo 11 is the check digit, 10 becoming 0.
    """
    if len(code10) != 10 or not re.fullmatch(r"[A-Z]{4}\d{6}", code10):
        raise SimulationError(f"ISO 6346 needs 4 letters + 6 digits, got {code10!r}")
    total = 0
    for i, ch in enumerate(code10):
        total += (_LETTER_VALUES[ch] if ch.isalpha() else int(ch)) << i
    return total % 11 % 10


def iso6346_valid(number: str) -> bool:
    """True when ``number`` is 11 characters and its last digit is the ISO 6346 check digit."""
    if not ISO6346_RE.fullmatch(number):
        return False
    return iso6346_check_digit(number[:10]) == int(number[10])


def container_number(rng: random.Random, owner: str | None = None) -> str:
    """A container number with a valid check digit, e.g. ``MWCU6059784``."""
    owner = owner or rng.choice(OWNER_CODES)
    code10 = f"{owner}U{rng.randrange(1_000_000):06d}"
    return code10 + str(iso6346_check_digit(code10))


def other_container_number(rng: random.Random, number: str) -> str:
    """Another valid number that looks like a typo of ``number`` (one serial digit changed)."""
    for _ in range(100):
        pos = rng.randrange(4, 10)
        digit = rng.choice([d for d in "0123456789" if d != number[pos]])
        code10 = number[:pos] + digit + number[pos + 1 : 10]
        candidate = code10 + str(iso6346_check_digit(code10))
        if candidate != number:
            return candidate
    raise SimulationError(f"could not derive another container number from {number!r}")


def size_type(rng: random.Random, forty_foot: bool) -> str:
    """An ISO 6346 size/type code: 20' (22G1, 22R1...) or 40' (42G1, 45G1, 45R1...)."""
    return rng.choice(SIZE_TYPES_40 if forty_foot else SIZE_TYPES_20)


def format_container(number: str) -> tuple[str, str, str]:
    """The three printed groups of a container number: owner+category, serial, check digit."""
    return number[:4], number[4:10], number[10]


# --- plates --------------------------------------------------------------------------------


def vn_locality(rng: random.Random, border_share: float = 0.6) -> str:
    """A 2-digit Vietnamese locality code, border provinces with probability ``border_share``."""
    if rng.random() < border_share:
        return rng.choice(VN_BORDER_LOCALITIES)
    return rng.choice(VN_OTHER_LOCALITIES)


def vn_order(rng: random.Random, five_digits: bool = True) -> str:
    """The order part of a VN plate: ``123.45`` (5 digits, printed with a dot) or ``1234``."""
    if five_digits:
        n = rng.randrange(100_000)
        return f"{n // 100:03d}.{n % 100:02d}"
    return f"{rng.randrange(10_000):04d}"


def vn_plate(
    rng: random.Random,
    *,
    series: str | None = None,
    locality: str | None = None,
    five_digits: bool | None = None,
) -> str:
    """A Vietnamese plate text, e.g. ``29C-123.45`` or ``12H-4567``.

    ``series`` defaults to a truck series (C, H or LD); pass any series from
    :data:`VN_SERIES_LETTERS` (or ``R`` for trailers) to force one.
    """
    if series is None:
        series = rng.choices(VN_TRUCK_SERIES, weights=VN_TRUCK_SERIES_WEIGHTS)[0]
    if series != "R" and series != "LD" and not all(c in VN_SERIES_LETTERS for c in series):
        raise SimulationError(f"not a Vietnamese plate series: {series!r}")
    if five_digits is None:
        five_digits = rng.random() < 0.8
    return f"{locality or vn_locality(rng)}{series}-{vn_order(rng, five_digits)}"


def vn_trailer_plate(rng: random.Random, locality: str | None = None) -> str:
    """A Vietnamese trailer/semi-trailer plate, series R: ``12R-014.39``."""
    return vn_plate(rng, series="R", locality=locality, five_digits=rng.random() < 0.9)


def _cn_alnum(rng: random.Random, n: int, letter_share: float = 0.15, max_letters: int = 2) -> str:
    """``n`` characters, mostly digits, with at most ``max_letters`` letters (never I or O)."""
    chars: list[str] = []
    letters = 0
    for _ in range(n):
        if letters < max_letters and rng.random() < letter_share:
            chars.append(rng.choice(CN_LETTERS))
            letters += 1
        else:
            chars.append(rng.choice(CN_DIGITS))
    return "".join(chars)


def cn_province(rng: random.Random) -> str:
    """A Chinese province character, Guangxi 桂 and Yunnan 云 most often."""
    return rng.choices(CN_PROVINCES, weights=CN_PROVINCE_WEIGHTS)[0]


def cn_authority(rng: random.Random, province: str) -> str:
    """The issuing authority letter (A-Z without I/O); Dongxing 桂P shows up on the Móng Cái side."""
    if province == "桂" and rng.random() < 0.35:
        return rng.choice("AFP")
    return rng.choice(CN_LETTERS)


def cn_plate(rng: random.Random, province: str | None = None) -> str:
    """A standard Chinese plate (7 characters), e.g. ``桂A12345`` or ``桂AB3K45``.

    Up to two letters among the first four order characters; the last is a digit.
    """
    province = province or cn_province(rng)
    return province + cn_authority(rng, province) + _cn_alnum(rng, 4) + rng.choice(CN_DIGITS)


def cn_trailer_plate(rng: random.Random, province: str | None = None) -> str:
    """A Chinese trailer plate ending in 挂, e.g. ``桂A1234挂``."""
    province = province or cn_province(rng)
    return province + cn_authority(rng, province) + _cn_alnum(rng, 4, letter_share=0.05) + "挂"


def cn_nev_plate(rng: random.Random, large: bool, province: str | None = None) -> str:
    """A new-energy plate (8 characters): small ``桂AD12345``, large ``桂A12345D``."""
    province = province or cn_province(rng)
    head = province + cn_authority(rng, province)
    energy = rng.choice("DF")
    if large:
        return head + "".join(rng.choice(CN_DIGITS) for _ in range(5)) + energy
    return head + energy + _cn_alnum(rng, 1, 0.3) + "".join(rng.choice(CN_DIGITS) for _ in range(4))


def other_plate(rng: random.Random, text: str) -> str:
    """Another plate of the same format that differs from ``text`` in one order character."""
    digit_positions = [i for i, c in enumerate(text) if c.isdigit() and i >= 2]
    if not digit_positions:
        raise SimulationError(f"no digit to change in plate {text!r}")
    pos = rng.choice(digit_positions)
    digit = rng.choice([d for d in CN_DIGITS if d != text[pos]])
    return text[:pos] + digit + text[pos + 1 :]


# --- seals, declarations, fleet IDs ---------------------------------------------------------


def seal_serial(rng: random.Random, prefix: str | None = None) -> str:
    """An ISO 17712 seal serial: 3 letters + 7 digits, e.g. ``VNH1234567``."""
    return (prefix or rng.choice(SEAL_PREFIXES)) + f"{rng.randrange(10_000_000):07d}"


def other_seal_serial(rng: random.Random, serial: str) -> str:
    """Another serial of the same seal batch (same prefix, a nearby number)."""
    n = int(serial[3:])
    delta = rng.choice([-1, 1]) * rng.randrange(1, 40)
    return serial[:3] + f"{(n + delta) % 10_000_000:07d}"


def declaration_number(rng: random.Random, export: bool | None = None) -> str:
    """A 12-digit VNACCS declaration number: 10... for imports, 30... for exports."""
    if export is None:
        export = rng.random() < 0.6
    return ("30" if export else "10") + f"{rng.randrange(10**10):010d}"


def tax_code(rng: random.Random) -> str:
    """A 10-digit Vietnamese enterprise tax code (mã số thuế)."""
    return "0" + f"{rng.randrange(10**9):09d}"


def fleet_id(rng: random.Random, fleet_size: int = 24) -> str:
    """The painted fleet ID of a driverless IGV, e.g. ``IGV-07``."""
    return f"IGV-{rng.randrange(1, fleet_size + 1):02d}"


def declaration_payload(rng: random.Random, number: str, tax: str, when: float) -> str:
    """The QR text of a declaration, one of three forms seen at kiosks.

    * the bare 12-digit number;
    * ``VNACCS|<number>|<yyyymmdd>|<tax code>``;
    * a look-up URL with ``?so_tk=<number>``.
    """
    if not DECLARATION_RE.fullmatch(number):
        raise SimulationError(f"VNACCS declaration number must be 12 digits, got {number!r}")
    form = rng.choices(("bare", "pipe", "url"), weights=(0.3, 0.4, 0.3))[0]
    if form == "bare":
        return number
    day = datetime.fromtimestamp(when, tz=UTC).strftime("%Y%m%d")
    if form == "pipe":
        return f"VNACCS|{number}|{day}|{tax}"
    office = rng.choice(("15E1", "15BB", "20BD", "30KC", "15SI"))
    return f"https://tokhai.example/tra-cuu?so_tk={number}&ma_hq={office}&ngay={day}"
