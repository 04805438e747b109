"""ISO 6346 container numbers: check digit, parsing, size/type codes and OCR correction.

A container number is a 3-letter owner code, an equipment category (``U`` freight container,
``J`` detachable equipment, ``Z`` trailer/chassis), a 6-digit serial and a check digit::

    MWC U 605978 4

The check digit: letters are worth A=10, B=12 ... Z=38 (multiples of 11 skipped), digits their
value; character *i* (from 0 on the left) is weighted 2**i; the sum mod 11 is the check digit,
a remainder of 10 becoming 0.

:func:`candidates` turns an OCR string (with optional per-character alternatives from the
recogniser) into the most likely check-digit-valid numbers. It never returns an invalid one.
"""

from __future__ import annotations

import itertools
import logging
import math
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

log = logging.getLogger(__name__)

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
DIGITS = "0123456789"
CATEGORIES = "UJZ"
NUMBER_LENGTH = 11
NUMBER_PATTERN = re.compile(r"^[A-Z]{3}[UJZ][0-9]{7}$")


def _letter_values() -> dict[str, int]:
    values: dict[str, int] = {}
    value = 10
    for letter in LETTERS:
        if value % 11 == 0:
            value += 1
        values[letter] = value
        value += 1
    return values


LETTER_VALUES: dict[str, int] = _letter_values()
CHAR_VALUES: dict[str, int] = {**{d: int(d) for d in DIGITS}, **LETTER_VALUES}


# --------------------------------------------------------------------------------------------
# Check digit and parsing
# --------------------------------------------------------------------------------------------


def check_digit(prefix: str) -> int:
    """The check digit of the first 10 characters (owner code, category, serial).

    >>> check_digit("MWCU605978")
    4
    """
    prefix = prefix.replace(" ", "").upper()
    if len(prefix) != 10 or any(c not in CHAR_VALUES for c in prefix):
        raise ValueError(f"need 10 characters A-Z/0-9 to compute a check digit, got {prefix!r}")
    total = sum(CHAR_VALUES[c] << i for i, c in enumerate(prefix))
    return total % 11 % 10


def is_valid(number: str) -> bool:
    """True when ``number`` (spaces ignored) is a well-formed ISO 6346 number whose check digit holds."""
    compact = number.replace(" ", "").upper()
    if not NUMBER_PATTERN.match(compact):
        return False
    return check_digit(compact[:10]) == int(compact[10])


@dataclass(frozen=True)
class ContainerNumber:
    """A parsed container number."""

    owner: str  # 3 letters
    category: str  # U, J or Z
    serial: str  # 6 digits
    check: int

    @property
    def owner_code(self) -> str:
        """Owner code plus category, e.g. ``MWCU`` (the BIC code)."""
        return self.owner + self.category

    @property
    def number(self) -> str:
        return f"{self.owner}{self.category}{self.serial}{self.check}"

    @property
    def check_holds(self) -> bool:
        return check_digit(self.number[:10]) == self.check

    def formatted(self) -> str:
        """The number as painted: ``MWCU 605978 4``."""
        return f"{self.owner_code} {self.serial} {self.check}"


def parse(number: str) -> ContainerNumber:
    """Split a well-formed number into its parts (the check digit is not verified here)."""
    compact = number.replace(" ", "").upper()
    if not NUMBER_PATTERN.match(compact):
        raise ValueError(f"not an ISO 6346 container number (AAA[UJZ]nnnnnnn): {number!r}")
    return ContainerNumber(compact[:3], compact[3], compact[4:10], int(compact[10]))


# --------------------------------------------------------------------------------------------
# Size/type codes (ISO 6346:1995)
# --------------------------------------------------------------------------------------------

