"""Read QR codes and 1-D/2-D barcodes from a camera frame.

Pipeline (each stage only runs when the previous ones left something to do):

1. zxing-cpp on the whole grayscale frame (configured formats, several symbols, rotated
   and inverted symbols, ``TextMode.Plain`` so GS1 and control characters come back as
   encoded). This is the common case: about 15 ms on a 1920x1080 frame.
2. Candidate regions: where zxing-cpp located a symbol but could not decode it; the
   whole frame when it is small (a crop) and nothing was decoded; blobs of dense,
   axis-coherent gradients (bars, modules), searched on large frames only when nothing
   was decoded. Candidates overlapping a decoded symbol are skipped; at most
   ``max_candidates`` are tried.
3. Each candidate is cropped (deskewed when it lies at an oblique angle) and retried:
   zxing-cpp on the crop upscaled (bicubic), then with a global-histogram binariser,
   pyzbar (a second opinion that reads some blurred codes zxing-cpp misses), zxing-cpp
   and pyzbar on an unsharp-masked crop, then on a contrast-equalised crop. The first
   variant that yields a new symbol ends the candidate.

Results are merged by position: two reads of one place with the same bytes become one
read (``decoder="both"`` when zxing-cpp and pyzbar agree); when they differ, the earlier
read wins, which is always zxing-cpp's whole-frame read (fewer misreads in the public
benchmark), and the disagreement is recorded in :attr:`CodeScan.disagreements` and
logged at DEBUG with lengths and hashes only.

Payloads are untrusted: nothing from a payload is ever logged, payloads over the cap are
dropped with a WARNING that gives only the size, and control characters are kept as
they are in ``raw``/``text`` for the parsers to judge. ``raw`` holds the bytes the
decoder saw; ``text`` is zxing-cpp's text, or for pyzbar-only reads the bytes as UTF-8,
else ISO-8859-1 (QR's default character set).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import cv2
import numpy as np
import numpy.typing as npt
import zxingcpp

from appliance.errors import ConfigError, FrameError
from appliance.reads import BBox, CodeRead

if TYPE_CHECKING:
    from types import ModuleType

log = logging.getLogger(__name__)

Gray = npt.NDArray[np.uint8]
Points = npt.NDArray[np.float64]  # shape (N, 2): x, y in frame pixels
Decoder = Literal["zxing", "pyzbar"]

#: Formats read by default: what a lane camera meets (declaration and citizen-ID QR codes,
#: seal, parcel and retail barcodes). DataMatrix, PDF417, Aztec and Code 93 can be added
#: in the configuration; DataMatrix alone costs about 50 ms per noisy 1920x1080 frame.
DEFAULT_FORMATS: tuple[str, ...] = (
    "QRCode",
    "MicroQRCode",
    "Code128",
    "Code39",
    "ITF",
    "EAN13",
    "EAN8",
    "UPCA",
    "UPCE",
)

#: Formats for which pyzbar's reads are trusted as a second opinion. zbar's Interleaved
#: 2 of 5, Codabar and Code 39 readers produce false positives on other bars, so they
#: stay zxing-cpp only.
SECOND_OPINION_FORMATS: tuple[str, ...] = ("QRCode", "Code128", "EAN13", "EAN8", "UPCA", "UPCE")

# zbar symbol type numbers (zbar.h) for the formats above, and back.
_ZBAR_TYPES: dict[str, int] = {
    "EAN8": 8,
    "UPCE": 9,
    "UPCA": 12,
    "EAN13": 13,
    "QRCode": 64,
    "Code128": 128,
}
_ZBAR_NAMES: dict[int, str] = {v: k for k, v in _ZBAR_TYPES.items()}
_ZBAR_PARTIAL = 1  # a structured-append part zbar could not complete
_ZBAR_CFG_ENABLE = 0
_ZBAR_CFG_BINARY = 4  # zbar >= 0.23: return QR bytes unconverted
_ZBAR_Y800 = 0x30303859  # fourcc 'Y800': 8-bit grayscale


@dataclass(frozen=True)
class CodeReaderConfig:
    """Settings of :class:`CodeReader`.

    ``second_opinion`` runs pyzbar on regions zxing-cpp could not decode;
    ``second_opinion_always`` also runs it on the whole frame when zxing-cpp did find
    codes (about 40-110 ms more per 1920x1080 frame), so that agreeing reads come back as
    ``decoder="both"``. ``retry`` enables the crop-and-retry pass on at most
    ``max_candidates`` regions (upscaled ``retry_scale`` times, bicubic);
    ``texture_search`` lets it look for code-like texture, which on frames larger than
    ``small_frame_pixels`` only happens when nothing was decoded, unless
    ``search_when_found`` is set.
    """

    formats: tuple[str, ...] = DEFAULT_FORMATS
    try_downscale: bool = True
    max_payload_bytes: int = 4096
    second_opinion: bool = True
    second_opinion_always: bool = False
    retry: bool = True
    retry_scale: float = 2.0
    max_candidates: int = 3
    texture_search: bool = True
    search_when_found: bool = False
    small_frame_pixels: int = 640 * 480
    max_retry_side: int = 960

    def __post_init__(self) -> None:
        if not self.formats:
            raise ConfigError("codes.formats must name at least one barcode format")
        for name in self.formats:
            _zxing_format(name)
        if self.max_payload_bytes < 1:
            raise ConfigError(f"codes.max_payload_bytes must be >= 1, got {self.max_payload_bytes}")
        if not 1.0 <= self.retry_scale <= 4.0:
            raise ConfigError(f"codes.retry_scale must be within 1..4, got {self.retry_scale}")
        if self.max_candidates < 0:
            raise ConfigError(f"codes.max_candidates must be >= 0, got {self.max_candidates}")
        if self.max_retry_side < 64 or self.small_frame_pixels < 0:
            raise ConfigError("codes.max_retry_side must be >= 64 and codes.small_frame_pixels >= 0")


@dataclass(frozen=True)
class Disagreement:
    """Two reads of the same place differ; ``kept`` won, ``dropped`` lost.

    The texts are in :attr:`kept` and :attr:`dropped`; never log them.
    """

    bbox: BBox | None
    kept: CodeRead
    dropped: CodeRead


@dataclass(frozen=True)
class CodeScan:
    """Everything one :meth:`CodeReader.scan` call found, with diagnostics."""

    codes: tuple[CodeRead, ...]
    disagreements: tuple[Disagreement, ...] = ()
    oversized: int = 0
    candidates_tried: int = 0
    stages: tuple[str, ...] = ()
    ms: float = 0.0


@dataclass
class _Hit:
    """One symbol as one decoder saw it, in frame coordinates."""

    raw: bytes
    text: str
    format: str
    points: Points
    decoder: Decoder
    stage: str
    sequence: tuple[int, int] | None = None
    confirmed_by: Decoder | None = None

    @property
    def bbox(self) -> BBox:
        return BBox.from_points(self.points.tolist())

    def to_read(self) -> CodeRead:
        decoder: Literal["zxing", "pyzbar", "both"] = self.decoder
        if self.confirmed_by is not None and self.confirmed_by != self.decoder:
            decoder = "both"
        return CodeRead(
            text=self.text,
            format=self.format,
            bbox=self.bbox,
            decoder=decoder,
            sequence=self.sequence,
            raw=self.raw,
        )


@dataclass(frozen=True)
class _Region:
    """A rotated rectangle (OpenCV ``minAreaRect`` form) worth a closer look."""

    center: tuple[float, float]
    size: tuple[float, float]
    angle: float
    source: str

    def corners(self) -> Points:
        return np.asarray(cv2.boxPoints((self.center, self.size, self.angle)), dtype=np.float64)


@dataclass
class _ScanState:
    hits: list[_Hit] = field(default_factory=list)
    disagreements: list[Disagreement] = field(default_factory=list)
    stages: list[str] = field(default_factory=list)


class CodeReader:
    """Decode every QR code and barcode in a frame; see the module docstring."""

    def __init__(self, config: CodeReaderConfig | None = None) -> None:
        self.config = config or CodeReaderConfig()
        self._formats = _zxing_formats(self.config.formats)
        self._zbar_formats = tuple(f for f in self.config.formats if f in SECOND_OPINION_FORMATS)
        self._zbar: ModuleType | None = _load_zbar() if self.config.second_opinion else None

    def read(self, image: np.ndarray) -> tuple[CodeRead, ...]:
        """The codes in ``image`` (BGR, BGRA or grayscale ``uint8``)."""
        return self.scan(image).codes

    def scan(self, image: np.ndarray) -> CodeScan:
        """Like :meth:`read`, with disagreements, stage names and timing."""
        start = time.perf_counter()
        gray = to_gray(image)
        state = _ScanState()
        errors = self._zxing_pass(gray, state)
        if self._zbar is not None and self.config.second_opinion_always and state.hits:
            self._add(state, self._zbar_hits(gray, None, "zbar:frame"))
        tried = 0
        if self.config.retry and self.config.max_candidates > 0:
            tried = self._retry_candidates(gray, errors, state)
        codes, oversized = self._finish(state.hits)
        ms = (time.perf_counter() - start) * 1000.0
        log.debug("codes: %d read(s), %d candidate(s) retried in %.1f ms", len(codes), tried, ms)
        return CodeScan(
            codes=codes,
            disagreements=tuple(state.disagreements),
            oversized=oversized,
            candidates_tried=tried,
            stages=tuple(state.stages),
            ms=ms,
        )

    # -- stages -----------------------------------------------------------------------

    def _zxing_pass(self, gray: Gray, state: _ScanState) -> list[Points]:
        """Whole-frame zxing-cpp read; returns positions it found but could not decode."""
        found = zxingcpp.read_barcodes(
            gray,
            formats=self._formats,
            try_rotate=True,
            try_downscale=self.config.try_downscale,
            try_invert=True,
            text_mode=zxingcpp.TextMode.Plain,
            return_errors=True,
        )
        errors: list[Points] = []
        hits: list[_Hit] = []
        for barcode in found:
            if barcode.valid and barcode.error is None:
                hits.append(_zxing_hit(barcode, "zxing:frame", _identity))
            else:
                errors.append(_position_points(barcode.position))
        self._add(state, hits)
        return errors

    def _retry_candidates(self, gray: Gray, errors: list[Points], state: _ScanState) -> int:
        regions = _candidate_regions(gray, errors, not state.hits, self.config)
        tried = 0
        for region in regions:
            if tried >= self.config.max_candidates:
                break
            if _overlaps_any(region.corners(), state.hits):
                continue
            tried += 1
            self._retry_region(gray, region, state)
        return tried

    def _retry_region(self, gray: Gray, region: _Region, state: _ScanState) -> None:
        crop, to_frame = _crop_region(gray, region, self.config.max_retry_side)
        if crop.size == 0:
            return
        scale = _retry_scale(crop, self.config)
        for name, run in self._variants(crop, scale):
            hits = [_map_hit(h, to_frame) for h in run()]
            if self._add(state, hits, only_new=True):
                state.stages.append(f"{region.source}:{name}")
                return

    def _variants(self, crop: Gray, scale: float) -> Iterable[tuple[str, Callable[[], list[_Hit]]]]:
        """Retry variants, cheapest and most productive first (measured on the dev set)."""
        back = 1.0 / scale
        local, histogram = zxingcpp.Binarizer.LocalAverage, zxingcpp.Binarizer.GlobalHistogram
        big = _upscale(crop, scale)
        yield "zxing_up", lambda: self._zxing_on(big, back, local)
        yield "zxing_up_gh", lambda: self._zxing_on(big, back, histogram)
        if self._zbar is not None:
            yield "zbar", lambda: self._zbar_hits(crop, None, "zbar:crop")
        yield "zxing_up_sharp", lambda: self._zxing_on(_unsharp(big, 2.0 * scale), back, local)
        if self._zbar is not None:
            yield "zbar_sharp", lambda: self._zbar_hits(_unsharp(crop, 2.0), None, "zbar:crop_sharp")
        yield "zxing_up_clahe", lambda: self._zxing_on(_equalise(big), back, local)
        if self._zbar is not None:
            yield "zbar_clahe", lambda: self._zbar_hits(_equalise(crop), None, "zbar:crop_clahe")

    def _zxing_on(self, image: Gray, back: float, binarizer: zxingcpp.Binarizer) -> list[_Hit]:
        found = zxingcpp.read_barcodes(
            image,
            formats=self._formats,
            try_rotate=True,
            try_downscale=True,
            try_invert=True,
            text_mode=zxingcpp.TextMode.Plain,
            binarizer=binarizer,
        )
        return [_zxing_hit(b, "zxing:crop", lambda p: p * back) for b in found if b.valid]

    def _zbar_hits(self, gray: Gray, back: float | None, stage: str) -> list[_Hit]:
        assert self._zbar is not None
        hits = _zbar_decode(self._zbar, gray, self._zbar_formats, stage)
        if back is not None:
            for hit in hits:
                hit.points = hit.points * back
        return hits

    # -- merging ----------------------------------------------------------------------

    def _add(self, state: _ScanState, hits: list[_Hit], only_new: bool = False) -> bool:
        """Merge one pass's ``hits`` into ``state``; True when a new symbol was added.

        A hit at the place of a read from an earlier pass confirms it (same bytes) or
        loses to it (different bytes: earlier passes are zxing-cpp's whole-frame read,
        then retries). Within one pass, two different reads of the same place keep the
        one covering the larger area (more scan lines agreed on it).
        """
        earlier = list(state.hits)
        batch: list[_Hit] = []
        for hit in hits:
            if not hit.raw and not hit.text:
                log.debug("codes: ignored an empty %s read from %s", hit.format, hit.decoder)
                continue
            same = _find_same_place(hit, earlier)
            if same is not None:
                _merge_into(state, same, hit)
                continue
            twin = _find_same_place(hit, batch)
            if twin is None:
                batch.append(hit)
            elif not _same_payload(twin, hit):
                kept, dropped = (hit, twin) if _area(hit) > _area(twin) else (twin, hit)
                if kept is hit:
                    batch[batch.index(twin)] = hit
                _record_disagreement(state, kept, dropped)
        state.hits.extend(batch)
        if batch and not only_new:
            state.stages.append(batch[0].stage)
        return bool(batch)

    def _finish(self, hits: list[_Hit]) -> tuple[tuple[CodeRead, ...], int]:
        cap = self.config.max_payload_bytes
        kept: list[CodeRead] = []
        oversized = 0
        for hit in hits:
            size = len(hit.raw) or len(hit.text.encode("utf-8", "surrogatepass"))
            if size > cap:
                oversized += 1
                log.warning(
                    "dropped a %s payload of %d bytes at %s: larger than the %d-byte cap",
                    hit.format,
                    size,
                    _bbox_str(hit.bbox),
                    cap,
                )
                continue
            kept.append(hit.to_read())
        kept.sort(key=lambda r: (r.bbox.y, r.bbox.x) if r.bbox else (0, 0))
        return tuple(kept), oversized


# -- input checks -------------------------------------------------------------------------


def to_gray(image: object) -> Gray:
    """A contiguous 8-bit grayscale copy/view of ``image``; FrameError when it is not one."""
    if image is None:
        raise FrameError("no image: got None instead of a numpy array")
    if not isinstance(image, np.ndarray):
        raise FrameError(f"image must be a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise FrameError(f"image must have dtype uint8, got {image.dtype}")
    if image.size == 0:
        raise FrameError(f"image is empty (shape {image.shape})")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        gray = image
    elif image.ndim == 3 and image.shape[2] == 3:
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    elif image.ndim == 3 and image.shape[2] == 4:
        gray = cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY)
    else:
        raise FrameError(f"image must be HxW, HxWx1, HxWx3 (BGR) or HxWx4 (BGRA), got shape {image.shape}")
    if min(gray.shape) < 8:
        raise FrameError(f"image is too small to hold a code: {gray.shape[1]}x{gray.shape[0]} px")
    return np.ascontiguousarray(gray)


# -- zxing-cpp ----------------------------------------------------------------------------


def _zxing_format(name: str) -> zxingcpp.BarcodeFormat:
    try:
        return zxingcpp.barcode_format_from_str(name)
    except (ValueError, RuntimeError) as exc:
        raise ConfigError(f"unknown barcode format {name!r} in codes.formats") from exc


def _zxing_formats(names: Sequence[str]) -> zxingcpp.BarcodeFormats:
    return zxingcpp.barcode_formats_from_str(",".join(names))


def _identity(points: Points) -> Points:
    return points


def _position_points(position: zxingcpp.Position) -> Points:
    corners = (position.top_left, position.top_right, position.bottom_right, position.bottom_left)
    return np.asarray([[p.x, p.y] for p in corners], dtype=np.float64)


def _zxing_hit(barcode: zxingcpp.Barcode, stage: str, to_frame: Callable[[Points], Points]) -> _Hit:
    name = barcode.format.name
    raw = bytes(barcode.bytes)
    return _Hit(
        raw=raw,
        text=barcode.text,
        format=name,
        points=to_frame(_position_points(barcode.position)),
        decoder="zxing",
        stage=stage,
        sequence=_sequence_of(barcode) if name == "QRCode" else None,
    )


def _sequence_of(barcode: zxingcpp.Barcode) -> tuple[int, int] | None:
    """Structured-append (index, count) of a QR symbol; None when it is not part of one.

    zxing-cpp 3.1 does not expose the sequence fields to Python, so the header is read
    from the module matrix zxing-cpp sampled (``Barcode.to_image``), and only trusted
    when the Reed-Solomon syndromes of the first block are all zero.
    """
    try:
        matrix = np.asarray(barcode.to_image(scale=1, add_quiet_zones=False))
    except (RuntimeError, ValueError):
        return None
    if matrix.ndim != 2:
        return None
    return qr_structured_append(matrix < 128)


# -- pyzbar (second opinion) --------------------------------------------------------------


def _load_zbar() -> ModuleType | None:
    try:
        from pyzbar import wrapper
    except (ImportError, OSError) as exc:  # libzbar0 missing: run with zxing-cpp only
        log.warning("pyzbar/libzbar unavailable (%s): codes are read by zxing-cpp only", exc)
        return None
    return wrapper


def _zbar_decode(wrapper: ModuleType, gray: Gray, formats: Sequence[str], stage: str) -> list[_Hit]:
    """Decode with zbar's C API directly (pyzbar.decode crashes on some symbols)."""
    from ctypes import c_char_p, c_void_p, cast, string_at

    scanner = wrapper.zbar_image_scanner_create()
    image = wrapper.zbar_image_create()
    try:
        _configure_zbar(wrapper, scanner, formats)
        data = np.ascontiguousarray(gray).tobytes()
        height, width = gray.shape
        wrapper.zbar_image_set_format(image, _ZBAR_Y800)
        wrapper.zbar_image_set_size(image, width, height)
        wrapper.zbar_image_set_data(image, cast(c_char_p(data), c_void_p), len(data), None)
        if wrapper.zbar_scan_image(scanner, image) < 0:
            return []
        hits: list[_Hit] = []
        symbol = wrapper.zbar_image_first_symbol(image)
        while symbol:
            kind = int(symbol.contents.type)
            name = _ZBAR_NAMES.get(kind)
            if name is None:
                if kind == _ZBAR_PARTIAL:
                    log.debug("zbar: ignored an incomplete structured-append part")
            else:
                raw = string_at(wrapper.zbar_symbol_get_data(symbol), wrapper.zbar_symbol_get_data_length(symbol))
                count = wrapper.zbar_symbol_get_loc_size(symbol)
                pts = [
                    (wrapper.zbar_symbol_get_loc_x(symbol, i), wrapper.zbar_symbol_get_loc_y(symbol, i))
                    for i in range(count)
                ]
                if pts:
                    hits.append(_zbar_hit(raw, name, pts, stage))
            symbol = wrapper.zbar_symbol_next(symbol)
        return hits
    finally:
        wrapper.zbar_image_destroy(image)
        wrapper.zbar_image_scanner_destroy(scanner)


