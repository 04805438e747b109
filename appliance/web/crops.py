"""Where a read's box lies inside its evidence crop, so the review page can draw it (SVG).

The lane stores, per read, a JPEG crop of the read's box plus a margin (``crop_jpeg`` in
appliance/lanes/analysis.py: 25 % of the box's size plus 4 px each side, clipped to the frame).
The box's offset in the crop follows from the box alone; the crop's size is read from the JPEG
header (so a crop clipped at the frame's right or bottom edge still gets its box). When the
stored crop does not fit the box (another margin, a re-encoded image), no box is drawn.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

CROP_MARGIN = 0.25  # keep in step with appliance.lanes.analysis.crop_jpeg
CROP_PAD_PX = 4
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


@dataclass(frozen=True)
class Box:
    x: int
    y: int
    w: int
    h: int


@lru_cache(maxsize=4096)
def jpeg_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from a JPEG's frame header, or None when the file is not a readable JPEG.

    Evidence files are named by their content hash and never change, so the answer is cached.
    """
    try:
        with path.open("rb") as fh:
            data = fh.read(256 * 1024)
    except OSError:
        return None
    if data[:2] != b"\xff\xd8":
        return None
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # no length
            i += 2
            continue
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if marker in _SOF:
            if i + 9 > len(data):
                return None
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return (width, height) if width and height else None
        if marker == 0xDA:  # scan data before any frame header: not a JPEG we understand
            return None
        i += 2 + length
    return None


def box_in_crop(bbox_json: str | None, crop_size: tuple[int, int] | None) -> Box | None:
    """The read's box in the crop's pixels, or None when the geometry does not allow drawing it."""
    if not bbox_json or crop_size is None:
        return None
    try:
        b = json.loads(bbox_json)
        x, y, w, h = (int(b[k]) for k in ("x", "y", "w", "h"))
    except (ValueError, TypeError, KeyError):
        return None
    if w <= 0 or h <= 0:
        return None
    mx, my = int(w * CROP_MARGIN) + CROP_PAD_PX, int(h * CROP_MARGIN) + CROP_PAD_PX
    x0, y0 = max(0, x - mx), max(0, y - my)
    box = Box(x - x0, y - y0, w, h)
    width, height = crop_size
    # The crop is at most the box plus both margins; clipping at the frame edge only makes it smaller.
    fits = box.x + w <= width <= box.x + w + mx and box.y + h <= height <= box.y + h + my
    return box if fits else None
