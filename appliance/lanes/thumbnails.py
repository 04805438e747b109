"""The latest frame of each source as a small JPEG, kept in memory for the status page.

The lane loop offers every frame; a source's thumbnail is re-encoded at most once per
``every_s`` (downscaled to ``width`` pixels first), so keeping it costs next to nothing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

THUMB_WIDTH = 320
THUMB_EVERY_S = 1.0
THUMB_QUALITY = 70


@dataclass(frozen=True)
class Thumbnail:
    jpeg: bytes
    at: float  # wall-clock epoch seconds when it was taken
    frame_ts: float  # the frame's own capture time
    seq: int  # increases with every new thumbnail of any source (for cache-busting URLs)


def encode_thumbnail(image: np.ndarray, width: int = THUMB_WIDTH, quality: int = THUMB_QUALITY) -> bytes | None:
    """``image`` (BGR or grey) scaled down to ``width`` pixels wide, as JPEG; None if OpenCV refuses."""
    h, w = image.shape[:2]
    if w > width:
        image = cv2.resize(image, (width, max(1, round(h * width / w))), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return buf.tobytes() if ok else None


class Thumbnails:
    """Thread-safe store of the latest thumbnail per (lane, source)."""

    def __init__(self, every_s: float = THUMB_EVERY_S, width: int = THUMB_WIDTH,
                 clock: Callable[[], float] = time.time) -> None:
        self.every_s = every_s
        self.width = width
        self.clock = clock
        self._lock = threading.Lock()
        self._latest: dict[tuple[str, str], Thumbnail] = {}
        self._seq = 0

    def offer(self, lane_id: str, source_id: str, image: np.ndarray, frame_ts: float) -> bool:
        """Keep ``image`` as the source's thumbnail unless the last one is younger than ``every_s``."""
        now = self.clock()
        key = (lane_id, source_id)
        with self._lock:
            last = self._latest.get(key)
            if last is not None and 0 <= now - last.at < self.every_s:
                return False
        jpeg = encode_thumbnail(image, self.width)
        if jpeg is None:
            return False
        with self._lock:
            self._seq += 1
            self._latest[key] = Thumbnail(jpeg, now, frame_ts, self._seq)
        return True

    def get(self, lane_id: str, source_id: str) -> Thumbnail | None:
        with self._lock:
            return self._latest.get((lane_id, source_id))