def _configure_zbar(wrapper: ModuleType, scanner: object, formats: Sequence[str]) -> None:
    wrapper.zbar_image_scanner_set_config(scanner, 0, _ZBAR_CFG_ENABLE, 0)  # all off
    for name in formats:
        wrapper.zbar_image_scanner_set_config(scanner, _ZBAR_TYPES[name], _ZBAR_CFG_ENABLE, 1)
    if "QRCode" in formats:
        # Unconverted bytes: zbar's own charset guess garbles Shift-JIS text.
        wrapper.zbar_image_scanner_set_config(scanner, _ZBAR_TYPES["QRCode"], _ZBAR_CFG_BINARY, 1)


def _zbar_hit(raw: bytes, name: str, pts: list[tuple[int, int]], stage: str) -> _Hit:
    points = np.asarray(pts, dtype=np.float64)
    return _Hit(raw=raw, text=bytes_to_text(raw), format=name, points=points, decoder="pyzbar", stage=stage)


def bytes_to_text(raw: bytes) -> str:
    """Text of payload bytes: UTF-8 when valid, else ISO-8859-1 (QR's default charset).

    Every byte maps to one character, so nothing is invented or lost; ``raw`` keeps the
    bytes themselves.
    """
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


# -- candidate regions --------------------------------------------------------------------