LENGTH_CODES: dict[str, str] = {
    "1": "10ft", "2": "20ft", "3": "30ft", "4": "40ft",
    "A": "7150mm", "B": "24ft", "C": "24ft6in", "D": "7450mm", "E": "7820mm", "F": "8100mm",
    "G": "41ft", "H": "43ft", "K": "13600mm", "L": "45ft", "M": "48ft", "N": "49ft", "P": "53ft",
}  # fmt: skip
HEIGHT_CODES: dict[str, str] = {
    "0": "8ft", "2": "8ft6in", "4": "9ft", "5": "9ft6in", "6": ">9ft6in", "8": "4ft3in", "9": "<=4ft",
    "C": "8ft6in/wide", "D": "9ft/wide", "E": "9ft6in/wide", "F": ">9ft6in/wide",
    "L": "8ft6in/extra-wide", "M": "9ft/extra-wide", "N": "9ft6in/extra-wide", "P": ">9ft6in/extra-wide",
}  # fmt: skip
TYPE_CODES: dict[str, str] = {
    **{f"G{i}": "general purpose" for i in range(4)},
    **{f"V{i}": "ventilated" for i in (0, 2, 4)},
    **{f"B{i}": "dry bulk" for i in range(7)},
    **{f"S{i}": "named cargo" for i in range(3)},
    **{f"R{i}": "reefer" for i in range(4)},
    **{f"H{i}": "insulated" for i in (0, 1, 2, 5, 6)},
    **{f"U{i}": "open top" for i in range(6)},
    **{f"P{i}": "platform/flat" for i in range(6)},
    **{f"T{i}": "tank" for i in range(10)},
    "A0": "air/surface",
}


@dataclass(frozen=True)
class SizeType:
    """A parsed size/type code such as ``42G1``."""

    code: str
    length: str
    height: str
    kind: str


def parse_size_type(code: str) -> SizeType | None:
    """The parsed size/type code, or None when ``code`` is not a valid ISO 6346:1995 code."""
    code = code.replace(" ", "").upper()
    if len(code) != 4:
        return None
    length, height, kind = LENGTH_CODES.get(code[0]), HEIGHT_CODES.get(code[1]), TYPE_CODES.get(code[2:])
    if length is None or height is None or kind is None:
        return None
    return SizeType(code, length, height, kind)


def is_valid_size_type(code: str) -> bool:
    return parse_size_type(code) is not None


# --------------------------------------------------------------------------------------------
# OCR normalisation
# --------------------------------------------------------------------------------------------

# Circled digits that recognisers emit for the boxed check digit (NFKC folds ① and full-width
# forms, not the negative/dingbat circles).
_SPECIAL_DIGITS: dict[str, str] = {
    **{chr(0x2460 + i): str(i + 1) for i in range(9)},  # ①..⑨
    **{chr(0x2776 + i): str(i + 1) for i in range(9)},  # ❶..❾
    **{chr(0x2780 + i): str(i + 1) for i in range(9)},  # ➀..➈
    **{chr(0x278A + i): str(i + 1) for i in range(9)},  # ➊..➒
    "⓪": "0",
    "⓿": "0",
}


def normalize_char(char: str) -> str:
    """One OCR character as an upper-case A-Z/0-9 character, or '' when it carries none."""
    if char in _SPECIAL_DIGITS:
        return _SPECIAL_DIGITS[char]
    folded = unicodedata.normalize("NFKC", char)
    if len(folded) != 1:
        return ""
    upper = folded.upper()
    return upper if upper in CHAR_VALUES else ""


Alternatives = Sequence[Sequence[tuple[str, float]]]


def clean(text: str, alternatives: Alternatives | None = None) -> list[list[tuple[str, float]]]:
    """Per kept character (A-Z/0-9 after normalisation), its normalised alternatives.

    Spaces, punctuation and box outlines are dropped together with their alternatives.
    Without alternatives each character gets probability ``DEFAULT_P``.
    """
    use_alts = alternatives is not None and len(alternatives) == len(text)
    if alternatives is not None and not use_alts:
        log.debug("alternatives (%d) do not align with text %r; ignoring them", len(alternatives), text)
    out: list[list[tuple[str, float]]] = []
    for i, char in enumerate(text):
        top = normalize_char(char)
        if not top:
            continue
        options: dict[str, float] = {}
        if use_alts and alternatives is not None:
            for alt, prob in alternatives[i]:
                norm = normalize_char(alt)
                if norm:
                    options[norm] = max(options.get(norm, 0.0), float(prob))
        if top not in options:  # no alternatives, or the top choice folded away
            options[top] = DEFAULT_P
        ranked = sorted(options.items(), key=lambda kv: (kv[0] != top, -kv[1]))
        out.append(ranked)
    return out


# --------------------------------------------------------------------------------------------
# Candidate search
# --------------------------------------------------------------------------------------------

