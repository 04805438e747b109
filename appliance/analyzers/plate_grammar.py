"""Licence-plate grammar for Vietnamese and Chinese plates, with confusion-aware correction.

The grammar is a set of fixed-length *templates*: one character class per position. A raw OCR
string is normalised (upper case, NFKC, separators dropped) and every template is tried on every
window of it (characters dropped at the ends cost a penalty). At each position the template keeps
the recogniser's alternatives that its class allows and, where the class needs a digit and the
OCR saw a letter (or the other way round), the usual look-alike (O/0, I/1, B/8, S/5, Z/2, G/6,
D/0, Q/0, A/4, T/1 ...) at a penalty. Readings are ranked by template prior x product of the
per-character probabilities; the best valid reading comes first, then the N-best.

Canonical forms (``docs/SIMULATOR.md``):

* VN car / truck: ``29C-1234`` (4-digit order), ``29C-123.45`` (5-digit order, dotted); trailers
  use series ``R`` (``51R-141.39``); two-letter series (``LD``, ``KT``, ``DA`` ...) the same way
  (``29LD-123.45``); a letter + digit series (motorcycles, ``59-C1 618.91`` on the plate) is
  written ``59C1-618.91``, and electric motorbikes' ``MĐ`` + digit ``17MD7-027.58`` (Đ as D).
* VN foreign / diplomatic (``NG``, ``QT``, ``NN``, ``CV``): locality, series, 3-digit country
  code and 2-digit order: ``80NG-636-70``. The other printed order ``80-636-NG-70`` is
  canonicalised to the same ``80NG-636-70``.
* CN: ``桂A12345`` (no separator dot), trailer ``桂A1234挂``, new energy ``桂AD12345`` (small,
  D/F first) and ``桂A12345D`` (large, D/F last); special suffixes 学/警/港/澳 are kept.
* Other countries (``country="FOREIGN"``): a few common national formats (EU, UK, BR, US) get
  the same position-wise correction, then a generic fallback (4-8 letters and digits, at least
  one of each, no correction) ranks last. Their canonical form is the compact upper-case text.
"""

from __future__ import annotations

import logging
import math
import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

log = logging.getLogger(__name__)

Country = Literal["VN", "CN", "FOREIGN"]
# One raw character's choices: (character, probability), best first.
CharOptions = tuple[tuple[str, float], ...]
Alternatives = Sequence[Sequence[tuple[str, float]]]

DIGITS = frozenset("0123456789")
LETTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
# Series letters permitted on Vietnamese plates since 2010 ([A-HK-NPS-VXYZ]) plus R (trailers).
VN_SERIES = frozenset("ABCDEFGHKLMNPSTUVXYZ") | {"R"}
VN_TWO_LETTER_SERIES = ("LD", "KT", "DA", "LB", "CT", "MK", "MD", "TD", "HC", "NG", "QT", "NN", "CV")
VN_FOREIGN_SERIES = ("NG", "QT", "NN", "CV")
VN_TWO_LETTER_DIGIT_SERIES = ("MD",)  # electric motorbikes: MĐ1 ... MĐ9
CN_PROVINCES = "京津沪渝冀晋蒙辽吉黑苏浙皖闽赣鲁豫鄂湘粤桂琼川贵云藏陕甘青宁新"
CN_LETTERS = LETTERS - {"I", "O"}
CN_ALNUM = CN_LETTERS | DIGITS
CN_SPECIAL_SUFFIXES = frozenset("学警港澳")
CN_TRAILER = "挂"
PLATE_CJK = frozenset(CN_PROVINCES) | CN_SPECIAL_SUFFIXES | {CN_TRAILER}

# Look-alikes: what an OCR letter may really be where a digit is needed, and the reverse.
TO_DIGIT: dict[str, str] = {
    "O": "0", "Q": "0", "D": "0", "U": "0", "I": "1", "L": "1", "T": "1", "J": "1",
    "Z": "2", "S": "5", "B": "8", "G": "6", "A": "4",
}  # fmt: skip
TO_LETTER: dict[str, tuple[str, ...]] = {
    "0": ("O", "D", "Q"), "1": ("I", "T", "L"), "2": ("Z",), "5": ("S",), "8": ("B",),
    "6": ("G",), "4": ("A",), "7": ("T",),
}  # fmt: skip

