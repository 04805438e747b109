"""Health of a running lane's sources, for the status page and ``/api/status``.

``LaneHealth.on_frame`` is called by the lane loop for every frame: it counts, measures the frame
rate over the last few seconds of wall-clock time and offers the frame to the thumbnails. About
once a second (and when the lane ends) it publishes a snapshot per source into the lane's status
dict (``status["lanes"][lane]["sources"][source]``): a new dict each time, so the web thread
always reads a whole one.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from appliance.ingest.frames import Frame
from appliance.ingest.sources import Source
from appliance.lanes.thumbnails import Thumbnails

FPS_WINDOW_S = 5.0
PUBLISH_EVERY_S = 1.0
# Counters of frames a source lost, by source kind: stream drops, video frames that did not decode,
# scanner files that were not images.
DROP_KEYS = ("drops", "skipped_frames", "rejected")


def source_state(status: dict[str, Any], frames_read: int, ended: bool = False) -> str:
    """connected, disconnected, ended or waiting, from a source's ``status()`` and what it delivered."""
    if "connected" in status:  # streams and USB cameras
        if status["connected"]:
            return "connected"
        return "ended" if ended and not status.get("last_error") else "disconnected"
    if status.get("error"):
        return "disconnected"
    if ended or status.get("ended"):
        return "ended"
    return "connected" if frames_read else "waiting"


class SourceHealth:
    """Counters of one source as the lane loop sees it."""

    def __init__(self, source: Source, window_s: float = FPS_WINDOW_S) -> None:
        self.source = source
        self.window_s = window_s
        self.frames_read = 0
        self.last_frame_ts: float | None = None  # the frame's capture time
        self.last_frame_at: float | None = None  # wall clock when the lane got it
        self._times: deque[float] = deque(maxlen=4096)

    def count(self, frame: Frame, mono: float, wall: float) -> None:
        self.frames_read += 1
        self.last_frame_ts = frame.ts
        self.last_frame_at = wall
        self._times.append(mono)

    def fps(self, mono: float) -> float:
        """Frames per second over the last ``window_s`` seconds (0 when fewer than two frames)."""
        times = self._times
        while times and mono - times[0] > self.window_s:
            times.popleft()
        if len(times) < 2:
            return 0.0
        span = max(times[-1] - times[0], 1e-6)
        return (len(times) - 1) / span

    def snapshot(self, mono: float, ended: bool = False) -> dict[str, Any]:
        try:
            status = self.source.status()
        except Exception as exc:  # a health read must never stop the lane
            status = {"error": f"{type(exc).__name__}: {exc}"}
        dropped = sum(int(status.get(k) or 0) for k in DROP_KEYS)
        return {
            "type": status.get("type", type(self.source).__name__),
            "state": source_state(status, self.frames_read, ended),
            "fps": 0.0 if ended else round(self.fps(mono), 2),
            "frames_read": self.frames_read,
            "frames_dropped": dropped,
            "dropped_by_reason": {k: int(status[k]) for k in DROP_KEYS if status.get(k)},  # for /metrics
            "last_frame_ts": self.last_frame_ts,
            "last_frame_at": self.last_frame_at,
            "error": status.get("error") or status.get("last_error"),
        }


class LaneHealth:
    """Per-source health of one lane, published into ``lane_status["sources"]``."""

    def __init__(
        self,
        lane_id: str,
        sources: Sequence[Source],
        lane_status: dict[str, Any],
        thumbnails: Thumbnails | None = None,
        *,
        publish_every_s: float = PUBLISH_EVERY_S,
        mono: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.lane_id = lane_id
        self.sources = {s.id: SourceHealth(s) for s in sources}
        self.lane_status = lane_status
        self.thumbnails = thumbnails
        self.publish_every_s = publish_every_s
        self._mono, self._wall = mono, wall
        self._next_publish = 0.0
        self.publish()

    def on_frame(self, frame: Frame) -> None:
        mono = self._mono()
        health = self.sources.get(frame.source_id)
        if health is not None:
            health.count(frame, mono, self._wall())
        if self.thumbnails is not None:
            self.thumbnails.offer(self.lane_id, frame.source_id, frame.image, frame.ts)
        if mono >= self._next_publish:
            self.publish(mono)

    def publish(self, mono: float | None = None, ended: bool = False) -> None:
        mono = self._mono() if mono is None else mono
        self._next_publish = mono + self.publish_every_s
        self.lane_status["sources"] = {sid: h.snapshot(mono, ended) for sid, h in self.sources.items()}

    def finish(self) -> None:
        """The lane stopped: a last snapshot (finite sources show as ended)."""
        self.publish(ended=True)
