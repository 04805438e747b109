"""Container numbers (ISO 6346) and size/type codes from camera frames.

The reader runs the OCR engine on the frame, then assembles number hypotheses from the text
lines the way numbers are painted:

* on one line, often split into tokens: ``MWCU`` ``605978`` ``[4]`` (boxed check digit);
* stacked: owner code over the serial (``PCIU`` / ``274312 [9]``);
* vertical, one character per line (door posts, side views): the detector gives one or more
  tall boxes down the column.

Every hypothesis is also re-read from a crop around it: a horizontal crop is widened to the
right so the boxed check digit joins the line; a vertical column is cut into characters that
are laid side by side (upright) before recognition.

A number is a *read* only when the check digit holds on what the OCR said (letter/digit shape
mapping such as O->0 allowed, a couple at most). When no hypothesis verifies, the reader still
returns the best check-digit-valid candidates as one ``ContainerRead`` whose confidence is below
:data:`VERIFIED_CONFIDENCE` (``number`` is the top candidate, ``candidates`` all of them), so the
lane can match them against the manifest; :func:`is_verified` tells the two apart. Every number
returned, read or candidate, passes the check digit.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Literal

import cv2
import numpy as np

from appliance.analyzers import iso6346
from appliance.analyzers.ocr import OcrEngine, check_image
from appliance.reads import BBox, ContainerRead, TextLine

log = logging.getLogger(__name__)

VERIFIED_CONFIDENCE = 0.5  # reads at or above this are verified by their check digit
UNVERIFIED_MAX_CONFIDENCE = 0.45  # candidate sets (no verified read) stay below this

Alts = tuple[tuple[tuple[str, float], ...], ...]
Layout = Literal["line", "stacked", "vertical", "single"]


def is_verified(read: ContainerRead) -> bool:
    """True when the read's check digit held on the OCR text (not a candidate set)."""
    return read.verified and read.confidence >= VERIFIED_CONFIDENCE


# --------------------------------------------------------------------------------------------
# Tokens and assemblies
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Token:
    text: str
    alts: Alts
    confidence: float
    box: BBox

    @property
    def clean(self) -> str:
        return "".join(iso6346.normalize_char(c) for c in self.text)

    @property
    def vertical(self) -> bool:
        return self.box.h >= 1.8 * self.box.w and len(self.clean) >= 2

    @property
    def cx(self) -> float:
        return self.box.x + self.box.w / 2

    @property
    def cy(self) -> float:
        return self.box.y + self.box.h / 2


def _token(line: TextLine) -> _Token:
    alts = line.alternatives if len(line.alternatives) == len(line.text) else ()
    return _Token(line.text, alts, line.confidence, line.bbox)


def _union(boxes: Sequence[BBox]) -> BBox:
    x0 = min(b.x for b in boxes)
    y0 = min(b.y for b in boxes)
    x1 = max(b.x + b.w for b in boxes)
    y1 = max(b.y + b.h for b in boxes)
    return BBox(x0, y0, x1 - x0, y1 - y0)


@dataclass(frozen=True)
class _Assembly:
    """Tokens that together may hold one number, in reading order."""

    tokens: tuple[_Token, ...]
    layout: Layout

    @property
    def box(self) -> BBox:
        return _union([t.box for t in self.tokens])

    @property
    def text(self) -> str:
        return "".join(t.text for t in self.tokens)

    @property
    def alts(self) -> Alts | None:
        if any(not t.alts for t in self.tokens):
            return None
        return tuple(a for t in self.tokens for a in t.alts)

    @property
    def confidence(self) -> float:
        return min(t.confidence for t in self.tokens)


def _same_line(a: _Token, b: _Token) -> bool:
    """``b`` continues ``a`` to the right on the same text line."""
    h = max(a.box.h, b.box.h)
    if a.vertical or b.vertical or not 0.55 <= a.box.h / max(b.box.h, 1) <= 1.8:
        return False
    gap = b.box.x - (a.box.x + a.box.w)
    return abs(a.cy - b.cy) <= 0.4 * h and -0.3 * h <= gap <= 2.5 * h