# Probability of a look-alike = this x the probability of what the OCR saw (plain text without
# recogniser alternatives), or _UNLISTED when the recogniser gave alternatives and did not list
# it; when one character has several look-alikes (0 -> O, D, Q) each next one gets
# CONFUSION_DECAY times less.
CONFUSION_FACTOR = 0.1
CONFUSION_FACTOR_UNLISTED = 0.01
CONFUSION_DECAY = 0.8
# Confidence (not ranking): the OCR's mean character confidence times these per change.
ALTERNATIVE_CONFIDENCE = 0.9
LOOKALIKE_CONFIDENCE = 0.75
DROP_CONFIDENCE = 0.9
DROP_PENALTY = 0.2  # per raw character left out at either end of the window
SEPARATOR_PENALTY = 0.3  # per separator seen where the layout has none (``29C-123456`` is no moto plate)
# Priors: a VN/CN reading with one look-alike correction still beats a clean foreign one; a
# generic foreign reading (any 4-8 letters and digits) is a far wider model than a format, so
# a format reading that needs a listed alternative of >= 1 % beats it.
FOREIGN_FORMAT_PRIOR = 0.05
GENERIC_PRIOR = 0.0005
# The recogniser's listed alternatives are tempered with p ** this (then renormalised): its
# softmax is over-confident, an 'O' listed at 0.2 % behind a '0' is a real possibility.
ALTERNATIVE_TEMPERATURE = 0.5
# Plates are upper case: a letter the OCR saw in a distinctly lower-case shape counts this much.
LOWER_CASE_FACTOR = 0.3
DISTINCT_LOWER = frozenset("abdefghijlmnqrty")
DEFAULT_N_BEST = 5


# Camera overlays (timestamps) and dates on signs: never plates. Letters a recogniser commonly
# puts for digits are folded first (``c014-05-10``, ``2O14-05-10``).
_DATE_OR_TIME = re.compile(
    r"(?:19|20)\d\d\s*[-/.]\s*[01]?\d\s*[-/.]\s*[0-3]?\d"  # 2014-05-12, 2014/5/12
    r"|[0-3]?\d\s*[-/.]\s*[01]?\d\s*[-/.]\s*(?:19|20)\d\d"  # 12/05/2014, 12-05-2014
    r"|[0-2]?\d\s*:\s*[0-5]\d\s*:\s*[0-5]\d"  # 06:12:32 (a plate's dot read as ':' stays a plate)
    r"|^\s*[0-2]?\d\s*:\s*[0-5]\d\s*$"  # a lone 06:12
)
_DIGIT_LOOKALIKES = str.maketrans({"O": "0", "o": "0", "c": "2", "C": "2", "I": "1", "l": "1", "|": "1", "Z": "2"})


def looks_like_date_or_time(text: str) -> bool:
    """Whether ``text`` holds a date or a clock time (a camera overlay, a sign), not a plate."""
    return _DATE_OR_TIME.search(unicodedata.normalize("NFKC", text).translate(_DIGIT_LOOKALIKES)) is not None


def _clean_char(ch: str) -> str:
    """One raw character, upper-cased and NFKC-folded; '' for separators and noise."""
    if ch == "Đ" or ch == "đ":
        return "D"
    folded = unicodedata.normalize("NFKC", ch).upper()
    return "".join(c for c in folded if c in LETTERS or c in DIGITS or c in PLATE_CJK or _is_cjk(c))


def _is_cjk(ch: str) -> bool:
    return "\u4e00" <= ch <= "\u9fff"


def compact(text: str) -> str:
    """Upper case, full-width folded, every separator and symbol (``-``, ``.``, ``·``, space ...) dropped."""
    return "".join(_clean_char(c) for c in text)


def _flatten(probs: dict[str, float]) -> dict[str, float]:
    """Temper the recogniser's over-confident softmax so its listed alternatives keep some weight."""
    powered = {c: max(p, 0.0) ** ALTERNATIVE_TEMPERATURE for c, p in probs.items()}
    total = sum(powered.values()) or 1.0
    mass = min(1.0, sum(probs.values()))
    return {c: mass * p / total for c, p in powered.items()}