_WORK_SIDE = 960  # candidate search runs on the frame downscaled to this longest side
_MIN_SIDE = 20  # smallest code side (pixels in the frame) worth a retry
_MAX_BLOB_FRACTION = 0.4  # of a large frame's short side: longest code-like blob worth a retry
_MAX_ASPECT = 6.0  # longest / shortest side of a code-like blob
_MIN_COHERENCE = 0.35  # axis coherence of a code-like blob (printed text scores about 0.3)


def _candidate_regions(
    gray: Gray, errors: list[Points], nothing_found: bool, config: CodeReaderConfig
) -> list[_Region]:
    """Located-but-undecoded symbols first, then the small frame itself, then textures.

    On a large frame where the whole-frame pass already decoded something, the texture
    search is skipped (``search_when_found``) so the common case stays fast.
    """
    regions = [_region_of(points, "located") for points in errors]
    height, width = gray.shape
    small = height * width <= config.small_frame_pixels
    if nothing_found and small:
        regions.append(_Region((width / 2.0, height / 2.0), (float(width), float(height)), 0.0, "frame"))
    if config.texture_search and (nothing_found or small or config.search_when_found):
        # On a full frame, a blob longer than 40 % of the short side is not one code the
        # whole-frame pass missed (such a code has big modules), but bars, grilles, text.
        longest = float("inf") if small else _MAX_BLOB_FRACTION * min(height, width)
        blobs = _texture_regions(gray, config.max_candidates * 3)
        regions.extend([r for r in blobs if max(r.size) <= longest][: config.max_candidates * 2])
    return regions