def _stacked(a: _Token, b: _Token) -> bool:
    """``b`` (serial) sits under ``a`` (owner code), left-aligned."""
    h = max(a.box.h, b.box.h)
    if a.vertical or b.vertical or not 0.6 <= a.box.h / max(b.box.h, 1) <= 1.6:
        return False
    gap = b.box.y - (a.box.y + a.box.h)
    return abs(a.box.x - b.box.x) <= 0.8 * h and -0.35 * h <= gap <= 0.9 * h


def _same_column(a: _Token, b: _Token) -> bool:
    """``b`` continues the vertical column ``a`` downwards."""
    w = max(a.box.w, b.box.w)
    if not a.vertical or not (b.vertical or len(b.clean) == 1):
        return False
    gap = b.box.y - (a.box.y + a.box.h)
    return abs(a.cx - b.cx) <= 0.6 * w and -0.5 * w <= gap <= 2.0 * w


def _chains(tokens: list[_Token], linked: Callable[[_Token, _Token], bool], layout: Layout) -> list[_Assembly]:
    """Runs of 2 to 4 tokens, each linked to the next (nearest first), as assemblies."""
    out: list[_Assembly] = []
    for first in tokens:
        chain = [first]
        while len(chain) < 4:
            last = chain[-1]
            nexts = [t for t in tokens if all(t is not c for c in chain) and linked(last, t)]
            if not nexts:
                break
            chain.append(min(nexts, key=lambda t: abs(t.box.x - last.box.x) + abs(t.box.y - last.box.y)))
            out.append(_Assembly(tuple(chain), layout))
    return out


# The weight and capacity marking on the doors (MAX GROSS 30,480 KG, TARE 2,227 KG, NET ...,
# CU.CAP. 33.2 CU.M): never part of a number, which ends in its check digit, nor a seal serial.
# Its words are matched too, for lines the OCR cut short of their unit ("MAX.GROSS 30,480").
_MARKING = re.compile(
    r"\d\s*[.,]?\s*(?:KGS?|LBS?)(?![A-Z])|CU\s*\.?\s*(?:M|FT)(?![A-Z])"
    r"|^MAX\W*G|GR[O0]SS|TARE\b|TARE\s*\d|^NET\s*\d|^NET\b|CU\s*\.?\s*CAP|PAYLOAD"
)


def is_marking(text: str) -> bool:
    """True for a line of the door's weight/capacity marking."""
    return bool(_MARKING.search(text.upper()))


def assemble(lines: Sequence[TextLine]) -> list[_Assembly]:
    """Number hypotheses from OCR lines: single tokens, line chains, stacked pairs, columns."""
    tokens = [_token(line) for line in lines
              if any(iso6346.normalize_char(c) for c in line.text) and not is_marking(line.text)]
    out: list[_Assembly] = []
    for token in tokens:
        if len(token.clean) >= 7:
            out.append(_Assembly((token,), "vertical" if token.vertical else "single"))
    out += _chains(tokens, _same_line, "line")
    out += _chains(tokens, _stacked, "stacked")
    out += _chains(tokens, _same_column, "vertical")
    seen: set[tuple[int, ...]] = set()
    unique: list[_Assembly] = []
    for asm in out:
        key = tuple(id(t) for t in asm.tokens)
        if key not in seen and len("".join(t.clean for t in asm.tokens)) >= 7:
            seen.add(key)
            unique.append(asm)
    return unique


# --------------------------------------------------------------------------------------------
# Re-reading crops
# --------------------------------------------------------------------------------------------


def _mostly_on(box: BBox, other: BBox, share: float = 0.6) -> bool:
    """True when most of ``box`` lies on ``other``."""
    w = min(box.x + box.w, other.x + other.w) - max(box.x, other.x)
    h = min(box.y + box.h, other.y + other.h) - max(box.y, other.y)
    return w > 0 and h > 0 and w * h >= share * max(1, box.area)