@dataclass(frozen=True)
class Token:
    """One kept raw character: its (character, probability) choices, best first.

    ``evidence`` says whether the choices came from the recogniser (so a look-alike missing
    from them is unlikely) or were made up from plain text.
    """

    options: CharOptions
    evidence: bool = False
    ocr_prob: float = 1.0  # the recogniser's own probability of its top character (uncalibrated)
    sep_before: bool = False  # a separator (or a line break) came right before it

    @property
    def char(self) -> str:
        return self.options[0][0]

    @property
    def prob(self) -> float:
        return self.options[0][1]


def tokens(text: str, alternatives: Alternatives = (), base: float = 1.0) -> list[Token]:
    """Per kept character of ``text``, its choices (separators and symbols dropped).

    ``alternatives`` are the recogniser's per-character choices aligned with ``text``; when they
    are missing or misaligned, every character gets probability ``base``.
    """
    aligned = len(alternatives) == len(text)
    out: list[Token] = []
    separated = False
    for i, raw in enumerate(text):
        cleaned = _clean_char(raw)
        if not cleaned:
            separated = separated or bool(out)
            continue
        evidence = aligned and bool(alternatives[i])
        for ch in cleaned:
            merged: dict[str, float] = {ch: base}
            if evidence:
                merged = {}
                for alt_char, prob in alternatives[i]:
                    alt = _clean_char(alt_char)
                    if len(alt) == 1:
                        merged[alt] = min(1.0, merged.get(alt, 0.0) + float(prob))
                if ch not in merged:
                    merged[ch] = base
            ocr_prob = max(merged.values())
            if evidence:
                merged = _flatten(merged)
            if raw in DISTINCT_LOWER:
                merged = {c: p * LOWER_CASE_FACTOR for c, p in merged.items()}
                ocr_prob *= LOWER_CASE_FACTOR
            options = tuple(sorted(merged.items(), key=lambda kv: -kv[1]))
            out.append(Token(options, evidence, ocr_prob, separated))
            separated = False
    return out


@dataclass(frozen=True)
class PlateParse:
    """A plate reading that fits the grammar.

    ``region`` is the VN locality code (``"29"``) or the CN province character (``"桂"``);
    ``series`` the VN series (``"C"``, ``"LD"``, ``"C1"``) or CN authority letter; ``serial`` the
    rest.

    ``score`` ranks readings: template prior x product of the character probabilities x a
    penalty per character dropped at the ends (``dropped``) and per separator the OCR saw where
    the layout has none (``misplaced``); VN/CN templates have priors near 1, foreign formats far
    lower. ``agreement`` is how likely the characters are relative to the OCR's own best
    reading (1.0: no correction; a look-alike the recogniser did not list: about 0.01).
    ``confidence`` is the OCR's mean character confidence, lowered for each correction
    (``corrections``) and dropped character.
    """

    country: Country
    canonical: str
    kind: str
    region: str
    series: str
    serial: str
    is_trailer: bool = False
    confidence: float = 1.0
    score: float = 1.0
    agreement: float = 1.0
    corrections: int = 0
    dropped: int = 0
    misplaced: int = 0  # separators the OCR saw where this layout has none
    raw: str = field(default="", compare=False)

    @property
    def compact(self) -> str:
        return compact(self.canonical)

    @property
    def province(self) -> str | None:
        return self.region if self.country == "CN" else None

    @property
    def locality(self) -> str | None:
        return self.region if self.country == "VN" else None


Formatter = Callable[[str], tuple[str, str, str, str]]  # compact -> canonical, region, series, serial


@dataclass(frozen=True)
class Template:
    """A fixed-length plate layout: one allowed character set per position."""

    name: str
    country: Country
    slots: tuple[frozenset[str], ...]
    prior: float
    formatter: Formatter
    split: int  # characters on the top line of a two-line plate; -1: no two-line form
    # Positions (characters before) where a written separator or line break may fall; a raw
    # separator elsewhere makes the reading less likely. None: anywhere (foreign formats).
    boundaries: frozenset[int] | None = None
    is_trailer: Callable[[str], bool] = lambda _s: False
    check: Callable[[str], bool] = lambda _s: True
    max_corrections: int = 3  # characters that may differ from the OCR's top choice

    def __len__(self) -> int:
        return len(self.slots)


def _vn_order(order: str) -> str:
    return f"{order[:3]}.{order[3:]}" if len(order) == 5 else order


