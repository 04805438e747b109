"""Container seals (ISO 17712): serial by OCR and by barcode/QR, fused, plus presence.

A bolt or cable seal carries a unique printed serial (``VNH1234567``) and usually a barcode
or QR code of the same serial. :class:`SealReader` reads both in the seal region (the door
locking bars, lower half of the container rear) and fuses them:

* OCR and code agree -> ``source="both"``, high confidence;
* they disagree -> the code wins when its text matches the serial pattern (a symbol has its
  own error detection; printed digits do not), with lower confidence;
* only one of them -> that one;
* neither -> ``SealRead(serial=None, present=False)``, unless the visual check (a seal-sized
  crop only) sees the coloured plastic of a bolt-seal head.

:func:`seal_colour_score` is the visual check: how far the most vivid pixels in the middle of
a seal crop stand from the crop's surroundings in Lab chroma. Bolt-seal heads are bright
coloured plastic (yellow, red, green, blue, orange); an empty hasp is bare, painted metal.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Protocol

import cv2
import numpy as np

from appliance.analyzers import iso6346
from appliance.analyzers.ocr import OcrEngine, check_image
from appliance.errors import ConfigError
from appliance.reads import BBox, CodeRead, SealRead, TextLine

log = logging.getLogger(__name__)

#: Seal serials: a short manufacturer/owner prefix then digits (``VNH1234567``). Two letters
#: at least and six digits at least, so that plates (``51R14139``, ``AD12345``) never match.
DEFAULT_SERIAL_PATTERN = r"[A-Z]{2,4}[0-9]{6,9}"

CONF_BOTH = 0.97
CONF_CODE_ONLY = 0.85
CONF_OCR_SCALE = 0.8  # OCR-only confidence = recogniser confidence x this
CONF_DISAGREE_NEAR = 0.7  # code wins; OCR differs by one character
CONF_DISAGREE_FAR = 0.5  # code wins; OCR read something else entirely

# A container number, whole or with its first letters or check digit missed (``GHU8871530``):
# seal prefixes ending in U, J or Z lose out, the price of never taking the door's number.
_CONTAINER_LIKE = re.compile(r"[A-Z]{1,3}[UJZ][0-9]{6,7}")

#: Lab chroma (distance from the surroundings) above which a crop shows a seal head.
COLOUR_THRESHOLD = 20.0


class CodeSource(Protocol):
    def read(self, image: np.ndarray) -> tuple[CodeRead, ...]: ...


@dataclass(frozen=True)
class SealSettings:
    serial_pattern: str = DEFAULT_SERIAL_PATTERN
    max_side: int = 960  # OCR detector input for the region
    min_ocr_confidence: float = 0.5
    visual_max_side: int = 200  # the colour check only runs on seal-sized regions
    colour_threshold: float = COLOUR_THRESHOLD


@dataclass(frozen=True)
class _Evidence:
    serial: str
    confidence: float
    bbox: BBox | None


class SealReader:
    """Seal serials (OCR + barcode/QR, fused) and seal presence in a seal region."""

    def __init__(
        self,
        engine: OcrEngine,
        code_reader: CodeSource | None = None,
        settings: SealSettings | None = None,
        *,
        serial_pattern: str | None = None,
    ):
        """``serial_pattern`` (a regular expression a whole serial must match) overrides the settings'."""
        self.engine = engine
        self.code_reader = code_reader
        settings = settings or SealSettings()
        if serial_pattern is not None:
            settings = replace(settings, serial_pattern=serial_pattern)
        self.settings = settings
        try:
            self._pattern = re.compile(settings.serial_pattern)
        except re.error as exc:
            raise ConfigError(f"seals.serial_pattern {settings.serial_pattern!r} is not a valid regex: {exc}") from exc

    def read(
        self, image: np.ndarray, region: BBox | None = None, lines: Sequence[TextLine] | None = None
    ) -> tuple[SealRead, ...]:
        """The seals in ``region`` of ``image`` (the whole image when None), best first.

        ``lines``: OCR lines the caller already has for the whole ``image`` (frame pixels), to
        save a second OCR pass; those centred in ``region`` are used. Always returns at least
        one SealRead: a serial-less one with ``present=False`` when nothing seal-like was found.
        """
        image = check_image(image, "seal reader")
        crop, (dx, dy) = _region_crop(image, region)
        if crop.size == 0:
            return (SealRead(None, False, 0.0, region, "none"),)
        if lines is None:
            crop_lines = self.engine.read(crop, max_side=self.settings.max_side)
        else:
            crop_lines = _lines_within(lines, dx, dy, crop.shape[1], crop.shape[0])
        ocr = self._ocr_serials(crop_lines)
        codes = self._code_serials(crop)
        reads = _fuse(ocr, codes)
        if not reads:
            reads = [self._visual(crop)]
        return tuple(_shift(r, dx, dy, region) for r in reads)

    def is_serial(self, text: str) -> bool:
        """True when ``text`` looks like a seal serial and not like a container number, whole or
        partly read (``TGHU887153``, ``GHU8871530``: the number on the door)."""
        return bool(self._pattern.fullmatch(text)) and not _CONTAINER_LIKE.fullmatch(text)

    # -- evidence --------------------------------------------------------------------------

    def _ocr_serials(self, lines: Sequence[TextLine]) -> list[_Evidence]:
        found: dict[str, _Evidence] = {}
        for text, confidence, bbox in _line_texts(lines):
            if confidence < self.settings.min_ocr_confidence:
                continue
            serial = self.serial_in(text)
            if serial and (serial not in found or confidence > found[serial].confidence):
                found[serial] = _Evidence(serial, confidence, bbox)
        return sorted(found.values(), key=lambda e: -e.confidence)

    def serial_in(self, text: str) -> str | None:
        """The serial in an OCR string: as read, or with letter/digit look-alikes mapped.

        The whole line (spaces dropped) is tried first, then each separated word, so that
        ``SEAL NO: VNH1234567`` gives ``VNH1234567`` and not ``NOVNH...``.
        """
        spaced = "".join(iso6346.normalize_char(c) or " " for c in text)
        words = [w for w in spaced.split(" ") if w]
        for chunk in ("".join(words), *words):
            if self._pattern.fullmatch(chunk):  # read as a serial: take it as it is, or not at all
                if self.is_serial(chunk):
                    return chunk
                continue
            for variant in _shape_variants(chunk):  # fewest changes first
                if self.is_serial(variant):
                    return variant
        return None

    def _code_serials(self, crop: np.ndarray) -> list[_Evidence]:
        if self.code_reader is None:
            return []
        out: list[_Evidence] = []
        for code in self.code_reader.read(crop):
            text = code.text.strip().upper()
            if self.is_serial(text):
                out.append(_Evidence(text, 1.0, code.bbox))
            else:
                log.debug("seal region: a %s code that is not a seal serial (%d chars)", code.format, len(text))
        return out

    def _visual(self, crop: np.ndarray) -> SealRead:
        """No serial anywhere: on a seal-sized crop, fall back to the colour check."""
        h, w = crop.shape[:2]
        if max(h, w) > self.settings.visual_max_side:
            return SealRead(None, False, 0.5, None, "none")
        score = seal_colour_score(crop)
        present = score >= self.settings.colour_threshold
        confidence = min(0.9, 0.5 + abs(score - self.settings.colour_threshold) / 40.0)
        return SealRead(None, present, confidence, BBox(0, 0, w, h) if present else None, "none")


