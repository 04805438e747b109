"""Scanner ingest: what drive-through X-ray scanners export, read into :class:`~appliance.xray.scan.XrayScan`.

Public API::

    read_scan(path, *, default_utc_offset_h=None, ...) -> XrayScan        # a sidecar (.json) or a DICOM file
    read_sidecar_scan(path, *, default_utc_offset_h=None, ...) -> XrayScan
    read_dicom_scan(path, low_path=None, *, scanner_id=None, default_utc_offset_h=None, ...) -> XrayScan
    read_image(path, *, bit_depth=16, normalised=False, ...) -> tuple[ndarray, bytes]
    read_calibration(folder) -> CalibrationFrames                         # the simulator's calibration/
    XrayDropFolder(path, *, follow=False, settle_s=1.0, ...)              # iterate: yields XrayScan

Formats (docs/XRAY.md, "Simulator and ingest"):

* **PNG or TIFF plus a JSON sidecar** naming the image files: 16-bit greyscale transmission counts
  (8-bit only when the sidecar says ``"bit_depth": 8``), or float32 normalised transmission in a TIFF
  with ``"normalised": true``. The images must sit next to the sidecar (plain file names). PNGs are
  decoded by OpenCV; TIFFs by OpenCV, or by tifffile when OpenCV cannot.
* **DICOM / DICOS** (pydicom): a DX or DICOS DX image, MONOCHROME1/2, 8 or 16 bits, one frame or two
  (frame 0 high, frame 1 low energy), or two files; scanner id and time from the standard tags.
  A sidecar may also name DICOM files as its images (its metadata then wins over the tags).

Every refusal is a :class:`~appliance.xray.scan.ScanError` naming the file and the problem. Image
sizes are checked from the file header before any pixel buffer is allocated. ``scan_id`` is the
sha256 of the raw image file bytes (high, then low), so it never depends on the metadata.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import io
import json
import logging
import math
import os
import re
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from appliance.xray.scan import ScanError, ScanMeta, XrayScan

logger = logging.getLogger(__name__)

__all__ = [
    "DICOM_SUFFIXES",
    "MAX_PIXELS",
    "MAX_SIDE",
    "SIDECAR_FORMAT",
    "CalibrationFrames",
    "XrayDropFolder",
    "parse_scan_time",
    "read_calibration",
    "read_dicom_scan",
    "read_image",
    "read_scan",
    "read_sidecar_scan",
]

MAX_SIDE = 20_000  # pixels per side
MAX_PIXELS = 100_000_000  # pixels per image (a 2,000 x 20,000 train scan is 40 M)
SIDECAR_FORMAT = "gate-xray/1"
DICOM_SUFFIXES = (".dcm", ".dicom", ".dcs", ".dicos")
_EPOCH_MIN = 946_684_800.0  # 2000-01-01
_EPOCH_MAX = 4_102_444_800.0  # 2100-01-01
_DICOM_DT = re.compile(r"\d{4}(\d{2}(\d{2}(\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?)?)?)?([+-]\d{4})?")
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_TIFF_MAGICS = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_PNG_COLOUR = {0: "greyscale", 2: "RGB colour", 3: "palette colour", 4: "greyscale with alpha", 6: "RGBA colour"}

# SOP classes of X-ray projection images (DX, DICOS DX, CR)
_XRAY_SOP_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.1": "Computed Radiography Image Storage",
    "1.2.840.10008.5.1.4.1.1.1.1": "Digital X-Ray Image Storage - For Presentation",
    "1.2.840.10008.5.1.4.1.1.1.1.1": "Digital X-Ray Image Storage - For Processing",
    "1.2.840.10008.5.1.4.1.1.501.2.1": "DICOS Digital X-Ray Image Storage - For Presentation",
    "1.2.840.10008.5.1.4.1.1.501.2.2": "DICOS Digital X-Ray Image Storage - For Processing",
}
_XRAY_MODALITIES = {"DX", "CR"}
_KNOWN_KEYS = {
    "format", "scanner_id", "scanned_at", "lane_id", "plate", "containers", "declared_goods", "declared_quantity",
    "energy_kv", "images", "normalised", "bit_depth", "extra",
}  # fmt: skip


def _fail(source: str | Path, problem: str) -> ScanError:
    return ScanError(f"{source}: {problem}")


# ---------------------------------------------------------------------------------------------
# Times
# ---------------------------------------------------------------------------------------------


def _tz(offset_h: float) -> _dt.timezone:
    return _dt.timezone(_dt.timedelta(hours=offset_h))


def parse_scan_time(value: Any, source: str | Path, *, field: str = "scanned_at",
                    default_utc_offset_h: float | None = None) -> float:
    """Epoch seconds from an ISO-8601 string (with a UTC offset) or an epoch number (seconds).

    A time without an offset is refused unless ``default_utc_offset_h`` says which zone the
    scanner's clock is in (e.g. 7 for Vietnam).
    """
    if isinstance(value, bool) or value is None:
        raise _fail(source, f"{field} must be an ISO-8601 time or epoch seconds, got {value!r}")
    if isinstance(value, int | float):
        t = float(value)
        if not math.isfinite(t):
            raise _fail(source, f"{field} is not a finite number: {value!r}")
        if _EPOCH_MIN * 1000 <= t <= _EPOCH_MAX * 1000:
            raise _fail(source, f"{field} {value!r} looks like epoch milliseconds; write seconds")
        if not _EPOCH_MIN <= t <= _EPOCH_MAX:
            raise _fail(source, f"{field} {value!r} is not epoch seconds between 2000 and 2100")
        return t
    if not isinstance(value, str):
        raise _fail(source, f"{field} must be an ISO-8601 string or a number, got {type(value).__name__}")
    text = value.strip()
    try:
        when = _dt.datetime.fromisoformat(text)
    except ValueError:
        raise _fail(source, f"{field} {value!r} is not an ISO-8601 time (e.g. 2026-11-20T08:15:30+07:00)") from None
    if when.tzinfo is None:
        if default_utc_offset_h is None:
            raise _fail(source, f"{field} {value!r} has no UTC offset; write it as e.g. {text}+07:00 "
                                "(or configure the scanner's UTC offset)")
        when = when.replace(tzinfo=_tz(default_utc_offset_h))
    t = when.timestamp()
    if not _EPOCH_MIN <= t <= _EPOCH_MAX:
        raise _fail(source, f"{field} {value!r} is outside 2000..2100")
    return t


# ---------------------------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------------------------


def _read_bytes(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise _fail(path, "file not found") from None
    except IsADirectoryError:
        raise _fail(path, "is a directory, not a file") from None
    except OSError as exc:
        raise _fail(path, f"cannot be read: {exc}") from None
    if not data:
        raise _fail(path, "the file is empty (0 bytes)")
    return data


def _check_size(source: str | Path, width: int, height: int, max_side: int, max_pixels: int) -> None:
    if width <= 0 or height <= 0:
        raise _fail(source, f"image header gives an empty size {width} x {height}")
    if width > max_side or height > max_side or width * height > max_pixels:
        raise _fail(source, f"image is {width} x {height} pixels, over the limit ({max_side} per side, "
                            f"{max_pixels:,} in all); refused before decoding")


def _kind(data: bytes) -> str:
    if data.startswith(_PNG_MAGIC):
        return "png"
    if data[:4] in _TIFF_MAGICS:
        return "tiff"
    if len(data) >= 132 and data[128:132] == b"DICM":
        return "dicom"
    return "unknown"


def _decode_png(data: bytes, source: str | Path, bit_depth: int | None, normalised: bool, max_side: int,
                max_pixels: int) -> np.ndarray:
    if len(data) < 33 or data[12:16] != b"IHDR":
        raise _fail(source, f"truncated PNG: no IHDR header ({len(data)} bytes)")
    width, height, depth, colour = struct.unpack(">IIBB", data[16:26])
    _check_size(source, width, height, max_side, max_pixels)
    if colour != 0:
        raise _fail(source, f"{_PNG_COLOUR.get(colour, f'colour type {colour}')} PNG; an X-ray image must be "
                            "single-channel greyscale")
    if normalised:
        raise _fail(source, "the sidecar says normalised: true, but a PNG cannot hold float transmission; "
                            "export a float32 TIFF")
    if depth not in (8, 16):
        raise _fail(source, f"{depth}-bit PNG; expected 16-bit (or 8-bit when declared)")
    if bit_depth is not None and depth != bit_depth:
        raise _fail(source, f"{depth}-bit PNG where {bit_depth}-bit is declared")
    if b"IEND" not in data[-32:]:
        raise _fail(source, f"truncated PNG: no IEND chunk at the end of the file ({len(data)} bytes)")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None or image.ndim != 2 or image.shape != (height, width):
        raise _fail(source, "the PNG pixel data could not be decoded (corrupt or truncated)")
    return image


def _decode_tiff(data: bytes, source: str | Path, bit_depth: int | None, normalised: bool, max_side: int,
                 max_pixels: int) -> np.ndarray:
    import tifffile

    try:
        tif = tifffile.TiffFile(io.BytesIO(data))
    except Exception as exc:  # tifffile raises several types for broken headers
        raise _fail(source, f"not a readable TIFF ({type(exc).__name__}: {exc}); truncated or corrupt") from None
    with tif:
        pages = tif.pages
        if len(pages) != 1:
            raise _fail(source, f"TIFF has {len(pages)} pages; export one image per file (name the low-energy "
                                "file in images.low)")
        page = pages.first
        shape = tuple(int(s) for s in page.shape)
        if len(shape) == 3 and shape[-1] == 1:
            shape = shape[:2]
        if page.samplesperpixel != 1 or len(shape) != 2:
            raise _fail(source, f"TIFF has {page.samplesperpixel} samples per pixel (shape {page.shape}); an X-ray "
                                "image must be single-channel greyscale")
        height, width = shape
        _check_size(source, width, height, max_side, max_pixels)
        dtype = np.dtype(page.dtype) if page.dtype is not None else None
        if dtype is None:
            raise _fail(source, f"unsupported TIFF sample format (bits per sample {page.bitspersample})")
        if dtype.kind == "f":
            if not normalised:
                raise _fail(source, f"{dtype} TIFF (float) but the sidecar does not say normalised: true")
        else:
            if normalised:
                raise _fail(source, f"the sidecar says normalised: true but the TIFF holds {dtype} integers, "
                                    "not float transmission")
            if dtype not in (np.dtype(np.uint8), np.dtype(np.uint16)):
                raise _fail(source, f"{dtype} TIFF; expected unsigned 16-bit (or 8-bit when declared)")
            bits = dtype.itemsize * 8
            if bit_depth is not None and bits != bit_depth:
                raise _fail(source, f"{bits}-bit TIFF where {bit_depth}-bit is declared")
        offsets = list(page.dataoffsets or ())
        counts = list(page.databytecounts or ())
        if not offsets or any(o + c > len(data) for o, c in zip(offsets, counts, strict=False)):
            raise _fail(source, f"truncated TIFF: the pixel data runs past the end of the file ({len(data)} bytes)")
        min_is_white = int(getattr(page, "photometric", 1)) == 0
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        if image is None or image.shape != (height, width) or image.dtype != dtype:
            try:
                image = page.asarray()
            except Exception as exc:
                raise _fail(source, f"the TIFF pixel data could not be decoded ({type(exc).__name__}: {exc})") from None
        image = np.asarray(image).reshape(height, width)
    if min_is_white and dtype.kind == "u":
        image = (np.iinfo(dtype).max - image).astype(dtype)
    if dtype.kind == "f":
        image = image.astype(np.float32)
        if not np.isfinite(image).all():
            raise _fail(source, "normalised image holds NaN or infinite values")
        lo, hi = float(image.min()), float(image.max())
        if lo < -0.1 or hi > 2.0:
            raise _fail(source, f"normalised transmission should lie within 0..1, found {lo:.3g}..{hi:.3g}")
    return image


def read_image(path: str | Path, *, bit_depth: int | None = 16, normalised: bool = False, max_side: int = MAX_SIDE,
               max_pixels: int = MAX_PIXELS, data: bytes | None = None) -> tuple[np.ndarray, bytes]:
    """One greyscale image (PNG, TIFF or a one-frame DICOM) and its raw bytes.

    ``bit_depth``: 16 or 8 as declared (None: either); 8-bit images come back widened to uint16
    with their values unchanged. ``normalised``: a float TIFF of transmission 0..1 (float32).
    """
    path = Path(path)
    data = _read_bytes(path) if data is None else data
    kind = _kind(data)
    if kind == "png":
        image = _decode_png(data, path, bit_depth, normalised, max_side, max_pixels)
    elif kind == "tiff":
        image = _decode_tiff(data, path, bit_depth, normalised, max_side, max_pixels)
    elif kind == "dicom":
        if normalised:
            raise _fail(path, "the sidecar says normalised: true, but DICOM images hold integer counts")
        frames, _ds = _dicom_frames(data, path, max_side, max_pixels, bit_depth=bit_depth)
        if len(frames) != 1:
            raise _fail(path, f"a DICOM named as one image must have one frame, it has {len(frames)}")
        image = frames[0]
    else:
        head = data[:8].hex(" ")
        raise _fail(path, f"not a PNG, TIFF or DICOM file (first bytes {head})")
    if image.dtype == np.uint8:
        image = image.astype(np.uint16)
    return image, data


# ---------------------------------------------------------------------------------------------
# DICOM / DICOS
# ---------------------------------------------------------------------------------------------


def _dicom_dataset(data: bytes, source: str | Path) -> Any:
    import pydicom
    from pydicom.errors import InvalidDicomError

    if len(data) < 132 or data[128:132] != b"DICM":
        raise _fail(source, "not a DICOM file (no 'DICM' marker after the 128-byte preamble)")
    try:
        ds = pydicom.dcmread(io.BytesIO(data))
    except (InvalidDicomError, EOFError, ValueError, KeyError, struct.error, OSError) as exc:
        raise _fail(source, f"the DICOM file could not be parsed ({type(exc).__name__}: {exc}); truncated or "
                            "corrupt") from None
    if len(ds) == 0:
        raise _fail(source, f"the DICOM file could not be parsed: no data set after the header ({len(data)} "
                            "bytes); truncated or empty")
    return ds


def _sop_class(ds: Any) -> str:
    meta = getattr(ds, "file_meta", None)
    uid = str(getattr(ds, "SOPClassUID", "") or (getattr(meta, "MediaStorageSOPClassUID", "") if meta else ""))
    return uid


def _uid_name(uid: str) -> str:
    from pydicom.uid import UID

    try:
        name = UID(uid).name
    except Exception:
        name = uid
    return name if name and name != uid else uid


def _dicom_frames(data: bytes, source: str | Path, max_side: int, max_pixels: int,
                  bit_depth: int | None = None) -> tuple[list[np.ndarray], Any]:
    ds = _dicom_dataset(data, source)
    sop = _sop_class(ds)
    if not sop:
        raise _fail(source, "the DICOM has no SOP Class UID; cannot tell whether it is an X-ray image")
    if sop not in _XRAY_SOP_CLASSES:
        raise _fail(source, f"the DICOM is a {_uid_name(sop)} ({sop}), not an X-ray image; expected DX, CR or "
                            "DICOS Digital X-Ray")
    modality = str(getattr(ds, "Modality", "") or "")
    if modality and modality not in _XRAY_MODALITIES:
        raise _fail(source, f"the DICOM modality is {modality!r}, not an X-ray projection (DX or CR)")
    if "PixelData" not in ds:
        what = "float pixel data (not supported)" if "FloatPixelData" in ds else "no pixel data (7FE0,0010)"
        raise _fail(source, f"the DICOM has {what}")
    spp = int(getattr(ds, "SamplesPerPixel", 1) or 1)
    photometric = str(getattr(ds, "PhotometricInterpretation", "") or "")
    if spp != 1 or photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise _fail(source, f"{photometric or 'unknown'} DICOM with {spp} samples per pixel; an X-ray image must "
                            "be MONOCHROME1 or MONOCHROME2")
    bits = int(getattr(ds, "BitsAllocated", 0) or 0)
    stored = int(getattr(ds, "BitsStored", bits) or bits)
    if bits not in (8, 16):
        raise _fail(source, f"{bits} bits allocated; expected 8 or 16")
    if bit_depth is not None and bits != bit_depth:
        raise _fail(source, f"{bits}-bit DICOM where {bit_depth}-bit is declared")
    if int(getattr(ds, "PixelRepresentation", 0) or 0) != 0:
        raise _fail(source, "signed pixel data; transmission counts must be unsigned")
    rows = int(getattr(ds, "Rows", 0) or 0)
    cols = int(getattr(ds, "Columns", 0) or 0)
    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    _check_size(source, cols, rows, max_side, max_pixels)
    if frames not in (1, 2):
        raise _fail(source, f"{frames} frames; expected 1 (single energy) or 2 (high and low energy)")
    ts = ds.file_meta.TransferSyntaxUID if "TransferSyntaxUID" in ds.file_meta else None
    if ts is not None and not ts.is_compressed:
        expected = rows * cols * frames * bits // 8
        if len(ds.PixelData) < expected:
            raise _fail(source, f"truncated pixel data: {len(ds.PixelData)} bytes, {rows} x {cols} x {frames} "
                                f"frames of {bits} bits need {expected}")
    try:
        arr = np.asarray(ds.pixel_array)
    except Exception as exc:
        name = _uid_name(str(ts)) if ts is not None else "unknown transfer syntax"
        raise _fail(source, f"the pixel data ({name}) could not be decoded ({type(exc).__name__}: {exc})") from None
    arr = arr.reshape(frames, rows, cols)
    out: list[np.ndarray] = []
    for f in arr:
        frame = f.astype(np.uint16 if bits == 16 else np.uint8)
        if photometric == "MONOCHROME1":  # stored inverted (high = dense): back to counts, bright = less material
            maxval = (1 << stored) - 1
            frame = (maxval - np.minimum(frame, maxval)).astype(frame.dtype)
        out.append(frame)
    return out, ds


def _dicom_time(ds: Any, source: str | Path, default_utc_offset_h: float | None) -> float:
    from pydicom.valuerep import DT

    tz_text = str(getattr(ds, "TimezoneOffsetFromUTC", "") or "")
    offset_h = default_utc_offset_h
    if tz_text:
        try:
            sign = -1 if tz_text.startswith("-") else 1
            digits = tz_text.lstrip("+-")
            offset_h = sign * (int(digits[:2]) + int(digits[2:4]) / 60.0)
        except ValueError:
            raise _fail(source, f"TimezoneOffsetFromUTC {tz_text!r} is not +HHMM/-HHMM") from None
    candidates: list[tuple[str, str]] = []
    if getattr(ds, "AcquisitionDateTime", None):
        candidates.append(("AcquisitionDateTime", str(ds.AcquisitionDateTime)))
    for date_kw, time_kw in (("AcquisitionDate", "AcquisitionTime"), ("ContentDate", "ContentTime"),
                             ("StudyDate", "StudyTime")):
        if getattr(ds, date_kw, None) and getattr(ds, time_kw, None):
            candidates.append((f"{date_kw}+{time_kw}", f"{ds.get(date_kw)}{ds.get(time_kw)}"))
    if not candidates:
        raise _fail(source, "no acquisition time: none of AcquisitionDateTime, AcquisitionDate/Time, "
                            "ContentDate/Time or StudyDate/Time is set")
    tag, text = candidates[0]
    text = text.strip()
    if not _DICOM_DT.fullmatch(text):
        raise _fail(source, f"{tag} {text!r} is not a DICOM date-time (YYYYMMDDHHMMSS.FFFFFF&ZZXX)")
    try:
        when = DT(text)
    except (ValueError, TypeError):
        raise _fail(source, f"{tag} {text!r} is not a DICOM date-time") from None
    if when.tzinfo is None:
        if offset_h is None:
            raise _fail(source, f"{tag} {text!r} has no UTC offset and TimezoneOffsetFromUTC is not set "
                                "(configure the scanner's UTC offset)")
        when = when.replace(tzinfo=_tz(offset_h))
    t = when.timestamp()
    if not _EPOCH_MIN <= t <= _EPOCH_MAX:
        raise _fail(source, f"{tag} {text!r} is outside 2000..2100")
    return t


def _dicom_scanner_id(ds: Any) -> str:
    for kw in ("DeviceSerialNumber", "StationName", "DeviceUID"):
        value = str(getattr(ds, kw, "") or "").strip()
        if value:
            return value
    return ""


def read_dicom_scan(path: str | Path, low_path: str | Path | None = None, *, scanner_id: str | None = None,
                    default_utc_offset_h: float | None = None, max_side: int = MAX_SIDE,
                    max_pixels: int = MAX_PIXELS) -> XrayScan:
    """A DX / DICOS DX scan: one file (one frame, or two frames = high, low) or two files (high, low)."""
    path = Path(path)
    data = _read_bytes(path)
    frames, ds = _dicom_frames(data, path, max_side, max_pixels)
    raw = [data]
    kvs: list[float] = []
    if getattr(ds, "KVP", None):
        kvs.append(float(ds.KVP))
    high = frames[0]
    low = frames[1] if len(frames) == 2 else None
    if low_path is not None:
        if low is not None:
            raise _fail(path, "already holds two frames (high and low); a separate low-energy file is ambiguous")
        low_path = Path(low_path)
        low_data = _read_bytes(low_path)
        low_frames, low_ds = _dicom_frames(low_data, low_path, max_side, max_pixels)
        if len(low_frames) != 1:
            raise _fail(low_path, f"the low-energy file must have one frame, it has {len(low_frames)}")
        low = low_frames[0]
        raw.append(low_data)
        if getattr(low_ds, "KVP", None):
            kvs.append(float(low_ds.KVP))
        other = _dicom_scanner_id(low_ds)
        if other and _dicom_scanner_id(ds) and other != _dicom_scanner_id(ds):
            raise _fail(low_path, f"comes from scanner {other!r} but {path.name} from {_dicom_scanner_id(ds)!r}")
    if low is not None and low.shape != high.shape:
        raise _fail(path, f"dual-energy images differ in size: high {high.shape[1]} x {high.shape[0]}, "
                          f"low {low.shape[1]} x {low.shape[0]}")
    sid = scanner_id or _dicom_scanner_id(ds)
    if not sid:
        raise _fail(path, "no scanner id: DeviceSerialNumber (0018,1000), StationName (0008,1010) and DeviceUID "
                          "are all empty")
    bits = int(ds.BitsAllocated)
    meta = ScanMeta(
        scanner_id=sid, scanned_at=_dicom_time(ds, path, default_utc_offset_h),
        energies_kv=tuple(kvs),
        extra={"sop_class": _uid_name(_sop_class(ds)), "modality": str(getattr(ds, "Modality", "") or ""),
               "photometric": str(ds.PhotometricInterpretation), "bit_depth": bits, "format": "dicom",
               "files": [path.name] + ([Path(low_path).name] if low_path is not None else [])},
    )  # fmt: skip
    high16 = high.astype(np.uint16)
    low16 = None if low is None else low.astype(np.uint16)
    return XrayScan(hashlib.sha256(b"".join(raw)).hexdigest(), high16, meta, low16, str(path))


# ---------------------------------------------------------------------------------------------
# Sidecar
# ---------------------------------------------------------------------------------------------


def _load_sidecar(path: Path) -> dict[str, Any]:
    data = _read_bytes(path)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _fail(path, f"the sidecar is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _fail(path, f"the sidecar is not valid JSON (line {exc.lineno} column {exc.colno}: {exc.msg})") from None
    if not isinstance(doc, dict):
        raise _fail(path, f"the sidecar must be a JSON object, got {type(doc).__name__}")
    return doc


def sidecar_images(doc: dict[str, Any], path: Path) -> dict[str, str]:
    """The ``images`` of a sidecar, checked: ``{"high": name}`` or ``{"high": name, "low": name}``."""
    images = doc.get("images")
    if not isinstance(images, dict) or "high" not in images:
        raise _fail(path, 'the sidecar must name its images: "images": {"high": "<file>", "low": "<file>"}')
    unknown = set(images) - {"high", "low"}
    if unknown:
        raise _fail(path, f"images has unknown keys {sorted(unknown)}; only 'high' and 'low'")
    out: dict[str, str] = {}
    for energy, name in images.items():
        if not isinstance(name, str) or not name.strip():
            raise _fail(path, f"images.{energy} must be a file name, got {name!r}")
        if name in (".", "..") or "/" in name or "\\" in name or name.startswith("."):
            raise _fail(path, f"images.{energy} {name!r} must be a plain file name next to the sidecar")
        out[energy] = name
    if out.get("low") == out["high"]:
        raise _fail(path, f"images.high and images.low name the same file {out['high']!r}")
    return out


def _opt_str(doc: dict[str, Any], key: str, path: Path, limit: int = 200) -> str | None:
    value = doc.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise _fail(path, f"{key} must be a string of at most {limit} characters, got {value!r:.60}")
    return value.strip() or None


def _energies(value: Any, path: Path) -> tuple[float, ...]:
    if value is None:
        return ()
    if isinstance(value, dict):
        unknown = set(value) - {"high", "low"}
        if unknown or "high" not in value:
            raise _fail(path, f'energy_kv must be {{"high": kV, "low": kV}}, got {value!r}')
        items = [value["high"]] + ([value["low"]] if "low" in value else [])
    elif isinstance(value, list):
        items = value
    else:
        items = [value]
    out: list[float] = []
    for v in items:
        if isinstance(v, bool) or not isinstance(v, int | float) or not 0 < float(v) < 100_000:
            raise _fail(path, f"energy_kv values must be positive numbers (kV), got {v!r}")
        out.append(float(v))
    if not 1 <= len(out) <= 2:
        raise _fail(path, f"energy_kv must give one or two energies, got {len(out)}")
    return tuple(out)


def read_sidecar_scan(path: str | Path, *, default_utc_offset_h: float | None = None, max_side: int = MAX_SIDE,
                      max_pixels: int = MAX_PIXELS) -> XrayScan:
    """A scan described by a JSON sidecar (format: docs/XRAY.md) and its PNG/TIFF/DICOM images."""
    path = Path(path)
    doc = _load_sidecar(path)
    fmt = doc.get("format")
    if fmt is not None and (not isinstance(fmt, str) or not fmt.startswith("gate-xray/1")):
        raise _fail(path, f"unsupported sidecar format {fmt!r}; this reader knows {SIDECAR_FORMAT!r}")
    scanner_id = doc.get("scanner_id")
    if not isinstance(scanner_id, str) or not scanner_id.strip() or len(scanner_id) > 128:
        raise _fail(path, f"scanner_id must be a non-empty string (at most 128 characters), got {scanner_id!r:.60}")
    if "scanned_at" not in doc:
        raise _fail(path, "scanned_at is missing (ISO-8601 with a UTC offset, or epoch seconds)")
    scanned_at = parse_scan_time(doc["scanned_at"], path, default_utc_offset_h=default_utc_offset_h)
    containers = doc.get("containers", [])
    if isinstance(containers, str):
        containers = [containers]
    if not isinstance(containers, list) or not all(isinstance(c, str) and 0 < len(c) <= 32 for c in containers):
        raise _fail(path, f"containers must be a list of container numbers, got {containers!r:.80}")
    quantity = doc.get("declared_quantity")
    if quantity is not None and (isinstance(quantity, bool) or not isinstance(quantity, int | float)
                                 or not math.isfinite(float(quantity)) or quantity < 0):
        raise _fail(path, f"declared_quantity must be a number >= 0, got {quantity!r}")
    normalised = doc.get("normalised", False)
    if not isinstance(normalised, bool):
        raise _fail(path, f"normalised must be true or false, got {normalised!r}")
    bit_depth = doc.get("bit_depth", None if normalised else 16)
    if bit_depth is not None and (isinstance(bit_depth, bool) or bit_depth not in (8, 16)):
        raise _fail(path, f"bit_depth must be 8 or 16, got {bit_depth!r}")
    extra = doc.get("extra", {})
    if not isinstance(extra, dict):
        raise _fail(path, f"extra must be a JSON object, got {type(extra).__name__}")
    energies = _energies(doc.get("energy_kv"), path)
    names = sidecar_images(doc, path)
    folder = path.parent
    for energy, name in names.items():
        if not (folder / name).is_file():
            raise _fail(path, f"the sidecar names {energy} image {name!r}, which does not exist in {folder}")
    high, high_raw = read_image(folder / names["high"], bit_depth=bit_depth, normalised=normalised,
                                max_side=max_side, max_pixels=max_pixels)
    low = None
    raw = [high_raw]
    if "low" in names:
        low, low_raw = read_image(folder / names["low"], bit_depth=bit_depth, normalised=normalised,
                                  max_side=max_side, max_pixels=max_pixels)
        raw.append(low_raw)
        if low.shape != high.shape:
            raise _fail(path, f"dual-energy images differ in size: high {names['high']} is {high.shape[1]} x "
                              f"{high.shape[0]}, low {names['low']} is {low.shape[1]} x {low.shape[0]}")
        if low.dtype != high.dtype:
            raise _fail(path, f"dual-energy images differ in type: high {high.dtype}, low {low.dtype}")
    extra = {**{k: v for k, v in doc.items() if k not in _KNOWN_KEYS}, **extra,
             "bit_depth": bit_depth, "files": list(names.values())}  # fmt: skip
    meta = ScanMeta(
        scanner_id=scanner_id.strip(), scanned_at=scanned_at, lane_id=_opt_str(doc, "lane_id", path),
        plate=_opt_str(doc, "plate", path), containers=tuple(c.strip() for c in containers),
        declared_goods=_opt_str(doc, "declared_goods", path),
        declared_quantity=None if quantity is None else float(quantity), normalised=normalised,
        energies_kv=energies, extra=extra,
    )  # fmt: skip
    return XrayScan(hashlib.sha256(b"".join(raw)).hexdigest(), high, meta, low, str(path))


def read_scan(path: str | Path, *, default_utc_offset_h: float | None = None, max_side: int = MAX_SIDE,
              max_pixels: int = MAX_PIXELS) -> XrayScan:
    """A sidecar (``*.json``) or a DICOM file, by content."""
    path = Path(path)
    if path.suffix.lower() == ".json":
        return read_sidecar_scan(path, default_utc_offset_h=default_utc_offset_h, max_side=max_side,
                                 max_pixels=max_pixels)
    return read_dicom_scan(path, default_utc_offset_h=default_utc_offset_h, max_side=max_side,
                           max_pixels=max_pixels)


# ---------------------------------------------------------------------------------------------
# Calibration frames (the simulator's calibration/ folder)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CalibrationFrames:
    scanner_id: str
    dark: dict[str, np.ndarray]  # "high"/"low" -> (rows, columns) uint16
    air: dict[str, np.ndarray]
    meta: dict[str, Any]


def read_calibration(folder: str | Path) -> CalibrationFrames:
    """Dark and air (open-beam) frames listed by ``calibration.json`` in ``folder``."""
    folder = Path(folder)
    doc = _load_sidecar(folder / "calibration.json")
    files = doc.get("files")
    if not isinstance(files, dict) or not isinstance(files.get("dark"), dict) or not isinstance(files.get("air"), dict):
        raise _fail(folder / "calibration.json", 'files must be {"dark": {"high": ..}, "air": {"high": ..}}')
    out: dict[str, dict[str, np.ndarray]] = {"dark": {}, "air": {}}
    for kind in ("dark", "air"):
        for energy, name in files[kind].items():
            if not isinstance(name, str) or "/" in name or "\\" in name:
                raise _fail(folder / "calibration.json", f"files.{kind}.{energy} must be a plain file name")
            out[kind][energy], _ = read_image(folder / name)
    return CalibrationFrames(str(doc.get("scanner_id", "")), out["dark"], out["air"], doc)


# ---------------------------------------------------------------------------------------------
# Drop folder
# ---------------------------------------------------------------------------------------------


def _unique(folder: Path, name: str) -> Path:
    target = folder / name
    n = 1
    while target.exists():
        stem, dot, ext = name.partition(".")
        target = folder / f"{stem}-{n}{dot}{ext}"
        n += 1
    return target


class XrayDropFolder:
    """Scans dropped into a folder by a scanner: a JSON sidecar plus its images, or a DICOM file.

    - Drops are taken in name order of their sidecar (``*.json``) or DICOM file (``*.dcm``,
      ``*.dicom``, ``*.dcs``, ``*.dicos``; DICOM files that a sidecar names belong to that sidecar).
      Hidden files, sub-folders and ``*.reason.txt`` are ignored; images wait for their sidecar.
    - A drop is read once it is complete: every file unchanged for ``settle_s`` (by mtime, or as seen
      by us when the writer's clock is off), the sidecar parses, the images it names exist and PNGs
      end with their IEND chunk. In ``follow`` mode an incomplete drop is waited for up to
      ``incomplete_timeout_s`` (and holds back the drops named after it, to keep name order), then
      rejected; without ``follow`` (offline replay) it is rejected at once.
    - Good drops (sidecar and images) are moved to ``<path>/done/``; bad ones to ``<path>/rejected/``
      with ``<sidecar>.reason.txt`` saying why. Nothing is ever deleted.
    - Iterate the object (or call :meth:`read`) for :class:`XrayScan`; without ``follow`` the iteration
      ends when the folder is drained, with it it polls every ``poll_interval_s`` until :meth:`close`.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        follow: bool = False,
        poll_interval_s: float = 0.5,
        settle_s: float = 1.0,
        incomplete_timeout_s: float = 30.0,
        done_dir: str = "done",
        rejected_dir: str = "rejected",
        default_utc_offset_h: float | None = None,
        max_side: int = MAX_SIDE,
        max_pixels: int = MAX_PIXELS,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            raise ScanError(f"{self.path}: the X-ray drop folder does not exist or is not a directory")
        self.follow = follow
        self.poll_interval_s = max(0.01, float(poll_interval_s))
        self.settle_s = max(0.0, float(settle_s))
        self.incomplete_timeout_s = max(0.0, float(incomplete_timeout_s))
        self.done_path = self.path / done_dir
        self.rejected_path = self.path / rejected_dir
        self.default_utc_offset_h = default_utc_offset_h
        self.max_side = max_side
        self.max_pixels = max_pixels
        self._clock = clock
        self._sleep = sleep
        self._closed = False
        self._observed: dict[str, tuple[tuple[int, int], float]] = {}
        self._first_seen: dict[str, float] = {}
        self._delivered = 0
        self._rejected = 0
        self._waiting = 0
        self._last_error: str | None = None

    def __iter__(self) -> Iterator[XrayScan]:
        while True:
            scan = self.read()
            if scan is None:
                return
            yield scan

    def close(self) -> None:
        self._closed = True

    def status(self) -> dict[str, Any]:
        return {"path": str(self.path), "follow": self.follow, "delivered": self._delivered,
                "rejected": self._rejected, "waiting": self._waiting, "last_error": self._last_error}

    # -- one pass ------------------------------------------------------------------------
    def read(self) -> XrayScan | None:
        """The next complete scan; None once drained (without ``follow``) or after :meth:`close`."""
        while not self._closed:
            scan, waiting = self._pass()
            if scan is not None:
                return scan
            self._waiting = waiting
            if not waiting and not self.follow:
                return None
            self._sleep(self.poll_interval_s)
        return None

    def _settled(self, path: Path, now: float) -> bool | None:
        """True when unchanged for settle_s, False while changing, None when gone."""
        try:
            st = path.stat()
        except OSError:
            return None
        key = (st.st_size, st.st_mtime_ns)
        name = path.name
        self._first_seen.setdefault(name, now)
        previous = self._observed.get(name)
        if previous is None or previous[0] != key:
            self._observed[name] = (key, now)
            if previous is not None:
                return False
        unchanged_for = now - self._observed[name][1]
        return now - st.st_mtime >= self.settle_s or unchanged_for >= self.settle_s

    def _pass(self) -> tuple[XrayScan | None, int]:
        now = self._clock()
        try:
            entries = sorted(e.name for e in os.scandir(self.path) if e.is_file() and not e.name.startswith("."))
        except OSError as exc:
            self._last_error = f"cannot list {self.path}: {exc}"
            logger.warning("X-ray drop folder: %s", self._last_error)
            return None, 1 if self.follow else 0
        sidecars = [n for n in entries if n.lower().endswith(".json")]
        named: set[str] = set()
        docs: dict[str, dict[str, Any] | str] = {}
        for name in sidecars:
            try:
                doc = _load_sidecar(self.path / name)
                docs[name] = doc
                named.update(sidecar_images(doc, self.path / name).values())
            except ScanError as exc:
                docs[name] = str(exc)
        dicoms = [n for n in entries if n.lower().endswith(DICOM_SUFFIXES) and n not in named]
        for name in sorted([*sidecars, *dicoms]):
            give_up = not self.follow or now - self._first_seen.get(name, now) >= self.incomplete_timeout_s
            if name in docs:
                verdict = self._sidecar_ready(name, docs[name], now, give_up)
            else:
                settled = self._settled(self.path / name, now)
                verdict = "gone" if settled is None else "ready" if settled else "wait"
            if verdict == "gone":
                continue
            if verdict == "wait":
                return None, 1  # hold back the drops named after this one
            if verdict != "ready":
                self._reject(name, verdict, docs.get(name))
                continue
            scan = self._load(name, docs.get(name))
            if scan is not None:
                return scan, 0
        return None, 0

    def _sidecar_ready(self, name: str, doc: dict[str, Any] | str, now: float, give_up: bool) -> str:
        settled = self._settled(self.path / name, now)
        if settled is None:
            return "gone"
        if not settled:
            return "wait"
        if isinstance(doc, str):  # unparseable: maybe still being written
            return doc.split(": ", 1)[-1] if give_up else "wait"
        try:
            names = sidecar_images(doc, self.path / name)
        except ScanError as exc:
            return str(exc).split(": ", 1)[-1]
        for energy, image in names.items():
            p = self.path / image
            ok = self._settled(p, now)
            if ok is None:
                if give_up:
                    return f"the sidecar names {energy} image {image!r}, which does not exist"
                return "wait"
            if not ok:
                return "wait"
            problem = _png_trailer_problem(p)
            if problem is not None:
                return problem if give_up else "wait"
        return "ready"

    def _load(self, name: str, doc: dict[str, Any] | str | None) -> XrayScan | None:
        path = self.path / name
        try:
            if doc is None:
                scan = read_dicom_scan(path, default_utc_offset_h=self.default_utc_offset_h,
                                       max_side=self.max_side, max_pixels=self.max_pixels)
            else:
                scan = read_sidecar_scan(path, default_utc_offset_h=self.default_utc_offset_h,
                                         max_side=self.max_side, max_pixels=self.max_pixels)
        except ScanError as exc:
            self._reject(name, str(exc), doc)
            return None
        self._move(name, doc, self.done_path)
        self._delivered += 1
        return scan

    def _files_of(self, name: str, doc: dict[str, Any] | str | None) -> list[str]:
        files = [name]
        if isinstance(doc, dict):
            with contextlib.suppress(ScanError):
                files += [n for n in sidecar_images(doc, self.path / name).values() if (self.path / n).is_file()]
        return files

    def _move(self, name: str, doc: dict[str, Any] | str | None, folder: Path) -> list[str]:
        moved: list[str] = []
        for f in self._files_of(name, doc):
            self._observed.pop(f, None)
            self._first_seen.pop(f, None)
            try:
                folder.mkdir(exist_ok=True)
                target = _unique(folder, f)
                (self.path / f).rename(target)
                moved.append(target.name)
            except OSError as exc:
                self._last_error = f"could not move {f} to {folder}: {exc}"
                logger.warning("X-ray drop folder: %s", self._last_error)
        return moved

    def _reject(self, name: str, reason: str, doc: dict[str, Any] | str | None) -> None:
        self._rejected += 1
        logger.warning("X-ray drop folder %s: rejected %s: %s", self.path, name, reason)
        moved = self._move(name, doc, self.rejected_path)
        note = (f"file: {name}\nmoved: {', '.join(moved) or '-'}\n"
                f"rejected_at: {_dt.datetime.now(_dt.UTC).isoformat(timespec='seconds')}\nreason: {reason}\n")
        try:
            self.rejected_path.mkdir(exist_ok=True)
            target = self.rejected_path / f"{moved[0] if moved else name}.reason.txt"
            target.write_text(note, encoding="utf-8")
        except OSError as exc:
            logger.warning("X-ray drop folder: could not write the reason for %s: %s", name, exc)


def _png_trailer_problem(path: Path) -> str | None:
    try:
        with path.open("rb") as fh:
            head = fh.read(8)
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 32))
            tail = fh.read(32)
    except OSError:
        return None
    if head.startswith(_PNG_MAGIC) and b"IEND" not in tail:
        return f"truncated PNG {path.name}: no IEND chunk at the end of the file ({size} bytes)"
    return None