def _vn_formatter(series_len: int) -> Formatter:
    def fmt(s: str) -> tuple[str, str, str, str]:
        region, series, order = s[:2], s[2 : 2 + series_len], s[2 + series_len :]
        return f"{region}{series}-{_vn_order(order)}", region, series, order

    return fmt


def _vn_foreign_formatter(series_first: bool) -> Formatter:
    def fmt(s: str) -> tuple[str, str, str, str]:
        region = s[:2]
        series, code = (s[2:4], s[4:7]) if series_first else (s[5:7], s[2:5])
        order = s[7:9]
        return f"{region}{series}-{code}-{order}", region, series, f"{code}{order}"

    return fmt


def _cn_formatter(s: str) -> tuple[str, str, str, str]:
    return s, s[0], s[1], s[2:]


def _foreign_formatter(s: str) -> tuple[str, str, str, str]:
    return s, "", "", s


def _locality_ok(s: str) -> bool:
    return s[:2] != "00"


def _fixed(ch: str) -> frozenset[str]:
    return frozenset({ch})


def _vn(name: str, series: tuple[frozenset[str], ...], order_len: int, prior: float, trailer: bool = False) -> Template:
    """A VN template: 2-digit locality, the series slots, a 4- or 5-digit order."""
    split = 2 + len(series)
    boundaries = {2, split} | ({split + 3} if order_len == 5 else set())
    return Template(
        f"{name}_{order_len}", "VN", (DIGITS, DIGITS, *series, *(DIGITS,) * order_len), prior,
        _vn_formatter(len(series)), split, boundaries=frozenset(boundaries),
        is_trailer=(lambda s: s[2] == "R") if trailer else (lambda _s: False), check=_locality_ok,
    )  # fmt: skip


def _vn_templates() -> list[Template]:
    d = DIGITS
    out: list[Template] = []
    for order_len in (4, 5):
        out.append(_vn("vn", (VN_SERIES,), order_len, 1.0, trailer=True))
        out.append(_vn("vn_digit_series", (VN_SERIES, d), order_len, 0.8))
        for pair in VN_TWO_LETTER_SERIES:
            if pair not in VN_FOREIGN_SERIES:
                out.append(_vn(f"vn_{pair}", (_fixed(pair[0]), _fixed(pair[1])), order_len, 0.9))
        for pair in VN_TWO_LETTER_DIGIT_SERIES:
            out.append(_vn(f"vn_{pair}d", (_fixed(pair[0]), _fixed(pair[1]), d), order_len, 0.8))
    for pair in VN_FOREIGN_SERIES:
        series = (_fixed(pair[0]), _fixed(pair[1]))
        out.append(
            Template(f"vn_{pair}", "VN", (d, d, *series, d, d, d, d, d), 0.9, _vn_foreign_formatter(True), 4,
                     boundaries=frozenset({2, 4, 7}), check=_locality_ok)
        )  # fmt: skip
        out.append(
            Template(f"vn_{pair}_code_first", "VN", (d, d, d, d, d, *series, d, d), 0.8, _vn_foreign_formatter(False),
                     5, boundaries=frozenset({2, 5, 7}), check=_locality_ok)
        )  # fmt: skip
    return out


def _cn_templates() -> list[Template]:
    p, letter, alnum, d = frozenset(CN_PROVINCES), CN_LETTERS, CN_ALNUM, DIGITS
    df = frozenset("DF")
    b2, b26 = frozenset({2}), frozenset({2, 6})  # the dot after the province + letter; before 挂
    return [
        Template("cn_standard", "CN", (p, letter, alnum, alnum, alnum, alnum, alnum), 1.0, _cn_formatter, 2,
                 boundaries=b2),
        Template("cn_new_energy_small", "CN", (p, letter, df, alnum, d, d, d, d), 1.0, _cn_formatter, 2,
                 boundaries=b2),
        Template("cn_new_energy_large", "CN", (p, letter, d, d, d, d, d, df), 1.0, _cn_formatter, 2,
                 boundaries=b2),
        Template("cn_trailer", "CN", (p, letter, alnum, alnum, alnum, alnum, _fixed(CN_TRAILER)), 1.0,
                 _cn_formatter, 2, boundaries=b26, is_trailer=lambda _s: True),
        Template("cn_special", "CN", (p, letter, alnum, alnum, alnum, alnum, CN_SPECIAL_SUFFIXES), 0.9,
                 _cn_formatter, 2, boundaries=b26),
    ]  # fmt: skip