DEFAULT_P = 0.9  # probability given to an OCR character without alternatives
GRAMMAR_W = 0.6  # a letter in a digit slot (or the reverse) mapped by shape: O->0, B->8 ...
SIMILAR_W = 0.04  # a same-class look-alike: 8<->6, O<->Q ...
FLOOR_P = 1e-3  # any other character of the slot's class
INSERT_P = 0.01  # a character the OCR missed inside the number (each possible character)
INSERT_LAST_P = 0.05  # the check digit missed (often boxed apart from the serial)
DELETE_P = 0.02  # a character the OCR added (inside the number)
CATEGORY_U_P = 0.02  # an unreadable category slot is most likely a U
TRIM_P = 0.5  # a character left out at either end (junk around the number)
MAX_LOOSENESS = 2  # shape mappings + trimmed ends a verified read may need

TO_DIGIT: dict[str, str] = {
    "O": "0", "D": "0", "Q": "0", "I": "1", "L": "1", "Z": "2", "S": "5", "B": "8", "G": "6", "A": "4",
    "T": "7",
}  # fmt: skip
TO_LETTER: dict[str, str] = {
    "0": "O", "1": "I", "2": "Z", "4": "A", "5": "S", "6": "G", "7": "T", "8": "B",
}  # fmt: skip
TO_CATEGORY: dict[str, str] = {"V": "U"}  # O/0/W for U are look-alikes only: seal serials have digits there
# Look-alike pairs (either way round) that OCR confuses beyond the letter/digit shape mapping.
SIMILAR_PAIRS = (
    "08 06 09 0U 0C 0D 0Q 17 1J 1L 2Z 27 35 38 39 3B 56 58 68 6B 89 8S 9G 4A 7Y "
    "OQ OD OC OU CG DQ IL IT IJ EF EB FP HN HM MN MW NW KX PR BR UV UW VW VY"
)


def _similar_table(pairs: str) -> dict[str, str]:
    table: dict[str, str] = {}
    for pair in pairs.split():
        a, b = pair[0], pair[1]
        table[a] = table.get(a, "") + b
        table[b] = table.get(b, "") + a
    return table


SIMILAR: dict[str, str] = _similar_table(SIMILAR_PAIRS)

SLOT_CLASSES: tuple[str, ...] = (LETTERS,) * 3 + (CATEGORIES,) + (DIGITS,) * 7


def _class_map(char: str, klass: str) -> str | None:
    """The character ``char`` stands for in a slot of class ``klass`` by shape, if any."""
    if klass == DIGITS:
        return TO_DIGIT.get(char)
    if klass == CATEGORIES:
        return TO_CATEGORY.get(char)
    return TO_LETTER.get(char)


def _reachable(char: str, klass: str) -> list[tuple[str, float]]:
    """Characters of ``klass`` that an observed ``char`` may stand for, with weights."""
    out: list[tuple[str, float]] = []
    if char in klass:
        out.append((char, 1.0))
    mapped = _class_map(char, klass) if klass in (DIGITS, CATEGORIES, LETTERS) else _any_map(char, klass)
    if mapped is not None and mapped in klass:
        out.append((mapped, GRAMMAR_W))
    for similar in SIMILAR.get(char, ""):
        if similar in klass:
            out.append((similar, SIMILAR_W))
    return out


def _any_map(char: str, klass: str) -> str | None:
    """Shape mapping into a mixed class (size/type slots): whichever direction lands in it."""
    for table in (TO_DIGIT, TO_LETTER):
        mapped = table.get(char)
        if mapped is not None and mapped in klass:
            return mapped
    return None


@dataclass(frozen=True)
class _SlotOption:
    char: str
    logp: float
    free: bool  # reading the slot as this char is what the OCR said (up to a shape mapping)
    mapped: bool = False  # ... by a letter/digit shape mapping (O->0, 1->I ...)


def _slot_options(
    observed: list[tuple[str, float]] | None, klass: str, floor: bool, insert_p: float = INSERT_P
) -> list[_SlotOption]:
    """The characters of ``klass`` this slot may hold, with log-probabilities given the observation.

    Only characters the observation supports (itself, its shape mapping, look-alikes, the
    recogniser's alternatives) are offered, plus every other one at ``FLOOR_P`` when ``floor``.
    """
    if observed is None:  # inserted slot: the OCR missed a character here
        return [_SlotOption(c, math.log(insert_p), False) for c in klass]
    probs: dict[str, float] = {}
    top = observed[0][0]
    free: set[str] = set()
    mapped = False
    for rank, (char, prob) in enumerate(observed):
        for target, weight in _reachable(char, klass):
            probs[target] = max(probs.get(target, 0.0), prob * weight)
            if rank == 0 and (target == top or weight == GRAMMAR_W) and not free:
                free.add(target)
                mapped = target != top
    if klass == CATEGORIES:  # nearly every box is a U: always offer it, J and Z weakly
        probs["U"] = max(probs.get("U", 0.0), CATEGORY_U_P)
        floor = True
    if floor:
        for c in klass:
            probs.setdefault(c, FLOOR_P)
    return [_SlotOption(c, math.log(max(p, FLOOR_P)), c in free, mapped and c in free) for c, p in probs.items()]