def _region_of(points: Points, source: str) -> _Region:
    (cx, cy), (w, h), angle = cv2.minAreaRect(points.astype(np.float32))
    return _Region((float(cx), float(cy)), (float(w), float(h)), float(angle), source)


def _texture_regions(gray: Gray, limit: int) -> list[_Region]:
    """Blobs of dense, strong, axis-coherent gradients (bars, modules), best first."""
    height, width = gray.shape
    factor = min(1.0, _WORK_SIDE / max(height, width))
    small = gray if factor == 1.0 else cv2.resize(gray, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
    gx = _f32(cv2.Sobel(small, cv2.CV_32F, 1, 0, ksize=3))
    gy = _f32(cv2.Sobel(small, cv2.CV_32F, 0, 1, ksize=3))
    mag = _f32(cv2.magnitude(gx, gy))
    density = _f32(cv2.blur(mag, (7, 7)))
    level = _otsu_level(density)
    if level < 48.0:  # a flat frame: Otsu would split noise
        return []
    kernel_close = cv2.getStructuringElement(cv2.MORPH_RECT, (9, 9))
    kernel_open = cv2.getStructuringElement(cv2.MORPH_RECT, (5, 5))
    mask = cv2.morphologyEx(np.asarray(density > level, dtype=np.uint8) * 255, cv2.MORPH_CLOSE, kernel_close)
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, kernel_open)
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    texture = _Texture(mag=mag, angle4=_f32(cv2.phase(gx, gy)) * np.float32(4.0), density=density)
    scored = [r for r in (_texture_region(c, texture, factor) for c in contours) if r is not None]
    scored.sort(key=lambda item: -item[0])
    return [region for _, region in scored[:limit]]