# Common national formats outside VN/CN, as L(etter)/D(igit) patterns. Only used to correct
# look-alikes on foreign plates; ranked far below VN/CN.
FOREIGN_FORMATS: dict[str, str] = {
    "LLDDDLL": "IT/FR/SK",
    "DDDDLLL": "ES",
    "LLDDLLL": "UK",
    "DLDDDDD": "CZ",
    "DLLDDDD": "CZ",
    "LLLDDDD": "BR/US",
    "LLLDLDD": "BR Mercosur",
    "DLLLDDD": "US-CA",
}


def _foreign_templates() -> list[Template]:
    out = []
    for pattern, where in FOREIGN_FORMATS.items():
        slots = tuple(LETTERS if c == "L" else DIGITS for c in pattern)
        out.append(
            Template(
                f"foreign_{pattern}_{where}",
                "FOREIGN",
                slots,
                FOREIGN_FORMAT_PRIOR,
                _foreign_formatter,
                split=-1,  # one-line only
                max_corrections=1,  # a weak prior: more than one change is left to the generic reading
            )
        )
    return out


VN_TEMPLATES: tuple[Template, ...] = tuple(_vn_templates())
CN_TEMPLATES: tuple[Template, ...] = tuple(_cn_templates())
FOREIGN_TEMPLATES: tuple[Template, ...] = tuple(_foreign_templates())


@dataclass(frozen=True)
class _Choice:
    char: str
    prob: float  # for ranking
    kind: int  # 0: what the OCR saw, 1: one of its alternatives, 2: a look-alike it did not list


def _slot_choices(token: Token, slot: frozenset[str]) -> list[_Choice]:
    """What this raw character may be in this slot, most likely first."""
    seen: dict[str, _Choice] = {}
    for rank, (ch, prob) in enumerate(token.options):
        if ch in slot and (ch not in seen or prob > seen[ch].prob):
            seen[ch] = _Choice(ch, prob, 0 if rank == 0 else 1)
    factor = CONFUSION_FACTOR_UNLISTED if token.evidence else CONFUSION_FACTOR
    # A look-alike the recogniser did not list is less likely than every one it did.
    ceiling = 0.5 * min(p for _, p in token.options) if token.evidence else 1.0
    top = token.char
    targets = (TO_DIGIT[top],) if top in TO_DIGIT else TO_LETTER.get(top, ())
    for rank, target in enumerate(targets):
        if target in slot and target not in seen:
            prob = min(ceiling, token.prob * factor) * CONFUSION_DECAY**rank
            seen[target] = _Choice(target, prob, 2)
    return sorted(seen.values(), key=lambda c: -c.prob)


@dataclass(frozen=True)
class _Partial:
    chars: str
    log_prob: float
    log_agreement: float = 0.0
    alternatives_used: int = 0
    lookalikes_used: int = 0


def _fill(template: Template, window: Sequence[Token], beam: int) -> list[_Partial]:
    """The ``beam`` best ways the window fills the template (positions are independent)."""
    partials = [_Partial("", 0.0)]
    for token, slot in zip(window, template.slots, strict=True):
        choices = _slot_choices(token, slot)[:beam]
        if not choices:
            return []
        grown = [
            _Partial(
                p.chars + c.char,
                p.log_prob + math.log(max(c.prob, 1e-12)),
                p.log_agreement + math.log(max(c.prob, 1e-12) / max(token.prob, 1e-12)),
                p.alternatives_used + int(c.kind == 1),
                p.lookalikes_used + int(c.kind == 2),
            )
            for p in partials
            for c in choices
            if p.alternatives_used + p.lookalikes_used + int(c.kind != 0) <= template.max_corrections
        ]
        if not grown:
            return []
        grown.sort(key=lambda p: -p.log_prob)
        partials = grown[:beam]
    return partials


def _confidence(window: Sequence[Token], alternatives_used: int, lookalikes_used: int, dropped: int) -> float:
    """The OCR's own confidence in the characters used, lowered for every change made to them."""
    if not window:
        return 0.0
    ocr = math.exp(sum(math.log(max(t.ocr_prob, 1e-12)) for t in window) / len(window))
    return _clip(
        ocr * ALTERNATIVE_CONFIDENCE**alternatives_used * LOOKALIKE_CONFIDENCE**lookalikes_used
        * DROP_CONFIDENCE**dropped
    )  # fmt: skip