@dataclass(frozen=True)
class Candidate:
    """A check-digit-valid number the OCR string could mean.

    ``logp`` is the log-likelihood of the reading; ``corrections`` counts the characters that
    differ from what the OCR said (beyond letter/digit shape mapping), plus inserted and
    deleted characters. A candidate with no correction is verified by its check digit; one
    with corrections was chosen *using* the check digit, so the check no longer vouches for it.
    """

    number: str
    logp: float
    corrections: int
    mapped: int = 0  # characters taken through a letter/digit shape mapping (O->0 ...)
    trimmed: int = 0  # characters dropped at either end of the OCR string

    @property
    def verified(self) -> bool:
        """No correction, and few enough mappings/trims that the check digit still vouches for it.

        Every shape mapping or trimmed end is one more reading tried against the check digit;
        each passes by chance one time in 11, so only a couple are tolerated.
        """
        return self.corrections == 0 and self.mapped + self.trimmed <= MAX_LOOSENESS

    @property
    def likelihood(self) -> float:
        """Geometric mean per-character probability, 0..1."""
        return min(1.0, math.exp(self.logp / NUMBER_LENGTH))


_Partial = tuple[float, str, int, int]  # (logp, text so far, corrections, mappings)


def _kbest_valid(slots: list[list[_SlotOption]], base: _Alignment, k: int) -> list[Candidate]:
    """The ``k`` best valid numbers over 11 slots of options (dynamic programming on sum mod 11)."""
    layer: dict[int, list[_Partial]] = {0: [(base.logp, "", base.edits, 0)]}
    for i, options in enumerate(slots[:10]):
        weight = 1 << i
        nxt: dict[int, list[_Partial]] = {}
        for residue, partials in layer.items():
            for opt in options:
                r = (residue + CHAR_VALUES[opt.char] * weight) % 11
                bucket = nxt.setdefault(r, [])
                for logp, text, corr, mapped in partials:
                    bucket.append((logp + opt.logp, text + opt.char, corr + (not opt.free), mapped + opt.mapped))
        layer = {r: sorted(bucket, reverse=True)[:k] for r, bucket in nxt.items()}
    check_options = {opt.char: opt for opt in slots[10]}
    out: list[Candidate] = []
    for residue, partials in layer.items():
        check = check_options.get(str(residue % 10))
        if check is None:
            continue
        for logp, text, corr, mapped in partials:
            out.append(
                Candidate(
                    text + check.char,
                    logp + check.logp,
                    corr + (not check.free),
                    mapped + check.mapped,
                    base.trimmed,
                )
            )
    out.sort(key=lambda c: -c.logp)
    return out[:k]


@dataclass(frozen=True)
class _Alignment:
    """Which observed character fills each of the 11 slots (None: one the OCR missed)."""

    sources: tuple[int | None, ...]
    logp: float  # penalty for trimmed/deleted characters
    edits: int  # characters deleted inside the number
    trimmed: int  # characters dropped at the ends


def _alignments(m: int) -> Iterable[_Alignment]:
    """Ways to map 11 slots onto ``m`` observed characters.

    Junk at either end may be trimmed; at most one character is inserted (serial or check
    digit) or deleted inside.
    """
    log_trim, log_del = math.log(TRIM_P), math.log(DELETE_P)
    for start in range(m - NUMBER_LENGTH + 1):  # exact windows
        trimmed = m - NUMBER_LENGTH
        yield _Alignment(tuple(range(start, start + NUMBER_LENGTH)), trimmed * log_trim, 0, trimmed)
    if m > NUMBER_LENGTH + 2:
        return
    for start in range(m - NUMBER_LENGTH):  # one extra character inside a 12-wide window
        trimmed = m - NUMBER_LENGTH - 1
        for skip in range(start + 1, start + NUMBER_LENGTH):
            sources = tuple(j for j in range(start, start + NUMBER_LENGTH + 1) if j != skip)
            yield _Alignment(sources, trimmed * log_trim + log_del, 1, trimmed)
    for start in range(max(0, m - NUMBER_LENGTH + 2)):  # one missing character in a 10-wide window
        if start + NUMBER_LENGTH - 1 > m:
            break
        trimmed = m - (NUMBER_LENGTH - 1)
        window = list(range(start, start + NUMBER_LENGTH - 1))
        for gap in range(4, NUMBER_LENGTH):
            # No invented owner/category letter: any 3 letters + 7 digits (a seal serial) would
            # become a number. The inserted slot carries its own penalty and counts as a correction.
            yield _Alignment((*window[:gap], None, *window[gap:]), trimmed * log_trim, 0, trimmed)