def _f32(array: object) -> npt.NDArray[np.float32]:
    return np.asarray(array, dtype=np.float32)


@dataclass(frozen=True)
class _Texture:
    mag: npt.NDArray[np.float32]
    angle4: npt.NDArray[np.float32]  # gradient direction times 4: codes have one axis pair
    density: npt.NDArray[np.float32]


def _otsu_level(values: npt.NDArray[np.float32]) -> float:
    top = float(values.max())
    if top <= 0.0:
        return 0.0
    scaled = np.asarray(values * (255.0 / top), dtype=np.uint8)
    level, _ = cv2.threshold(scaled, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return float(level) * top / 255.0


def _texture_region(contour: np.ndarray, texture: _Texture, factor: float) -> tuple[float, _Region] | None:
    (cx, cy), (w, h), angle = cv2.minAreaRect(contour)
    shape = texture.mag.shape
    if min(w, h) < _MIN_SIDE * factor or w * h > 0.8 * shape[0] * shape[1]:
        return None
    if max(w, h) / max(min(w, h), 1.0) > _MAX_ASPECT:
        return None  # a line of text, an edge: not a code
    fill = cv2.contourArea(contour) / max(w * h, 1.0)
    if fill < 0.5:
        return None
    x, y, bw, bh = cv2.boundingRect(contour)
    coherence = _axis_coherence(texture, (slice(y, y + bh), slice(x, x + bw)))
    if coherence < _MIN_COHERENCE:
        return None
    strength = float(texture.density[y : y + bh, x : x + bw].mean())
    inv = 1.0 / factor
    region = _Region((cx * inv, cy * inv), (w * inv, h * inv), float(angle), "texture")
    return strength * coherence * float(np.sqrt(w * h)), region


def _axis_coherence(texture: _Texture, window: tuple[slice, slice]) -> float:
    """0..1: how much of the strong gradient follows one pair of perpendicular axes.

    Bars and QR modules score high (one axis pair), printed text lower, noise near 0.
    """
    mag = texture.mag[window]
    strong = mag > np.percentile(mag, 75)
    weights = mag[strong]
    total = float(weights.sum())
    if total <= 0.0:
        return 0.0
    angles = texture.angle4[window][strong]
    return float(np.hypot((weights * np.cos(angles)).sum(), (weights * np.sin(angles)).sum()) / total)


def _crop_region(gray: Gray, region: _Region, max_side: int) -> tuple[Gray, Callable[[Points], Points]]:
    """Crop ``region`` with a margin, deskewed when it lies at an oblique angle.

    Returns the crop and a function that maps crop points back to the frame.
    """
    w, h = region.size
    margin = 0.15 * max(w, h) + 8.0
    oblique = 10.0 < region.angle % 90.0 < 80.0
    # Rotating by the minAreaRect angle makes the rectangle axis-aligned, w across.
    angle = region.angle if oblique else 0.0
    if not oblique:
        w, h = _axis_extent(region)
    out_w = min(round(w + 2 * margin), 4 * max_side)
    out_h = min(round(h + 2 * margin), 4 * max_side)
    if out_w < 8 or out_h < 8:
        return np.zeros((0, 0), np.uint8), _identity
    forward = cv2.getRotationMatrix2D(region.center, angle, 1.0)
    forward[0, 2] += out_w / 2.0 - region.center[0]
    forward[1, 2] += out_h / 2.0 - region.center[1]
    crop = cv2.warpAffine(gray, forward, (out_w, out_h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    inverse = cv2.invertAffineTransform(forward)

    def to_frame(points: Points) -> Points:
        return np.asarray(cv2.transform(points.reshape(-1, 1, 2), inverse).reshape(-1, 2), dtype=np.float64)

    return np.ascontiguousarray(crop), to_frame


def _axis_extent(region: _Region) -> tuple[float, float]:
    corners = region.corners()
    span = corners.max(axis=0) - corners.min(axis=0)
    return float(span[0]), float(span[1])


def _retry_scale(crop: Gray, config: CodeReaderConfig) -> float:
    """Upscale small crops up to ``retry_scale`` times, large ones little or not at all."""
    return max(1.0, min(config.retry_scale, config.max_retry_side / max(crop.shape)))


def _upscale(image: Gray, scale: float) -> Gray:
    if scale == 1.0:
        return image
    return np.asarray(cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC), dtype=np.uint8)


def _unsharp(image: Gray, sigma: float, amount: float = 1.5) -> Gray:
    """Unsharp mask: restores edges of slightly blurred modules and bars."""
    blurred = cv2.GaussianBlur(image, (0, 0), sigma)
    return np.asarray(cv2.addWeighted(image, 1.0 + amount, blurred, -amount, 0), dtype=np.uint8)


def _equalise(image: Gray) -> Gray:
    return np.asarray(cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8)).apply(image), dtype=np.uint8)