def _generic(toks: Sequence[Token], raw: str) -> PlateParse | None:
    """The generic foreign fallback: the whole text, 4-8 letters/digits with at least one of each."""
    text = "".join(t.char for t in toks)
    if not 4 <= len(text) <= 8 or not all(c in LETTERS or c in DIGITS for c in text):
        return None
    if not any(c in DIGITS for c in text) or not any(c in LETTERS for c in text):
        return None
    likelihood = math.exp(sum(math.log(max(t.prob, 1e-12)) for t in toks))
    return PlateParse("FOREIGN", text, "foreign_generic", "", "", text, False, _confidence(toks, 0, 0, 0),
                      GENERIC_PRIOR * likelihood, raw=raw)  # fmt: skip


def _clip(value: float) -> float:
    return min(1.0, max(0.0, value))


def _templates(countries: Iterable[Country]) -> list[Template]:
    chosen = set(countries)
    out: list[Template] = []
    if "VN" in chosen:
        out.extend(VN_TEMPLATES)
    if "CN" in chosen:
        out.extend(CN_TEMPLATES)
    if "FOREIGN" in chosen:
        out.extend(FOREIGN_TEMPLATES)
    return out


def _windows(n: int, length: int, split_at: int | None, split: int) -> Iterable[int]:
    """Start positions of a ``length`` window in ``n`` tokens (aligned to a line split if given)."""
    if split_at is not None:
        if split < 0:
            return
        start = split_at - split
        if start >= 0 and start + length <= n:
            yield start
        return
    yield from range(0, n - length + 1)


def correct_tokens(
    toks: Sequence[Token],
    *,
    raw: str = "",
    n_best: int = DEFAULT_N_BEST,
    countries: Iterable[Country] = ("VN", "CN"),
    max_dropped: int = 3,
    split_at: int | None = None,
) -> tuple[PlateParse, ...]:
    """Valid readings of the tokens, best first (see ``correct``).

    ``split_at``: for a two-line plate, the token index where the bottom line starts; only
    readings whose top part ends exactly there are kept.
    """
    countries = tuple(countries)
    found: dict[str, PlateParse] = {}
    n = len(toks)
    for template in _templates(countries):
        size = len(template)
        for start in _windows(n, size, split_at, template.split):
            dropped = n - size
            if dropped > max_dropped:
                continue
            window = toks[start : start + size]
            for partial in _fill(template, window, n_best):
                parse = _make_parse(template, partial, window, dropped, raw)
                if parse is not None and parse.score > found.get(parse.canonical, parse).score - 1e-12:
                    found[parse.canonical] = parse
    if "FOREIGN" in countries and split_at is None:
        generic = _generic(toks, raw)
        if generic is not None and generic.canonical not in found:
            found[generic.canonical] = generic
    ranked = sorted(found.values(), key=lambda p: (-p.score, p.canonical))
    return tuple(ranked[:n_best])


def _misplaced(template: Template, window: Sequence[Token]) -> int:
    """Separators (or the line break) the OCR saw where this layout has none."""
    if template.boundaries is None:
        return 0
    return sum(1 for i, t in enumerate(window) if i > 0 and t.sep_before and i not in template.boundaries)


def _make_parse(
    template: Template, partial: _Partial, window: Sequence[Token], dropped: int, raw: str
) -> PlateParse | None:
    if not template.check(partial.chars):
        return None
    canonical, region, series, serial = template.formatter(partial.chars)
    confidence = _confidence(window, partial.alternatives_used, partial.lookalikes_used, dropped)
    misplaced = _misplaced(template, window)
    likelihood = math.exp(partial.log_prob) * DROP_PENALTY**dropped * SEPARATOR_PENALTY**misplaced
    agreement = _clip(math.exp(partial.log_agreement))
    return PlateParse(
        template.country, canonical, template.name, region, series, serial,
        is_trailer=template.is_trailer(partial.chars), confidence=confidence, score=template.prior * likelihood,
        agreement=agreement,
        corrections=partial.alternatives_used + partial.lookalikes_used, dropped=dropped, misplaced=misplaced,
        raw=raw,
    )  # fmt: skip


