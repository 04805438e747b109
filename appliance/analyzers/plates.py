"""Licence-plate reader: finds VN/CN plates among all the text a camera sees.

Pipeline for a frame (``PlateReader.find`` / ``read``):

1. the PP-OCR text detector + recogniser read every text line (or the caller passes the lines
   it already has, so one detector run serves all readers of a frame);
2. lines are grouped into plate candidates: single lines, side-by-side fragments of one line
   (``29`` + ``-K1``) and vertically stacked pairs of similar x/width (two-line plates);
3. the grammar (``plate_grammar``) scores each candidate; the best few candidates, and
   plate-like lines the grammar does not accept yet, are *re-read*: the region is cropped from
   the full-resolution frame with a margin, scaled so the characters are about 48 px high, and
   recognised again as a whole line, through the detector on the crop, and (two-line plates) as
   top/bottom halves. Readings of one region vote per canonical text;
4. text that fits no plate grammar (words, signage, timestamps) is dropped; the plate colour is
   estimated from the HSV of the plate background around the text.

``read_crop`` reads an already cropped plate (one- or two-line). Plate text is logged at DEBUG
only.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import cv2
import numpy as np

from appliance.analyzers import plate_grammar as grammar
from appliance.analyzers.ocr import OcrEngine, check_image
from appliance.analyzers.plate_grammar import Country, PlateParse
from appliance.errors import FrameError
from appliance.reads import BBox, PlateRead, TextLine

log = logging.getLogger(__name__)

Colour = Literal["white", "yellow", "blue", "red", "green", "unknown"]
Layout = Literal["one_line", "two_line"]

TARGET_LINE_HEIGHT = 64  # detector box height (~48 px characters) a re-read crop is scaled to
MAX_UPSCALE = 4.0
TWO_LINE_MAX_ASPECT = 2.3  # a plate crop narrower than this (w/h) is read as two lines too
AGREEMENT_WEIGHT = 0.5  # each further reading of the same text adds this share of its score
FIXED_SPLITS = (0.42, 0.5)  # row boundaries (share of the height) tried on a two-line crop
MIN_CLASS_SHARE = 0.15  # a colour class smaller than this share of the band is noise
CHROMATIC_SHARE = 0.35  # a class with this share of saturated pixels is a coloured plate
SETTLED_CONFIDENCE = 0.85  # cheap readings this sure of a VN/CN plate skip the detector re-read


@dataclass(frozen=True)
class PlateFinding:
    """A plate found in an image, with every country the grammar knows (FOREIGN included)."""

    parse: PlateParse
    bbox: BBox
    layout: Layout
    colour: Colour
    confidence: float
    score: float
    raw_text: str = ""
    readings: int = 1

    @property
    def text(self) -> str:
        return self.parse.canonical

    def to_read(self) -> PlateRead | None:
        """The ``PlateRead`` for a VN/CN plate; None for other countries."""
        country = self.parse.country
        if country == "FOREIGN":
            return None
        return PlateRead(
            text=self.parse.canonical, country=country, layout=self.layout, colour=self.colour,
            confidence=min(1.0, max(0.0, self.confidence)), bbox=self.bbox, raw_text=self.raw_text,
            is_trailer=self.parse.is_trailer,
        )  # fmt: skip


@dataclass(frozen=True)
class _Line:
    """A recognised line in the coordinates of the image being read."""

    text: str
    confidence: float
    x: float
    y: float
    w: float
    h: float
    alternatives: tuple[tuple[tuple[str, float], ...], ...] = ()

    @property
    def x1(self) -> float:
        return self.x + self.w

    @property
    def y1(self) -> float:
        return self.y + self.h

    @staticmethod
    def of(line: TextLine, dx: float = 0.0, dy: float = 0.0) -> _Line:
        b = line.bbox
        return _Line(line.text, line.confidence, b.x - dx, b.y - dy, b.w, b.h, line.alternatives)


@dataclass
class _Candidate:
    """Lines that may form one plate, and the readings gathered for it."""

    lines: tuple[_Line, ...]
    layout: Layout
    top_count: int = 1  # for two-line plates: lines in the top row
    readings: list[tuple[PlateParse, str]] = field(default_factory=list)

    @property
    def box(self) -> tuple[float, float, float, float]:
        x0 = min(ln.x for ln in self.lines)
        y0 = min(ln.y for ln in self.lines)
        x1 = max(ln.x1 for ln in self.lines)
        y1 = max(ln.y1 for ln in self.lines)
        return x0, y0, x1, y1

    @property
    def line_height(self) -> float:
        return float(np.median([ln.h for ln in self.lines]))

    def best_score(self) -> float:
        return max((p.score for p, _ in self.readings), default=0.0)


# ---------------------------------------------------------------------------------------------
# Grouping lines into candidates


def _v_overlap(a: _Line, b: _Line) -> float:
    return max(0.0, min(a.y1, b.y1) - max(a.y, b.y))


def _h_overlap(a: _Line, b: _Line) -> float:
    return max(0.0, min(a.x1, b.x1) - max(a.x, b.x))


def _same_row(a: _Line, b: _Line) -> bool:
    """Two fragments of one text line: same height band, small horizontal gap."""
    if a.x > b.x:
        a, b = b, a
    h_min, h_max = min(a.h, b.h), max(a.h, b.h)
    if h_max > 1.6 * h_min or _v_overlap(a, b) < 0.5 * h_min:
        return False
    gap = b.x - a.x1
    return -0.3 * h_min <= gap <= 1.2 * h_max


def _stacked(top: _Line, bottom: _Line) -> bool:
    """``top`` sits right above ``bottom`` like the two rows of a plate (boxes may overlap)."""
    h_min, h_max = min(top.h, bottom.h), max(top.h, bottom.h)
    if h_max > 2.5 * h_min:
        return False
    pitch = (bottom.y + bottom.h / 2) - (top.y + top.h / 2)
    if not 0.5 * h_min <= pitch <= 1.6 * h_max:
        return False
    if _h_overlap(top, bottom) < 0.5 * min(top.w, bottom.w):
        return False
    return 0.25 <= top.w / max(bottom.w, 1.0) <= 1.6


def _plate_like(text: str) -> bool:
    """Worth a closer look: short, with digits or a province character."""
    c = grammar.compact(text)
    if not 2 <= len(c) <= 12:
        return False
    return sum(ch.isdigit() for ch in c) >= 1 or any(ch in grammar.CN_PROVINCES for ch in c)


def _candidates(lines: Sequence[_Line]) -> list[_Candidate]:
    """Single lines, side-by-side fragment pairs and stacked pairs."""
    found: list[_Candidate] = [_Candidate((ln,), "one_line") for ln in lines]
    for i, a in enumerate(lines):
        for b in lines[i + 1 :]:
            if _same_row(a, b):
                pair = (a, b) if a.x <= b.x else (b, a)
                found.append(_Candidate(pair, "one_line"))
    for top in lines:
        for bottom in lines:
            if top is not bottom and _stacked(top, bottom):
                found.append(_Candidate((top, bottom), "two_line"))
    return found


# ---------------------------------------------------------------------------------------------
# Grammar over candidates


def _concat(lines: Sequence[_Line]) -> tuple[str, tuple[tuple[tuple[str, float], ...], ...], float]:
    text = "".join(ln.text for ln in lines)
    alts: tuple[tuple[tuple[str, float], ...], ...] = ()
    if all(len(ln.alternatives) == len(ln.text) for ln in lines):
        alts = tuple(a for ln in lines for a in ln.alternatives)
    conf = min(ln.confidence for ln in lines)
    return text, alts, conf


def _parse_lines(
    top: Sequence[_Line], bottom: Sequence[_Line], countries: tuple[Country, ...], n_best: int = 3
) -> list[tuple[PlateParse, str]]:
    """Grammar readings of one line (``bottom`` empty) or of a top/bottom pair."""
    t_text, t_alts, t_conf = _concat(top)
    if not bottom:
        parses = grammar.correct(t_text, t_alts, confidence=t_conf, n_best=n_best, countries=countries)
        return [(p, t_text) for p in parses]
    b_text, b_alts, b_conf = _concat(bottom)
    parses = grammar.assemble(
        t_text, b_text, t_alts, b_alts, top_confidence=t_conf, bottom_confidence=b_conf, n_best=n_best,
        countries=countries,
    )  # fmt: skip
    return [(p, f"{t_text}/{b_text}") for p in parses]


def _candidate_parses(cand: _Candidate, countries: tuple[Country, ...]) -> list[tuple[PlateParse, str]]:
    if cand.layout == "two_line":
        return _parse_lines(cand.lines[: cand.top_count], cand.lines[cand.top_count :], countries)
    return _parse_lines(cand.lines, (), countries)


def _vote(readings: Iterable[tuple[PlateParse, str]], min_agreement: float) -> tuple[PlateParse, str, int] | None:
    """The canonical text the readings of one region agree on most: (its best parse, raw, count).

    Each reading adds its score (further readings of the same text count AGREEMENT_WEIGHT);
    readings whose agreement with the OCR is below ``min_agreement`` (junk that became a plate
    only through corrections the recogniser did not support) are out.
    """
    by_text: dict[str, list[tuple[PlateParse, str]]] = {}
    for parse, raw in readings:
        if parse.agreement >= min_agreement:
            by_text.setdefault(parse.canonical, []).append((parse, raw))
    best: tuple[PlateParse, str, int] | None = None
    best_total = -1.0
    for group in by_text.values():
        group.sort(key=lambda pr: -pr[0].score)
        total = group[0][0].score + AGREEMENT_WEIGHT * sum(p.score for p, _ in group[1:])
        if total > best_total:
            best, best_total = (group[0][0], group[0][1], len(group)), total
    return best


def _settled(readings: Sequence[tuple[PlateParse, str]], min_agreement: float) -> bool:
    """Whether at least two readings agree on a clean, confident VN/CN plate."""
    voted = _vote(readings, min_agreement)
    if voted is None:
        return False
    parse, _, count = voted
    return (
        parse.country != "FOREIGN"
        and count >= 2
        and parse.confidence >= SETTLED_CONFIDENCE
        and parse.agreement >= 0.5
        and parse.dropped == 0
    )


# ---------------------------------------------------------------------------------------------
# Colour


def estimate_colour(image: np.ndarray, box: tuple[float, float, float, float]) -> Colour:
    """Plate colour from the HSV of the plate background inside a text box ``(x0, y0, x1, y1)``.

    The central band of the box is split into two classes by brightness (Otsu): characters and
    background. A class mostly saturated is the background (yellow, blue, green, red plates;
    their characters are black or white; new-energy plates fade from white to green); otherwise
    a bright class means a white plate.
    """
    region = _central_band(image, box)
    if region.size == 0:
        return "unknown"
    grey = cv2.cvtColor(region, cv2.COLOR_BGR2GRAY)
    _, mask = cv2.threshold(grey, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    hsv = cv2.cvtColor(region, cv2.COLOR_BGR2HSV).reshape(-1, 3)
    classes = [hsv[mask.reshape(-1) > 0], hsv[mask.reshape(-1) == 0]]
    classes = [c for c in classes if len(c) >= MIN_CLASS_SHARE * len(hsv)]
    chromatic = [c for c in classes if _saturated_share(c) >= CHROMATIC_SHARE]
    if chromatic:
        return _hue_colour(max(chromatic, key=len))
    if any(np.median(c[:, 2]) >= 110 for c in classes):
        return "white"
    return "unknown"


def _saturated_share(pixels: np.ndarray) -> float:
    return float(np.mean((pixels[:, 1] >= 60) & (pixels[:, 2] >= 60)))


def _central_band(image: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    """The box without its outer 5 % (x) and 20 % (y): text rows and plate, little surround."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    ih, iw = image.shape[:2]
    left, right = max(0, int(x0 + 0.05 * w)), min(iw, math.ceil(x1 - 0.05 * w))
    top, bottom = max(0, int(y0 + 0.2 * h)), min(ih, math.ceil(y1 - 0.2 * h))
    return image[top:bottom, left:right]