def _map_hit(hit: _Hit, to_frame: Callable[[Points], Points]) -> _Hit:
    hit.points = to_frame(hit.points)
    return hit


# -- merging ------------------------------------------------------------------------------


def _box(points: Points, grow: float) -> tuple[float, float, float, float]:
    x0, y0 = points.min(axis=0)
    x1, y1 = points.max(axis=0)
    pad = grow * max(x1 - x0, y1 - y0) + 4.0
    return float(x0 - pad), float(y0 - pad), float(x1 + pad), float(y1 + pad)


def _inside(point: npt.NDArray[np.float64], box: tuple[float, float, float, float]) -> bool:
    return box[0] <= point[0] <= box[2] and box[1] <= point[1] <= box[3]


def _same_place(a: Points, b: Points) -> bool:
    """Same symbol: a centre inside the other's (slightly grown) box, similar lengths.

    Lengths (longest box side) within a factor of 2 keep a small QR printed inside a
    larger one apart; 1-D reads (a thin line from zxing-cpp, scan-line hull from zbar)
    still match on their length.
    """
    long_a, long_b = _long_side(a), _long_side(b)
    if max(long_a, long_b) > 2.0 * max(min(long_a, long_b), 1.0):
        return False
    return _inside(a.mean(axis=0), _box(b, 0.1)) or _inside(b.mean(axis=0), _box(a, 0.1))


def _long_side(points: Points) -> float:
    span = points.max(axis=0) - points.min(axis=0)
    return float(max(span[0], span[1]))


def _find_same_place(hit: _Hit, hits: list[_Hit]) -> _Hit | None:
    for other in hits:
        if _same_place(hit.points, other.points):
            return other
    return None


def _overlaps_any(points: Points, hits: list[_Hit]) -> bool:
    return any(_same_place(points, hit.points) for hit in hits)


def _canonical(fmt: str, raw: bytes) -> tuple[str, bytes]:
    """UPC-A is EAN-13 with a leading 0; compare both forms alike."""
    if fmt == "UPCA" and len(raw) == 12:
        return "EAN13", b"0" + raw
    return fmt, raw


def _same_payload(a: _Hit, b: _Hit) -> bool:
    return _canonical(a.format, a.raw)[1] == _canonical(b.format, b.raw)[1]


def _merge_into(state: _ScanState, earlier: _Hit, hit: _Hit) -> None:
    if _same_payload(earlier, hit):
        if earlier.confirmed_by is None and hit.decoder != earlier.decoder:
            earlier.confirmed_by = hit.decoder
    else:
        _record_disagreement(state, earlier, hit)


def _area(hit: _Hit) -> float:
    span = hit.points.max(axis=0) - hit.points.min(axis=0)
    return float(span[0] * span[1])


def _record_disagreement(state: _ScanState, kept: _Hit, dropped: _Hit) -> None:
    """Keep ``kept``: zxing-cpp always reads a place before any retry or pyzbar does."""
    state.disagreements.append(Disagreement(kept.bbox, kept.to_read(), dropped.to_read()))
    log.debug(
        "codes: %s and %s disagree at %s (%d vs %d bytes, sha256 %s vs %s); kept %s",
        kept.decoder,
        dropped.decoder,
        _bbox_str(kept.bbox),
        len(kept.raw),
        len(dropped.raw),
        _digest(kept.raw),
        _digest(dropped.raw),
        kept.stage,
    )