def scored_candidates(text: str, alternatives: Alternatives | None = None, n: int = 5) -> list[Candidate]:
    """The ``n`` most likely check-digit-valid numbers for an OCR string, best first.

    ``alternatives`` (optional) are the recogniser's per-character (char, probability) choices,
    aligned with ``text``. Handles spaces, the boxed check digit read as a separate token or a
    circled digit, letter/digit look-alikes, one missing or one extra character, and junk at the
    ends. Returns [] when the string is too short to hold a number.
    """
    observed = clean(text, alternatives)
    m = len(observed)
    if m < NUMBER_LENGTH - 1 or n <= 0:
        return []
    options_cache: dict[tuple[int | None, int], list[_SlotOption]] = {}

    def options(source: int | None, slot: int) -> list[_SlotOption]:
        key = (source, slot)
        if key not in options_cache:
            obs = observed[source] if source is not None else None
            last = slot == NUMBER_LENGTH - 1
            # A missing boxed check digit is the commonest miss: cheaper to insert there.
            insert_p = INSERT_LAST_P if last else INSERT_P
            options_cache[key] = _slot_options(obs, SLOT_CLASSES[slot], floor=last, insert_p=insert_p)
        return options_cache[key]

    planned = []
    for alignment in _alignments(m):
        slots = [options(src, i) for i, src in enumerate(alignment.sources)]
        if not all(slots):
            continue  # some character fits its slot in no way
        bound = alignment.logp + sum(max(o.logp for o in opts) for opts in slots)
        planned.append((bound, alignment, slots))
    planned.sort(key=lambda p: -p[0])
    best: dict[str, Candidate] = {}
    for bound, alignment, slots in planned:
        if len(best) >= n and bound < sorted(c.logp for c in best.values())[-n]:
            break  # no reading under this (or any later) alignment can enter the top n
        for cand in _kbest_valid(slots, alignment, n):
            if cand.number not in best or cand.logp > best[cand.number].logp:
                best[cand.number] = cand
    ranked = sorted(best.values(), key=lambda c: (-c.logp, c.corrections))[:n]
    if ranked and not all(is_valid(c.number) for c in ranked):  # pragma: no cover - invariant
        raise AssertionError(f"invalid candidate produced for {text!r}: {ranked}")
    return ranked


def candidates(text: str, alternatives: Alternatives | None = None, n: int = 5) -> list[str]:
    """The ``n`` most likely check-digit-valid numbers for an OCR string (numbers only, best first)."""
    return [c.number for c in scored_candidates(text, alternatives, n)]


_SIZE_SLOTS: tuple[str, ...] = (
    "".join(LENGTH_CODES),
    "".join(HEIGHT_CODES),
    "".join(sorted({k[0] for k in TYPE_CODES})),
    DIGITS,
)


def best_size_type(text: str, alternatives: Alternatives | None = None) -> tuple[str, float] | None:
    """The most likely valid size/type code in a 4-character OCR string, with its likelihood.

    Letter/digit look-alikes are mapped per slot (``4SG1`` -> ``45G1``); None when no valid
    code is within reach of what was read.
    """
    observed = clean(text, alternatives)
    if len(observed) != 4:
        return None
    per_slot: list[list[tuple[str, float]]] = []
    for obs, klass in zip(observed, _SIZE_SLOTS, strict=True):
        options: dict[str, float] = {}
        for char, prob in obs:
            for target, weight in _reachable(char, klass):
                options[target] = max(options.get(target, 0.0), prob * weight)
        if not options:
            return None
        per_slot.append(sorted(options.items(), key=lambda kv: -kv[1])[:4])
    best: tuple[str, float] | None = None
    for combo in itertools.product(*per_slot):
        code = "".join(c for c, _ in combo)
        if parse_size_type(code) is None:
            continue
        score = math.prod(p for _, p in combo) ** 0.25
        if best is None or score > best[1]:
            best = (code, score)
    return best