# --------------------------------------------------------------------------------------------
# Fusion
# --------------------------------------------------------------------------------------------


def _fuse(ocr: list[_Evidence], codes: list[_Evidence]) -> list[SealRead]:
    """One SealRead per seal: code and OCR serials paired, agreeing or not."""
    reads: list[SealRead] = []
    unused_ocr = list(ocr)
    for code in codes:
        same = next((o for o in unused_ocr if o.serial == code.serial), None)
        if same is not None:
            unused_ocr.remove(same)
            reads.append(SealRead(code.serial, True, CONF_BOTH, code.bbox or same.bbox, "both"))
            continue
        rival = _nearest(code, unused_ocr)
        if rival is not None:
            unused_ocr.remove(rival)
            near = edit_distance(rival.serial, code.serial) <= 1
            confidence = CONF_DISAGREE_NEAR if near else CONF_DISAGREE_FAR
            log.info("seal: barcode and printed serial disagree (%s); taking the barcode", "1 char" if near else "more")
            reads.append(SealRead(code.serial, True, confidence, code.bbox or rival.bbox, "barcode"))
        else:
            reads.append(SealRead(code.serial, True, CONF_CODE_ONLY, code.bbox, "barcode"))
    for o in unused_ocr:
        reads.append(SealRead(o.serial, True, min(1.0, o.confidence * CONF_OCR_SCALE), o.bbox, "ocr"))
    unique: dict[str, SealRead] = {}
    for r in sorted(reads, key=lambda r: -r.confidence):
        unique.setdefault(r.serial or "", r)
    return list(unique.values())


