"""Per-stage latency histograms and analysed frame rate of the lanes, for ``/metrics``.

The lane threads call ``observe(lane, stage, seconds)`` (cheap: a lock and a bucket search); the web
thread reads ``snapshot()`` when Prometheus scrapes. Stages: ``motion`` (the motion gate), ``analysis``
(readers on one frame), ``verdict`` (the rules on a closed crossing), ``store`` (the crossing's
transaction). Kept free of prometheus_client so the lane path does not depend on the web stack.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
FPS_WINDOW_S = 10.0


@dataclass(frozen=True)
class HistogramSnapshot:
    buckets: tuple[tuple[float, int], ...]  # (upper bound, cumulative count), +Inf last
    sum_s: float
    count: int


class _Histogram:
    __slots__ = ("counts", "sum_s")

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS_S) + 1)
        self.sum_s = 0.0


class StageLatency:
    """Latency histograms per (lane, stage) and the analysed frames per second of each lane."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._hist: dict[tuple[str, str], _Histogram] = {}
        self._analysed: dict[str, deque[float]] = {}

    def observe(self, lane: str, stage: str, seconds: float) -> None:
        index = bisect.bisect_left(BUCKETS_S, seconds)
        with self._lock:
            hist = self._hist.get((lane, stage))
            if hist is None:
                hist = self._hist[(lane, stage)] = _Histogram()
            hist.counts[index] += 1
            hist.sum_s += seconds
            if stage == "analysis":
                times = self._analysed.setdefault(lane, deque(maxlen=10_000))
                times.append(self._clock())

    def snapshot(self) -> dict[tuple[str, str], HistogramSnapshot]:
        with self._lock:
            items = [(key, list(h.counts), h.sum_s) for key, h in self._hist.items()]
        result = {}
        for key, counts, total in items:
            cumulative, running = [], 0
            for bound, n in zip((*BUCKETS_S, float("inf")), counts, strict=True):
                running += n
                cumulative.append((bound, running))
            result[key] = HistogramSnapshot(tuple(cumulative), total, running)
        return result

    def analysed_fps(self) -> dict[str, float]:
        """Frames analysed per second by each lane over the last ``FPS_WINDOW_S`` seconds."""
        now = self._clock()
        with self._lock:
            result = {}
            for lane, times in self._analysed.items():
                while times and now - times[0] > FPS_WINDOW_S:
                    times.popleft()
                result[lane] = len(times) / FPS_WINDOW_S
            return result