def _digest(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()[:12]


def _bbox_str(bbox: BBox | None) -> str:
    if bbox is None:
        return "(unknown)"
    return f"({bbox.x},{bbox.y},{bbox.w}x{bbox.h})"


# -- QR structured append -----------------------------------------------------------------

# Error-correction blocks per version (1..40) and level (L, M, Q, H), ISO/IEC 18004
# table 9: EC codewords per block, blocks in group 1, data codewords each, blocks in
# group 2, data codewords each.
_EC_TABLE = """
7,1,19,0,0 10,1,16,0,0 13,1,13,0,0 17,1,9,0,0
10,1,34,0,0 16,1,28,0,0 22,1,22,0,0 28,1,16,0,0
15,1,55,0,0 26,1,44,0,0 18,2,17,0,0 22,2,13,0,0
20,1,80,0,0 18,2,32,0,0 26,2,24,0,0 16,4,9,0,0
26,1,108,0,0 24,2,43,0,0 18,2,15,2,16 22,2,11,2,12
18,2,68,0,0 16,4,27,0,0 24,4,19,0,0 28,4,15,0,0
20,2,78,0,0 18,4,31,0,0 18,2,14,4,15 26,4,13,1,14
24,2,97,0,0 22,2,38,2,39 22,4,18,2,19 26,4,14,2,15
30,2,116,0,0 22,3,36,2,37 20,4,16,4,17 24,4,12,4,13
18,2,68,2,69 26,4,43,1,44 24,6,19,2,20 28,6,15,2,16
20,4,81,0,0 30,1,50,4,51 28,4,22,4,23 24,3,12,8,13
24,2,92,2,93 22,6,36,2,37 26,4,20,6,21 28,7,14,4,15
26,4,107,0,0 22,8,37,1,38 24,8,20,4,21 22,12,11,4,12
30,3,115,1,116 24,4,40,5,41 20,11,16,5,17 24,11,12,5,13
22,5,87,1,88 24,5,41,5,42 30,5,24,7,25 24,11,12,7,13
24,5,98,1,99 28,7,45,3,46 24,15,19,2,20 30,3,15,13,16
28,1,107,5,108 28,10,46,1,47 28,1,22,15,23 28,2,14,17,15
30,5,120,1,121 26,9,43,4,44 28,17,22,1,23 28,2,14,19,15
28,3,113,4,114 26,3,44,11,45 26,17,21,4,22 26,9,13,16,14
28,3,107,5,108 26,3,41,13,42 30,15,24,5,25 28,15,15,10,16
28,4,116,4,117 26,17,42,0,0 28,17,22,6,23 30,19,16,6,17
28,2,111,7,112 28,17,46,0,0 30,7,24,16,25 24,34,13,0,0
30,4,121,5,122 28,4,47,14,48 30,11,24,14,25 30,16,15,14,16
30,6,117,4,118 28,6,45,14,46 30,11,24,16,25 30,30,16,2,17
26,8,106,4,107 28,8,47,13,48 30,7,24,22,25 30,22,15,13,16
28,10,114,2,115 28,19,46,4,47 28,28,22,6,23 30,33,16,4,17
30,8,122,4,123 28,22,45,3,46 30,8,23,26,24 30,12,15,28,16
30,3,117,10,118 28,3,45,23,46 30,4,24,31,25 30,11,15,31,16
30,7,116,7,117 28,21,45,7,46 30,1,23,37,24 30,19,15,26,16
30,5,115,10,116 28,19,47,10,48 30,15,24,25,25 30,23,15,25,16
30,13,115,3,116 28,2,46,29,47 30,42,24,1,25 30,23,15,28,16
30,17,115,0,0 28,10,46,23,47 30,10,24,35,25 30,19,15,35,16
30,17,115,1,116 28,14,46,21,47 30,29,24,19,25 30,11,15,46,16
30,13,115,6,116 28,14,46,23,47 30,44,24,7,25 30,59,16,1,17
30,12,121,7,122 28,12,47,26,48 30,39,24,14,25 30,22,15,41,16
30,6,121,14,122 28,6,47,34,48 30,46,24,10,25 30,2,15,64,16
30,17,122,4,123 28,29,46,14,47 30,49,24,10,25 30,24,15,46,16
30,4,122,18,123 28,13,46,32,47 30,48,24,14,25 30,42,15,32,16
30,20,117,4,118 28,40,47,7,48 30,43,24,22,25 30,10,15,67,16
30,19,118,6,119 28,18,47,31,48 30,34,24,34,25 30,20,15,61,16
"""
_EC_BLOCKS: tuple[tuple[tuple[int, int, int, int, int], ...], ...] = tuple(
    tuple(tuple(int(n) for n in part.split(",")) for part in line.split())  # type: ignore[misc]
    for line in _EC_TABLE.strip().splitlines()
)
_LEVEL_BY_BITS = {1: 0, 0: 1, 3: 2, 2: 3}  # format-info EC bits -> index L, M, Q, H
_MODE_STRUCTURED_APPEND = 0b0011


def _format_code(data: int) -> int:
    """15-bit masked BCH(15,5) format word of 5 data bits (EC level, mask)."""
    rem = data << 10
    for shift in range(4, -1, -1):
        if rem & (1 << (shift + 10)):
            rem ^= 0x537 << shift
    return ((data << 10) | rem) ^ 0x5412


_FORMAT_CODES = tuple(_format_code(d) for d in range(32))


def _read_format(dark: npt.NDArray[np.bool_]) -> tuple[int, int] | None:
    """(EC level index L=0..H=3, mask pattern) from the copy around the top-left finder."""
    cells = [(8, i) for i in range(6)] + [(8, 7), (8, 8), (7, 8)] + [(j, 8) for j in range(5, -1, -1)]
    word = 0
    for row, col in cells:
        word = (word << 1) | int(dark[row, col])
    best = min(range(32), key=lambda d: bin(_FORMAT_CODES[d] ^ word).count("1"))
    if bin(_FORMAT_CODES[best] ^ word).count("1") > 3:
        return None
    return _LEVEL_BY_BITS[best >> 3], best & 7


def _alignment_centres(version: int) -> list[int]:
    if version == 1:
        return []
    count = version // 7 + 2
    size = version * 4 + 17
    step = 26 if version == 32 else (version * 4 + count * 2 + 1) // (count * 2 - 2) * 2
    return [6, *sorted(size - 7 - i * step for i in range(count - 1))]


def _function_modules(version: int) -> npt.NDArray[np.bool_]:
    size = version * 4 + 17
    used = np.zeros((size, size), dtype=bool)
    used[:9, :9] = True
    used[:9, size - 8 :] = True
    used[size - 8 :, :9] = True
    used[6, :] = True
    used[:, 6] = True
    centres = _alignment_centres(version)
    if centres:
        last = centres[-1]
        for r in centres:
            for c in centres:
                if (r, c) not in ((6, 6), (6, last), (last, 6)):
                    used[r - 2 : r + 3, c - 2 : c + 3] = True
    if version >= 7:
        used[:6, size - 11 : size - 8] = True
        used[size - 11 : size - 8, :6] = True
    return used


def _mask_bit(mask: int, row: int, col: int) -> bool:
    if mask == 0:
        return (row + col) % 2 == 0
    if mask == 1:
        return row % 2 == 0
    if mask == 2:
        return col % 3 == 0
    if mask == 3:
        return (row + col) % 3 == 0
    if mask == 4:
        return (row // 2 + col // 3) % 2 == 0
    if mask == 5:
        return (row * col) % 2 + (row * col) % 3 == 0
    if mask == 6:
        return ((row * col) % 2 + (row * col) % 3) % 2 == 0
    return ((row + col) % 2 + (row * col) % 3) % 2 == 0


def _codewords(dark: npt.NDArray[np.bool_], version: int, mask: int) -> list[int]:
    size = dark.shape[0]
    used = _function_modules(version)
    bits: list[int] = []
    upward = True
    col = size - 1
    while col > 0:
        if col == 6:
            col -= 1
        rows = range(size - 1, -1, -1) if upward else range(size)
        for row in rows:
            for c in (col, col - 1):
                if not used[row, c]:
                    bits.append(int(dark[row, c]) ^ int(_mask_bit(mask, row, c)))
        upward = not upward
        col -= 2
    return [int("".join(map(str, bits[i : i + 8])), 2) for i in range(0, len(bits) - 7, 8)]


def _first_block(codewords: list[int], version: int, level: int) -> list[int] | None:
    ec, n1, d1, n2, d2 = _EC_BLOCKS[version - 1][level]
    blocks = n1 + n2
    lengths = [d1] * n1 + [d2] * n2
    if len(codewords) < sum(lengths) + ec * blocks:
        return None
    data0 = [codewords[i * blocks] for i in range(d1)]
    ec_start = sum(lengths)
    ec0 = [codewords[ec_start + i * blocks] for i in range(ec)]
    return data0 + ec0


def _gf_tables() -> tuple[list[int], list[int]]:
    exp = [0] * 512
    logs = [0] * 256
    value = 1
    for i in range(255):
        exp[i] = value
        logs[value] = i
        value <<= 1
        if value & 0x100:
            value ^= 0x11D
    for i in range(255, 512):
        exp[i] = exp[i - 255]
    return exp, logs


_GF_EXP, _GF_LOG = _gf_tables()


def _syndromes_zero(block: list[int], ec: int) -> bool:
    for k in range(ec):
        acc = 0
        for byte in block:
            acc = (_GF_EXP[_GF_LOG[acc] + k] if acc else 0) ^ byte
        if acc:
            return False
    return True


def qr_structured_append(dark: npt.NDArray[np.bool_]) -> tuple[int, int] | None:
    """(index, count) from a QR Model 2 module matrix (True = dark); None when absent.

    ``index`` counts from 0. The matrix may be transposed (mirrored symbol); both
    orientations are tried. Returns None unless the header lies in an error-free block.
    """
    size = dark.shape[0]
    if dark.ndim != 2 or dark.shape[1] != size or size < 21 or (size - 17) % 4:
        return None
    version = (size - 17) // 4
    if version > 40:
        return None
    for matrix in (dark, dark.T):
        found = _read_header(matrix, version)
        if found is not None:
            return found if found != (-1, -1) else None
    return None


def _read_header(dark: npt.NDArray[np.bool_], version: int) -> tuple[int, int] | None:
    """The header, (-1, -1) for a clean symbol without one, None when unreadable."""
    fmt = _read_format(dark)
    if fmt is None:
        return None
    level, mask = fmt
    block = _first_block(_codewords(dark, version, mask), version, level)
    if block is None:
        return None
    ec = _EC_BLOCKS[version - 1][level][0]
    if not _syndromes_zero(block, ec):
        return None
    head = (block[0] << 16) | (block[1] << 8) | block[2]
    if head >> 20 != _MODE_STRUCTURED_APPEND:
        return (-1, -1)
    index = (head >> 16) & 0xF
    count = ((head >> 12) & 0xF) + 1
    return index, count