def _nearest(code: _Evidence, ocr: Sequence[_Evidence]) -> _Evidence | None:
    """The OCR serial most likely to be the same seal as ``code`` (closest box, else any)."""
    if not ocr:
        return None
    if code.bbox is None:
        return ocr[0]
    cb = code.bbox

    def gap(e: _Evidence) -> float:
        if e.bbox is None:
            return float("inf")
        return abs(e.bbox.x + e.bbox.w / 2 - cb.x - cb.w / 2) + abs(e.bbox.y + e.bbox.h / 2 - cb.y - cb.h / 2)

    return min(ocr, key=gap)


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (short strings: serials, plates)."""
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def _region_crop(image: np.ndarray, region: BBox | None) -> tuple[np.ndarray, tuple[int, int]]:
    if region is None:
        return image, (0, 0)
    h, w = image.shape[:2]
    x0, y0 = max(0, region.x), max(0, region.y)
    x1, y1 = min(w, region.x + region.w), min(h, region.y + region.h)
    if x1 <= x0 or y1 <= y0:
        return np.zeros((0, 0, 3), np.uint8), (x0, y0)
    return image[y0:y1, x0:x1], (x0, y0)


def _lines_within(lines: Sequence[TextLine], dx: int, dy: int, w: int, h: int) -> list[TextLine]:
    """Frame lines centred inside the crop at (dx, dy) of size w x h, in crop pixels."""
    out = []
    for line in lines:
        b = line.bbox
        cx, cy = b.x + b.w / 2 - dx, b.y + b.h / 2 - dy
        if 0 <= cx < w and 0 <= cy < h:
            box = BBox(b.x - dx, b.y - dy, b.w, b.h)
            out.append(TextLine(line.text, line.confidence, box, (), line.alternatives))
    return out


def _shift(read: SealRead, dx: int, dy: int, region: BBox | None) -> SealRead:
    box = read.bbox
    if box is not None:
        box = BBox(box.x + dx, box.y + dy, box.w, box.h)
    elif read.present and region is not None:
        box = region
    return SealRead(read.serial, read.present, read.confidence, box, read.source)


def _line_texts(lines: Sequence[TextLine]) -> list[tuple[str, float, BBox]]:
    """Each line's text, plus each pair of neighbouring tokens on one line joined."""
    out = [(line.text, line.confidence, line.bbox) for line in lines]
    for a in lines:
        for b in lines:
            if a is b:
                continue
            h = max(a.bbox.h, b.bbox.h)
            gap = b.bbox.x - (a.bbox.x + a.bbox.w)
            if abs((a.bbox.y + a.bbox.h / 2) - (b.bbox.y + b.bbox.h / 2)) <= 0.4 * h and -0.2 * h <= gap <= 1.5 * h:
                out.append((a.text + b.text, min(a.confidence, b.confidence), _union(a.bbox, b.bbox)))
    return out


def _union(a: BBox, b: BBox) -> BBox:
    x0, y0 = min(a.x, b.x), min(a.y, b.y)
    return BBox(x0, y0, max(a.x + a.w, b.x + b.w) - x0, max(a.y + a.h, b.y + b.h) - y0)


def _shape_variants(text: str) -> list[str]:
    """``text`` read as letters-then-digits at each split, look-alikes mapped (O->0, 5->S ...),
    fewest changed characters first."""
    variants: dict[str, int] = {}
    for split in range(1, min(5, len(text))):
        head = "".join(iso6346.TO_LETTER.get(c, c) for c in text[:split])
        tail = "".join(iso6346.TO_DIGIT.get(c, c) for c in text[split:])
        variant = head + tail
        if variant != text:
            variants[variant] = sum(a != b for a, b in zip(variant, text, strict=True))
    return sorted(variants, key=lambda v: variants[v])


def seal_colour_score(crop: np.ndarray) -> float:
    """How vivid and off-background the middle of a seal crop is (Lab chroma units, ~0..60).

    The 98th percentile, over the middle of the crop below its top quarter, of
    min(chroma, chroma distance from the median colour of the crop's border). Bright plastic
    seal heads score high; bare hasps, painted like the door around them, score low.
    """
    crop = check_image(crop, "seal colour check")
    h, w = crop.shape[:2]
    lab = cv2.cvtColor(cv2.GaussianBlur(crop, (3, 3), 0), cv2.COLOR_BGR2LAB).astype(np.float32)
    b = max(1, int(0.15 * min(h, w)))
    border = np.concatenate(
        [lab[:b].reshape(-1, 3), lab[-b:].reshape(-1, 3), lab[:, :b].reshape(-1, 3), lab[:, -b:].reshape(-1, 3)]
    )
    ref = np.median(border, axis=0)
    middle = lab[int(0.25 * h) :, int(0.2 * w) : max(int(0.8 * w), int(0.2 * w) + 1)]
    if middle.size == 0:
        return 0.0
    chroma = np.hypot(middle[..., 1] - 128.0, middle[..., 2] - 128.0)
    off_background = np.hypot(middle[..., 1] - ref[1], middle[..., 2] - ref[2])
    return float(np.percentile(np.minimum(chroma, off_background), 98))


def seal_present_visual(crop: np.ndarray, threshold: float = COLOUR_THRESHOLD) -> bool:
    """The colour check alone: True when the crop shows a coloured seal head."""
    return seal_colour_score(crop) >= threshold