def _overlap(a: BBox | None, b: BBox | None) -> bool:
    if a is None or b is None:
        return False
    return a.x < b.x + b.w and b.x < a.x + a.w and a.y < b.y + b.h and b.y < a.y + a.h


def _crop(image: np.ndarray, box: BBox) -> np.ndarray:
    h, w = image.shape[:2]
    x0, y0 = max(0, box.x), max(0, box.y)
    x1, y1 = min(w, box.x + box.w), min(h, box.y + box.h)
    if x1 - x0 < 4 or y1 - y0 < 4:
        return np.zeros((0, 0, 3), dtype=np.uint8)
    return image[y0:y1, x0:x1]


def _widen_line(box: BBox, right: float = 2.2, left: float = 0.3, pad: float = 0.2) -> BBox:
    h = box.h
    return BBox(
        int(box.x - left * h), int(box.y - pad * h), int(box.w + (left + right) * h), int(box.h * (1 + 2 * pad))
    )


_Box = tuple[int, int, int, int]  # x0, y0, x1, y1


def _char_components(gray: np.ndarray, bright: bool) -> list[_Box]:
    """Character-sized blobs of one polarity in a column crop, after removing wide shading."""
    width = gray.shape[1]
    k = max(3, (width // 2) | 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (k, k))
    op = cv2.MORPH_TOPHAT if bright else cv2.MORPH_BLACKHAT
    enhanced = cv2.morphologyEx(gray, op, kernel)
    _, binary = cv2.threshold(enhanced, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    count, _, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    boxes: list[_Box] = []
    for i in range(1, count):
        x, y, w, h, area = (int(v) for v in stats[i])
        if h < 0.15 * width or h > 1.4 * width or w > 0.95 * width or area < 0.002 * width * width:
            continue
        boxes.append((x, y, x + w, y + h))
    return boxes


def _group_rows(boxes: list[_Box]) -> list[_Box]:
    """Blobs that overlap vertically belong to one character (broken strokes, boxed digit)."""
    groups: list[list[int]] = []
    for x0, y0, x1, y1 in sorted(boxes, key=lambda b: b[1]):
        if groups and y0 < groups[-1][3] - 0.25 * (y1 - y0):
            g = groups[-1]
            groups[-1] = [min(g[0], x0), min(g[1], y0), max(g[2], x1), max(g[3], y1)]
        else:
            groups.append([x0, y0, x1, y1])
    return [(g[0], g[1], g[2], g[3]) for g in groups]


def column_characters(crop: np.ndarray, bright: bool) -> list[_Box]:
    """Boxes of the characters of a vertical (one character per line) column, top to bottom.

    ``bright``: light paint on a darker box (else dark on light). Blobs far from the typical
    character height, or wider than tall, are dropped.
    """
    if crop.size == 0:
        return []
    gray = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
    chars = _group_rows(_char_components(gray, bright))
    if not chars:
        return []
    heights = sorted(b[3] - b[1] for b in chars)
    typical = heights[len(heights) // 2]
    return [b for b in chars if 0.5 * typical <= b[3] - b[1] <= 1.7 * typical and b[2] - b[0] <= 1.3 * typical]


def column_strips(crop: np.ndarray, height: int = 48) -> list[np.ndarray]:
    """The column laid out as one upright line, for each polarity that finds 5+ characters."""
    strips = []
    for bright in (True, False):
        strip = column_strip(crop, column_characters(crop, bright), height)
        if strip is not None:
            strips.append(strip)
    return strips


def column_strip(crop: np.ndarray, chars: list[_Box], height: int = 48) -> np.ndarray | None:
    """The characters of a vertical column side by side, upright, as one text line."""
    if len(chars) < 5:
        return None
    background = np.median(crop.reshape(-1, 3), axis=0).astype(np.uint8).tolist()
    # Tight spacing reads best: wide gaps make the recogniser see lone strokes (T -> I).
    pad, gap = max(2, height // 5), max(1, height // 20)
    pieces: list[np.ndarray] = []
    for x0, y0, x1, y1 in chars:
        m = max(1, (y1 - y0) // 10)
        piece = crop[max(0, y0 - m) : y1 + m, max(0, x0 - m) : x1 + m]
        scale = (height - 2 * pad) / max(piece.shape[0], 1)
        new_w = max(4, round(piece.shape[1] * scale))
        piece = cv2.resize(piece, (new_w, height - 2 * pad), interpolation=cv2.INTER_CUBIC)
        pieces.append(cv2.copyMakeBorder(piece, pad, pad, gap, gap, cv2.BORDER_CONSTANT, value=background))
    return np.ascontiguousarray(np.hstack(pieces))


# --------------------------------------------------------------------------------------------
# Hypotheses and the reader
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Hypothesis:
    text: str
    alts: Alts | None
    confidence: float
    box: BBox
    source: str
    ranked: tuple[iso6346.Candidate, ...] = field(default=(), compare=False)


@dataclass(frozen=True)
class ReaderSettings:
    max_side: int = 960  # detector input for the whole frame
    fallback_max_side: int = 1600  # second, finer pass when the first finds no verified read (0: off)
    fallback_with_lines: bool = False  # ... also when the caller shares its OCR lines
    n_candidates: int = 5
    # Candidate sets (nothing verified) keep only numbers this likely (geometric mean per
    # character): one look-alike swap or a missing check digit pass, invented letters do not.
    min_candidate_likelihood: float = 0.55
    max_candidate_corrections: int = 1  # ... and at most this many characters changed
    size_type_radius: float = 9.0  # how far (in character sizes) a size/type code may be


class ContainerReader:
    """ISO 6346 container numbers (check digit enforced) and size/type codes from a frame."""

    def __init__(self, engine: OcrEngine, settings: ReaderSettings | None = None):
        self.engine = engine
        self.settings = settings or ReaderSettings()

    # -- public ----------------------------------------------------------------------------

    def read(
        self,
        image: np.ndarray,
        lines: Sequence[TextLine] | None = None,
        known: Collection[str] = (),
        exclude: Sequence[BBox] = (),
    ) -> tuple[ContainerRead, ...]:
        """Container numbers in the frame: verified reads by confidence, or one candidate set.

        ``known``: numbers already settled (the lane's open crossing); text whose candidates
        include one is not cropped and read again. ``exclude``: boxes of text already explained
        otherwise (seal serials), not read again either.

        ``lines``: OCR lines the caller already has for this frame (the lane OCRs a frame once
        for all readers). Without them the reader runs the OCR itself at ``max_side`` and, when
        nothing verifies, once more at ``fallback_max_side``; with them, the finer pass only
        runs when ``fallback_with_lines`` is set (it costs about a second a frame on a small CPU).
        """
        image = check_image(image, "container reader")
        shared = lines is not None
        if lines is None:
            lines = self.engine.read(image, max_side=self.settings.max_side)
        reads = self._read_lines(image, lines, known, exclude)
        fallback = self.settings.fallback_max_side and (not shared or self.settings.fallback_with_lines)
        if fallback and not any(is_verified(r) for r in reads):
            log.debug("no verified container number; OCR again at %d px", self.settings.fallback_max_side)
            finer = self.engine.read(image, max_side=self.settings.fallback_max_side)
            reads = self._merge(reads, self._read_lines(image, finer))
        return reads

    # -- pipeline --------------------------------------------------------------------------

    def _read_lines(
        self,
        image: np.ndarray,
        lines: Sequence[TextLine],
        known: Collection[str] = (),
        exclude: Sequence[BBox] = (),
    ) -> tuple[ContainerRead, ...]:
        assemblies = assemble(lines)
        first = [self._score(_Hypothesis(a.text, a.alts, a.confidence, a.box, a.layout)) for a in assemblies]
        doubtful = [a for a, h in zip(assemblies, first, strict=True)
                    if self._worth_rereading(a, h) and not any(c.number in known for c in h.ranked)
                    and not any(_mostly_on(a.box, b) for b in exclude)]
        rereads = [self._score(h) for h in self._rereads(image, doubtful)]
        return tuple(self._decide([h for h in first + rereads if h.ranked], lines))

    def _worth_rereading(self, asm: _Assembly, hyp: _Hypothesis) -> bool:
        """Not verified yet, but number-like enough to spend a crop re-read on.

        Columns always are: the detector reads them sideways, often upside down.
        """
        if hyp.ranked and hyp.ranked[0].verified:
            return False
        if asm.layout == "vertical":
            return True
        if hyp.ranked:
            return hyp.ranked[0].likelihood >= 0.6 * self.settings.min_candidate_likelihood
        return sum(c.isdigit() for t in asm.tokens for c in t.clean) >= 5

    def _score(self, hyp: _Hypothesis) -> _Hypothesis:
        ranked = iso6346.scored_candidates(hyp.text, hyp.alts, n=self.settings.n_candidates)
        return _Hypothesis(hyp.text, hyp.alts, hyp.confidence, hyp.box, hyp.source, tuple(ranked))

    def _rereads(self, image: np.ndarray, assemblies: list[_Assembly]) -> list[_Hypothesis]:
        crops: list[np.ndarray] = []
        meta: list[tuple[BBox, str]] = []
        for asm in assemblies:
            for crop, _region, source in self._reread_crops(image, asm):
                crops.append(crop)
                meta.append((asm.box, source))
        if not crops:
            return []
        recognitions = self.engine.recognizer.recognize(crops)
        out = []
        for rec, (box, source) in zip(recognitions, meta, strict=True):
            if rec.text:
                out.append(_Hypothesis(rec.text, rec.alternatives, rec.confidence, box, source))
        return out

    def _reread_crops(self, image: np.ndarray, asm: _Assembly) -> list[tuple[np.ndarray, BBox, str]]:
        box = asm.box
        if asm.layout == "vertical":
            w = max(t.box.w for t in asm.tokens)
            n_chars = max(1, sum(len(t.clean) for t in asm.tokens))
            pitch = box.h / n_chars
            # Reach for characters the detector left out above and below (the boxed check digit).
            missing = max(0, iso6346.NUMBER_LENGTH - n_chars)
            up = 0.6 * w + missing * pitch
            down = 2.6 * w + missing * pitch
            region = BBox(int(box.x - 0.25 * w), int(box.y - up), int(box.w + 0.5 * w), int(box.h + up + down))
            return [(strip, region, "column") for strip in column_strips(_crop(image, region))]
        if asm.layout == "stacked":
            # Re-read as one line: each row widened to the right (boxed check digit), side by side.
            rows = [_crop(image, _widen_line(t.box, right=2.2 if i else 0.2)) for i, t in enumerate(asm.tokens)]
            rows = [r for r in rows if r.size]
            if len(rows) < 2:
                return []
            h = max(r.shape[0] for r in rows)
            line = np.hstack([cv2.resize(r, (max(4, r.shape[1] * h // r.shape[0]), h)) for r in rows])
            return [(line, box, "stacked-reread")]
        wide = _widen_line(box)
        crop = _crop(image, wide)
        return [(crop, wide, "line-reread")] if crop.size else []

    def _decide(self, hyps: list[_Hypothesis], lines: Sequence[TextLine]) -> list[ContainerRead]:
        """Verified numbers (voted over hypotheses) and, failing those, one candidate set;
        each with the size/type code painted nearest to where it was read."""
        verified: dict[str, list[_Hypothesis]] = {}
        for h in hyps:
            top = h.ranked[0]
            if top.verified:
                verified.setdefault(top.number, []).append(h)
        if not verified:
            unverified = self._candidate_read(hyps)
            if unverified is None:
                return []
            return [self._with_size_type(unverified, [unverified.bbox], lines)]
        reads = [
            self._with_size_type(self._verified_read(number, support), [h.box for h in support], lines)
            for number, support in verified.items()
        ]
        reads.sort(key=lambda r: -r.confidence)
        return [self._with_rivals(r, reads) for r in reads]

    @staticmethod
    def _verified_read(number: str, support: list[_Hypothesis]) -> ContainerRead:
        """Confidence 0.5..1: the best supporting OCR confidence, a little more when
        different readings (detector line, re-read crop, column strip) agree."""
        best = max(support, key=lambda h: h.confidence)
        agreeing = len({h.source for h in support})
        confidence = 0.5 + 0.5 * best.confidence * min(1.0, 0.8 + 0.1 * agreeing)
        return ContainerRead(number, min(1.0, confidence), best.box)

    @staticmethod
    def _with_rivals(read: ContainerRead, reads: list[ContainerRead]) -> ContainerRead:
        """Other verified numbers read at the same place become the read's candidates."""
        rivals = tuple(r.number for r in reads if r is not read and _overlap(r.bbox, read.bbox))
        if not rivals:
            return read
        return ContainerRead(read.number, read.confidence, read.bbox, read.size_type, rivals, read.verified)

    def _candidate_read(self, hyps: list[_Hypothesis]) -> ContainerRead | None:
        """One candidate set from the unverified hypotheses (probability mass pooled)."""
        mass: dict[str, float] = {}
        boxes: dict[str, BBox] = {}
        for h in hyps:
            for cand in h.ranked:
                if (
                    cand.likelihood < self.settings.min_candidate_likelihood
                    or cand.corrections > self.settings.max_candidate_corrections
                ):
                    continue
                mass[cand.number] = mass.get(cand.number, 0.0) + math.exp(cand.logp)
                boxes.setdefault(cand.number, h.box)
        if not mass:
            return None
        ranked = sorted(mass, key=lambda k: -mass[k])[: self.settings.n_candidates]
        share = mass[ranked[0]] / sum(mass[k] for k in ranked)
        confidence = UNVERIFIED_MAX_CONFIDENCE * share
        return ContainerRead(ranked[0], confidence, boxes[ranked[0]], None, tuple(ranked), verified=False)

    def _merge(self, first: tuple[ContainerRead, ...], second: tuple[ContainerRead, ...]) -> tuple[ContainerRead, ...]:
        if any(is_verified(r) for r in second):
            return second
        return first or second

    # -- size/type -------------------------------------------------------------------------

    def _with_size_type(
        self, read: ContainerRead, boxes: Sequence[BBox | None], lines: Sequence[TextLine]
    ) -> ContainerRead:
        codes = [self._size_type_near(box, lines) for box in boxes if box is not None]
        found = min((c for c in codes if c is not None), default=None)
        if found is None:
            return read
        return ContainerRead(read.number, read.confidence, read.bbox, found[1], read.candidates, read.verified)

    def _size_type_near(self, box: BBox, lines: Sequence[TextLine]) -> tuple[float, str] | None:
        """The most likely size/type code near ``box``: (score, code), lower score better."""
        char = max(4.0, min(box.w, box.h))
        cx, cy = box.x + box.w / 2, box.y + box.h / 2
        best: tuple[float, str] | None = None
        for line in lines:
            alts = line.alternatives if len(line.alternatives) == len(line.text) else None
            found = iso6346.best_size_type(line.text, alts)
            if found is None or found[1] < 0.5:
                continue
            b = line.bbox
            dist = math.hypot(b.x + b.w / 2 - cx, b.y + b.h / 2 - cy) - max(box.w, box.h) / 2
            if dist > self.settings.size_type_radius * char:
                continue
            score = dist / char - 2.0 * found[1]
            if best is None or score < best[0]:
                best = (score, found[0])
        return best
