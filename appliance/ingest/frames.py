"""The unit every source produces: one decoded image with its capture time."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["Frame"]


@dataclass(frozen=True, eq=False)
class Frame:
    """One image from one source.

    ``ts`` is the capture time in epoch seconds: for video files ``start_time + index / fps``,
    for live streams the wall clock when the frame arrived, for folder drops the ``<epoch_ms>_``
    prefix of the file name (else the file's mtime). ``index`` counts frames of that source from 0
    (for video files it is the frame's position in the file, so frames skipped because they did not
    decode leave a gap). ``name`` is the file name for folder drops, empty otherwise.

    Frames compare by identity (``eq=False``): comparing images element-wise is never what is meant.
    The image is not copied; treat it as read-only.
    """

    source_id: str
    ts: float
    index: int
    image: np.ndarray
    name: str = ""

    def __post_init__(self) -> None:
        if not self.source_id:
            raise ValueError("Frame.source_id must not be empty")
        if not math.isfinite(self.ts):
            raise ValueError(f"Frame.ts must be a finite epoch time, got {self.ts!r} (source {self.source_id!r})")
        if self.index < 0:
            raise ValueError(f"Frame.index must be >= 0, got {self.index} (source {self.source_id!r})")
        if not isinstance(self.image, np.ndarray) or self.image.ndim not in (2, 3) or self.image.size == 0:
            raise ValueError(
                f"Frame.image must be a non-empty 2-D or 3-D numpy array (source {self.source_id!r}, "
                f"index {self.index})"
            )

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])