def correct(
    text: str,
    alternatives: Alternatives = (),
    *,
    confidence: float = 1.0,
    n_best: int = DEFAULT_N_BEST,
    countries: Iterable[Country] = ("VN", "CN"),
    max_dropped: int = 3,
) -> tuple[PlateParse, ...]:
    """Valid plate readings of an OCR line, best first (empty when none fits).

    ``alternatives`` are the recogniser's per-character (character, probability) choices
    aligned with ``text`` (``TextLine.alternatives``); without them every character counts with
    probability ``confidence``. Look-alike corrections apply only where a template needs a digit
    and saw a letter or the reverse. Up to ``max_dropped`` characters may be left out at the two
    ends (a border read as ``1``, a country band ...). Dates and clock times (camera overlays)
    give nothing. Add ``"FOREIGN"`` to ``countries`` to also
    get non-VN/CN plates (ranked below).
    """
    if looks_like_date_or_time(text):
        log.debug("plate grammar %r: a date or time, not a plate", text)
        return ()
    toks = tokens(text, alternatives, confidence)
    results = correct_tokens(toks, raw=text, n_best=n_best, countries=countries, max_dropped=max_dropped)
    log.debug("plate grammar %r -> %s", text, [p.canonical for p in results])
    return results


def best(
    text: str,
    alternatives: Alternatives = (),
    *,
    confidence: float = 1.0,
    countries: Iterable[Country] = ("VN", "CN"),
) -> PlateParse | None:
    """The best valid reading of ``text``, or None."""
    results = correct(text, alternatives, confidence=confidence, n_best=1, countries=countries)
    return results[0] if results else None


def normalise(
    text: str, alternatives: Alternatives = (), countries: Iterable[Country] = ("VN", "CN")
) -> tuple[str, ...]:
    """Canonical candidates for ``text``, best first (``29C-I23.45`` -> ``("29C-123.45", ...)``)."""
    return tuple(p.canonical for p in correct(text, alternatives, countries=countries))


def parse(text: str, countries: Iterable[Country] = ("VN", "CN")) -> PlateParse | None:
    """Strict parse: ``text`` as it stands: no corrections, nothing dropped, separators (if any)
    where the layout has them (``29C-123.45``, ``29C12345``, ``59-C1 618.91``; not ``29C-123456``).

    When the characters fit several layouts (``59C16189``: ``59C-161.89`` or ``59C1-6189``),
    the one whose canonical form is ``text`` itself wins, else the best ranked.
    """
    toks = tokens(text)
    exact = [
        r
        for r in correct_tokens(toks, raw=text, n_best=DEFAULT_N_BEST, countries=countries, max_dropped=0)
        if r.corrections == 0 and r.misplaced == 0
    ]
    written = unicodedata.normalize("NFKC", text).strip().upper()
    for result in exact:
        if result.canonical == written:
            return result
    return exact[0] if exact else None


def is_valid(text: str, countries: Iterable[Country] = ("VN", "CN")) -> bool:
    """Whether ``text`` is a plate as it stands (no corrections)."""
    return parse(text, countries) is not None


def assemble(
    top: str,
    bottom: str,
    top_alternatives: Alternatives = (),
    bottom_alternatives: Alternatives = (),
    *,
    top_confidence: float = 1.0,
    bottom_confidence: float = 1.0,
    n_best: int = DEFAULT_N_BEST,
    countries: Iterable[Country] = ("VN", "CN"),
) -> tuple[PlateParse, ...]:
    """Readings of a two-line plate: ``29C`` over ``123.45``, ``桂A`` over ``1234挂`` ...

    The join must fall exactly between the template's top part (VN locality + series, CN
    province + letter) and the rest; stray characters may be dropped only at the outer ends.
    """
    if looks_like_date_or_time(top) or looks_like_date_or_time(bottom):
        return ()
    top_toks = tokens(top, top_alternatives, top_confidence)
    bottom_toks = tokens(bottom, bottom_alternatives, bottom_confidence)
    if not top_toks or not bottom_toks:
        return ()
    toks = [*top_toks, replace(bottom_toks[0], sep_before=True), *bottom_toks[1:]]
    results = correct_tokens(toks, raw=f"{top}/{bottom}", n_best=n_best, countries=countries, split_at=len(top_toks))
    log.debug("plate grammar two-line %r / %r -> %s", top, bottom, [p.canonical for p in results])
    return results