def _hue_colour(pixels: np.ndarray) -> Colour:
    """The colour name of the dominant hue band of saturated HSV pixels (hue wraps at 180)."""
    saturated = pixels[pixels[:, 1] >= 60]
    if not len(saturated):
        return "unknown"
    hist = np.bincount((saturated[:, 0].astype(int) // 5) % 36, minlength=36)
    hue = float(np.argmax(hist) * 5 + 2.5)
    if hue < 8 or hue >= 160:
        return "red"
    if hue < 38:
        return "yellow"
    if hue < 88:
        return "green"
    if hue < 135:
        return "blue"
    return "unknown"


# ---------------------------------------------------------------------------------------------
# Geometry helpers


def _clamp_box(
    image: np.ndarray, box: tuple[float, float, float, float], mx: float, my: float
) -> tuple[int, int, int, int]:
    """Box grown by ``mx``/``my`` x its height on each side, clamped to the image, in ints."""
    x0, y0, x1, y1 = box
    h = y1 - y0
    ih, iw = image.shape[:2]
    return (
        max(0, math.floor(x0 - mx * h)),
        max(0, math.floor(y0 - my * h)),
        min(iw, math.ceil(x1 + mx * h)),
        min(ih, math.ceil(y1 + my * h)),
    )


def _iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    area_a = (a[2] - a[0]) * (a[3] - a[1])
    area_b = (b[2] - b[0]) * (b[3] - b[1])
    smaller = min(area_a, area_b)
    return inter / smaller if smaller > 0 else 0.0  # intersection over the smaller box


def _bbox(box: tuple[float, float, float, float], dx: int = 0, dy: int = 0) -> BBox:
    x0, y0, x1, y1 = box
    return BBox(round(x0) + dx, round(y0) + dy, max(0, round(x1 - x0)), max(0, round(y1 - y0)))


def _roi_image(image: np.ndarray, roi: BBox | None) -> tuple[np.ndarray, int, int]:
    if roi is None:
        return image, 0, 0
    ih, iw = image.shape[:2]
    x0, y0 = max(0, roi.x), max(0, roi.y)
    x1, y1 = min(iw, roi.x + roi.w), min(ih, roi.y + roi.h)
    if x1 - x0 < 4 or y1 - y0 < 4:
        raise FrameError(f"plate reader: region of interest {roi} is outside the {iw}x{ih} image or too small")
    return image[y0:y1, x0:x1], x0, y0


# ---------------------------------------------------------------------------------------------
# The reader


@dataclass
class PlateScan:
    """The plate candidates among a frame's text lines, scored by the grammar; no re-reads yet.
    The lane scans once and lets other readers know which text already reads as a plate."""

    lines: Sequence[TextLine]
    candidates: list[_Candidate]

    def clean_boxes(self, floor: float) -> list[BBox]:
        """Boxes of candidates the OCR read as a plate, uncorrected, at least ``floor`` confident."""
        return [_bbox(c.box) for c in self.candidates
                if any(p.confidence >= floor and not p.corrections for p, _ in c.readings)]


class PlateReader:
    """Finds and reads licence plates (VN and CN by default) in camera frames and plate crops.

    ``max_side``: the longer image side fed to the text detector (cost grows with its square:
    about 100 ms at 640 and 400 ms at 960 on one core). ``countries``: which grammars may
    produce a plate; add ``"FOREIGN"`` to also report other countries' plates (``find`` only:
    ``PlateRead`` carries VN/CN). ``max_rereads``: how many candidate regions are cropped and
    read again at a higher scale. ``skip_confident``: when set (the lane sets it), candidates
    the frame's OCR already read as a valid plate, uncorrected and at least this confident,
    are not re-read.
    """

    def __init__(
        self,
        engine: OcrEngine,
        *,
        max_side: int = 960,
        countries: Iterable[Country] = ("VN", "CN"),
        max_rereads: int = 6,
        min_confidence: float = 0.5,
        min_agreement: float = 0.03,
        reread: bool = True,
        skip_confident: float | None = None,
    ):
        self.engine = engine
        self.max_side = max_side
        self.countries: tuple[Country, ...] = tuple(countries)
        self.max_rereads = max_rereads
        self.min_confidence = min_confidence
        self.min_agreement = min_agreement
        self.reread = reread
        self.skip_confident = skip_confident

    # -- public API ----------------------------------------------------------------------------

    def read(
        self,
        image: np.ndarray,
        roi: BBox | None = None,
        lines: Sequence[TextLine] | None = None,
        known: Collection[str] = (),
        exclude: Sequence[BBox] = (),
        reread: bool | None = None,
        scan: PlateScan | None = None,
    ) -> tuple[PlateRead, ...]:
        """VN/CN plates in a frame, best first. ``lines``: text lines already read on this frame;
        ``known``: plates already settled (a candidate that reads as one is not re-read);
        ``exclude``: boxes of text already explained otherwise (container numbers, seal serials),
        never re-read as plates; ``reread``: override the reader's own setting for this frame;
        ``scan``: what ``scan(lines)`` found, when the caller already asked."""
        findings = self.find(image, roi=roi, lines=lines, known=known, exclude=exclude, reread=reread, scan=scan)
        reads = (f.to_read() for f in findings)
        return tuple(r for r in reads if r is not None)

    def read_crop(self, crop: np.ndarray) -> tuple[PlateRead, ...]:
        """VN/CN readings of an already cropped plate (one- or two-line), best first (at most one)."""
        reads = (f.to_read() for f in self.find_crop(crop))
        return tuple(r for r in reads if r is not None)

    def find(
        self,
        image: np.ndarray,
        roi: BBox | None = None,
        lines: Sequence[TextLine] | None = None,
        known: Collection[str] = (),
        exclude: Sequence[BBox] = (),
        reread: bool | None = None,
        scan: PlateScan | None = None,
    ) -> tuple[PlateFinding, ...]:
        """Plates in a frame (any country in ``countries``), best first, one per plate region."""
        image = check_image(image, "plate reader")
        view, dx, dy = _roi_image(image, roi)
        if scan is not None:
            if scan.lines is not lines or roi is not None:
                raise ValueError("plate reader: a scan is only valid for the very lines it was made from, no region")
            own_count, candidates = len(lines), scan.candidates
        else:
            if lines is None:
                found = self.engine.read(view, max_side=self.max_side)
                own = [_Line.of(ln) for ln in found]
            else:
                own = [_Line.of(ln, dx, dy) for ln in lines if _inside(ln.bbox, roi)]
            own_count, candidates = len(own), self._scored_candidates(own)
        if self.reread if reread is None else reread:
            shifted = [BBox(b.x - dx, b.y - dy, b.w, b.h) for b in exclude]
            for cand in self._reread_order(candidates, known, shifted):
                cand.readings.extend(self._reread_region(view, cand))
        findings = self._findings(view, candidates, dx, dy)
        log.debug("plates: %d lines, %d candidates -> %s", own_count, len(candidates), [f.text for f in findings])
        return findings

    def scan(self, lines: Sequence[TextLine]) -> PlateScan:
        """The plate candidates among a frame's ``lines`` (full-image pixels), scored, not re-read."""
        return PlateScan(lines, self._scored_candidates([_Line.of(ln) for ln in lines]))

    def find_crop(self, crop: np.ndarray) -> tuple[PlateFinding, ...]:
        """The plate in an already cropped plate image (any country in ``countries``)."""
        crop = check_image(crop, "plate reader")
        h, w = crop.shape[:2]
        readings = self._read_plate_crop(crop, two_line_likely=w / h < TWO_LINE_MAX_ASPECT)
        voted = _vote(readings, self.min_agreement)
        if voted is None:
            return ()
        parse, raw, count = voted
        if parse.confidence < self.min_confidence:
            return ()
        layout: Layout = "two_line" if "/" in raw else "one_line"
        box = (0.0, 0.0, float(w), float(h))
        colour = estimate_colour(crop, box)
        return (PlateFinding(parse, _bbox(box), layout, colour, parse.confidence, parse.score, raw, count),)

    # -- steps ---------------------------------------------------------------------------------

    def _scored_candidates(self, lines: Sequence[_Line]) -> list[_Candidate]:
        candidates = _candidates(lines)
        for cand in candidates:
            cand.readings.extend(_candidate_parses(cand, self.countries))
        return candidates

    def _reread_order(
        self, candidates: list[_Candidate], known: Collection[str] = (), exclude: Sequence[BBox] = ()
    ) -> list[_Candidate]:
        """The candidates worth a closer look, most promising first, one per region."""
        worth = [c for c in candidates if c.readings or _plate_like("".join(ln.text for ln in c.lines))]
        # Plates this frame already read well enough: no second look at them, nor at their rows
        # or fragments (a row alone can never read as more than the plate it belongs to).
        done: list[_Candidate] = []
        if known:
            done += [c for c in worth if any(p.canonical in known for p, _ in c.readings)]
        if self.skip_confident is not None:
            # Lane mode: a plate the frame's own OCR already read cleanly needs no second look;
            # the lane votes across frames anyway.
            floor = self.skip_confident
            done += [c for c in worth if any(p.confidence >= floor and not p.corrections for p, _ in c.readings)]
        worth = [c for c in worth if c not in done]
        if exclude:
            worth = [c for c in worth if not any(_iou(c.box, (b.x, b.y, b.x + b.w, b.y + b.h)) > 0.5 for b in exclude)]
        # Best reading first; among equals, a two-line candidate before its own rows (a row
        # alone is a fragment: re-reading it can never give the whole plate).
        worth.sort(key=lambda c: (-c.best_score(), -len(c.lines), -max(ln.confidence for ln in c.lines)))
        chosen: list[_Candidate] = []
        for cand in worth:
            if any(_iou(cand.box, c.box) > 0.8 for c in chosen + done):
                continue  # a fragment of (or the same region as) a better or already read candidate
            chosen.append(cand)
            if len(chosen) >= self.max_rereads:
                break
        return chosen

    def _reread_region(self, image: np.ndarray, cand: _Candidate) -> list[tuple[PlateParse, str]]:
        """Crop the candidate with a margin, scale it so characters are ~48 px, read it again."""
        my = 0.2 if cand.layout == "one_line" else 0.15
        x0, y0, x1, y1 = _clamp_box(image, cand.box, 0.35 * cand.line_height / max(cand.box[3] - cand.box[1], 1), my)
        crop = image[y0:y1, x0:x1]
        if crop.shape[0] < 4 or crop.shape[1] < 4:
            return []
        scale = min(MAX_UPSCALE, max(1.0, TARGET_LINE_HEIGHT / max(cand.line_height, 1.0)))
        if scale > 1.0:
            crop = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
        split = None
        if cand.layout == "two_line":
            top = cand.lines[: cand.top_count]
            bottom = cand.lines[cand.top_count :]
            boundary = (max(ln.y1 for ln in top) + min(ln.y for ln in bottom)) / 2
            split = (boundary - y0) * scale / crop.shape[0]
        two_line = cand.layout == "two_line"
        return self._read_plate_crop(
            crop, two_line_likely=two_line, split=split, whole_line=not two_line, known=cand.readings
        )

    def _read_plate_crop(
        self,
        crop: np.ndarray,
        two_line_likely: bool,
        split: float | None = None,
        whole_line: bool = True,
        known: Sequence[tuple[PlateParse, str]] = (),
    ) -> list[tuple[PlateParse, str]]:
        """Readings of a plate-sized crop, cheapest first, until two agree on a clean plate.

        One-line: the whole crop as one line, then the detector's lines on the crop. Two-line:
        top/bottom halves where the row boundary is known, the detector's lines (they find the
        boundary), then halves at fixed fractions.
        ``known`` readings of the same region count towards the agreement.
        """
        h = crop.shape[0]
        scale = min(MAX_UPSCALE, max(1.0, (TARGET_LINE_HEIGHT * (2 if two_line_likely else 1)) / h))
        if scale > 1.0:
            crop = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
        if split is not None and not 0.2 < split < 0.8:
            split = None
        readings: list[tuple[PlateParse, str]] = []
        if whole_line:
            readings += self._whole_line(crop)
        if two_line_likely and split is not None:
            readings += self._halves(crop, split)
        if (two_line_likely and split is None) or not _settled([*known, *readings], self.min_agreement):
            readings += self._detected_lines(crop)
        if two_line_likely and split is None and not _settled([*known, *readings], self.min_agreement):
            for frac in FIXED_SPLITS:
                readings += self._halves(crop, frac)
        return readings

    def _detected_lines(self, crop: np.ndarray) -> list[tuple[PlateParse, str]]:
        lines = [_Line.of(ln) for ln in self.engine.read(crop, max_side=_detector_side(crop))]
        readings: list[tuple[PlateParse, str]] = []
        for cand in _candidates(lines):
            readings += _candidate_parses(cand, self.countries)
        return readings

    def _whole_line(self, crop: np.ndarray) -> list[tuple[PlateParse, str]]:
        pad = max(2, crop.shape[0] // 8)
        padded = cv2.copyMakeBorder(crop, 0, 0, pad, pad, cv2.BORDER_REPLICATE)
        out: list[tuple[PlateParse, str]] = []
        for rec in self.engine.recognizer.recognize([crop, padded]):
            line = _Line(rec.text, rec.confidence, 0, 0, 1, 1, rec.alternatives)
            out += _parse_lines((line,), (), self.countries)
        return out

    def _halves(self, crop: np.ndarray, frac: float) -> list[tuple[PlateParse, str]]:
        h = crop.shape[0]
        cut = round(h * frac)
        overlap = max(1, h // 20)
        if cut < 8 or h - cut < 8:
            return []
        top, bottom = crop[: cut + overlap], crop[cut - overlap :]
        t, b = self.engine.recognizer.recognize([top, bottom])
        top_line = _Line(t.text, t.confidence, 0, 0, 1, 1, t.alternatives)
        bottom_line = _Line(b.text, b.confidence, 0, 0, 1, 1, b.alternatives)
        return _parse_lines((top_line,), (bottom_line,), self.countries)

    def _findings(self, image: np.ndarray, candidates: list[_Candidate], dx: int, dy: int) -> tuple[PlateFinding, ...]:
        scored: list[tuple[float, _Candidate, PlateParse, str, int]] = []
        for cand in candidates:
            voted = _vote(cand.readings, self.min_agreement)
            if voted is None:
                continue
            parse, raw, count = voted
            if parse.confidence < self.min_confidence:
                continue
            scored.append((parse.score, cand, parse, raw, count))
        # Overlapping candidates are one plate: the best-scored reading wins.
        scored.sort(key=lambda s: -s[0])
        kept: list[PlateFinding] = []
        boxes: list[tuple[float, float, float, float]] = []
        for score, cand, parse, raw, count in scored:
            if any(_iou(cand.box, b) > 0.3 for b in boxes):
                continue
            boxes.append(cand.box)
            colour = estimate_colour(image, cand.box)
            layout: Layout = "two_line" if "/" in raw else "one_line"
            kept.append(
                PlateFinding(parse, _bbox(cand.box, dx, dy), layout, colour, parse.confidence, score, raw, count)
            )
        # Across plates: VN/CN before other countries, then the OCR's confidence (the scores of
        # different regions are not comparable: priors, numbers of readings).
        kept.sort(key=lambda f: (f.parse.country == "FOREIGN", -f.confidence, -f.score))
        return tuple(kept)


def _inside(box: BBox, roi: BBox | None) -> bool:
    if roi is None:
        return True
    cx, cy = box.x + box.w / 2, box.y + box.h / 2
    return roi.x <= cx < roi.x + roi.w and roi.y <= cy < roi.y + roi.h


def _detector_side(crop: np.ndarray) -> int:
    side = max(crop.shape[:2])
    return int(min(960, max(64, math.ceil(side / 32) * 32)))
