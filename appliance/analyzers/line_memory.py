"""Text lines a camera's previous frame already read, so that text which plainly is none of the
things the lane reads (a container door's weight marking: ``MAX GROSS 30,480 KG``) is not
recognised again on every frame of a passage.

Those markings are long lines, two or three of them on every rear frame of a container, and the
recogniser's cost grows with a line's width: re-reading them was a fifth of a lane frame's cost.
A line is recalled instead of read when, on the previous analysed frame of the same camera, a
line that read as such a marking had nearly the same size, lay within a few line heights of it
(the vehicle moves between frames) and looked alike (normalised cross-correlation of small grey
thumbnails). A recalled line is read again after ``max_age`` recalls, so a wrong recall lasts
at most that many frames; text the lane does read (plates, container numbers, seal serials) is
never recalled, only ever read.

Frames of one camera may be analysed by two worker threads at once. To stay deterministic, each
analysed frame gets a ``MemoryLink`` in frame order; a link's ``recall`` waits until the frame
before it has published what it read (or given up), so a replay analyses every frame the same
way whatever the thread timing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:
    from appliance.analyzers.ocr import Recognition

log = logging.getLogger(__name__)

THUMB_HEIGHT = 16  # px: thumbnails compared by normalised cross-correlation
WAIT_S = 30.0  # a frame waits at most this long for the previous one (a safety net, never reached)


@dataclass(frozen=True)
class MemorySettings:
    max_age: int = 2  # recalls in a row before the line is read again
    max_gap_s: float = 1.0  # frames further apart share nothing
    min_confidence: float = 0.8  # only lines read at least this well are remembered
    size_tolerance: tuple[float, float] = (0.15, 0.25)  # width, height: relative difference allowed
    max_shift_lines: float = 4.0  # centre may move this many line heights between frames
    min_similarity: float = 0.5  # normalised cross-correlation of the thumbnails (other text: about 0.3)


@dataclass(frozen=True)
class Remembered:
    """A line read (or recalled) on a frame: what it said and what it looked like."""

    recognition: Recognition
    centre: tuple[float, float]
    size: tuple[int, int]  # crop width, height
    thumb: np.ndarray
    age: int  # 0: read on that frame; n: recalled n times in a row


def _thumb(crop: np.ndarray) -> np.ndarray:
    grey = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY) if crop.ndim == 3 else crop
    width = max(8, round(THUMB_HEIGHT * crop.shape[1] / max(crop.shape[0], 1)))
    return cv2.resize(grey, (width, THUMB_HEIGHT), interpolation=cv2.INTER_AREA).astype(np.float32)


def _similarity(a: np.ndarray, b: np.ndarray) -> float:
    if a.shape != b.shape:
        b = cv2.resize(b, (a.shape[1], a.shape[0]), interpolation=cv2.INTER_AREA)
    a, b = a - a.mean(), b - b.mean()
    denom = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum()) / denom if denom > 1e-6 else 0.0


class MemoryLink:
    """One analysed frame's place in its camera's chain (see the module docstring)."""

    def __init__(self, memory: LineMemory, ts: float, previous: MemoryLink | None):
        self._memory = memory
        self.ts = ts
        self._previous = previous
        self._done = threading.Event()
        self._lines: list[Remembered] = []

    def recall(self, quads: Sequence[np.ndarray], crops: Sequence[np.ndarray]) -> list[Remembered | None]:
        """Per line of this frame, the previous frame's remembered line it is (None: read it)."""
        previous, self._previous = self._previous, None  # the chain holds no more than two frames
        found: list[Remembered | None] = [None] * len(crops)
        if previous is None:
            return found
        if not previous._done.wait(WAIT_S):
            log.warning("line memory: the previous frame published nothing within %.0f s; reading all lines", WAIT_S)
            return found
        s = self._memory.settings
        if not previous._lines or self.ts - previous.ts > s.max_gap_s:
            return found
        taken: set[int] = set()
        for i, (quad, crop) in enumerate(zip(quads, crops, strict=True)):
            match = self._match(quad, crop, previous._lines, taken)
            if match is not None:
                taken.add(match)
                found[i] = previous._lines[match]
        return found

    def _match(self, quad: np.ndarray, crop: np.ndarray, lines: list[Remembered], taken: set[int]) -> int | None:
        s = self._memory.settings
        h, w = crop.shape[:2]
        cx, cy = (float(v) for v in np.asarray(quad).mean(axis=0))
        best, best_sim = None, s.min_similarity
        thumb = None
        for j, old in enumerate(lines):
            if j in taken or old.age >= s.max_age:
                continue
            ow, oh = old.size
            if abs(w - ow) > s.size_tolerance[0] * ow or abs(h - oh) > s.size_tolerance[1] * oh:
                continue
            if np.hypot(cx - old.centre[0], cy - old.centre[1]) > s.max_shift_lines * oh:
                continue
            thumb = _thumb(crop) if thumb is None else thumb
            sim = _similarity(thumb, old.thumb)
            if sim >= best_sim:
                best, best_sim = j, sim
        return best

    def publish(
        self,
        quads: Sequence[np.ndarray],
        crops: Sequence[np.ndarray],
        recognitions: Sequence[Recognition],
        recalled: Sequence[Remembered | None],
    ) -> None:
        """This frame's lines, for the next frame: what each read as, and what ``recall``
        answered for it."""
        s = self._memory.settings
        kept = []
        for quad, crop, recognition, old in zip(quads, crops, recognitions, recalled, strict=True):
            if recognition.confidence < s.min_confidence or not self._memory.keep(recognition.text):
                continue
            centre = tuple(float(v) for v in np.asarray(quad).mean(axis=0))
            age = 0 if old is None else old.age + 1
            kept.append(Remembered(recognition, (centre[0], centre[1]), (crop.shape[1], crop.shape[0]),
                                   _thumb(crop), age))
        self._lines = kept
        self._done.set()

    def abandon(self) -> None:
        """Publish nothing (the frame failed or read no text): the next frame reads every line.
        Harmless after ``publish``."""
        self._previous = None
        self._done.set()


class LineMemory:
    """The chain of one camera; ``keep`` says which text may be recalled instead of read."""

    def __init__(self, keep: Callable[[str], bool], settings: MemorySettings | None = None):
        self.keep = keep
        self.settings = settings or MemorySettings()
        self._last: MemoryLink | None = None
        self._lock = threading.Lock()

    def link(self, ts: float) -> MemoryLink:
        """The next analysed frame's link; call in frame order."""
        with self._lock:
            self._last = MemoryLink(self, ts, self._last)
            return self._last
