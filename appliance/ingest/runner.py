"""Moving frames from sources to the analyzers.

- :class:`SourceRunner`: one thread per source: read, tag with the motion gate's verdict, put
  into a :class:`~appliance.ingest.queues.BoundedFrameQueue`. With a drop policy the source is
  never blocked by a slow consumer; with ``BLOCK`` (offline replay) nothing is lost.
- :func:`merge_by_time`: offline replay of finite sources in one thread, all frames of all
  sources in timestamp order, as fast as the CPU allows and the same every run.
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections.abc import Generator, Iterable
from typing import Any, NamedTuple

from appliance.errors import SourceError
from appliance.ingest.frames import Frame
from appliance.ingest.motion import MotionGate, MotionResult
from appliance.ingest.queues import BoundedFrameQueue, DropPolicy
from appliance.ingest.sources import Source

__all__ = ["SourceRunner", "TaggedFrame", "merge_by_time"]

logger = logging.getLogger(__name__)

_BLOCK_PUT_SLICE_S = 0.2
_MAX_CONSECUTIVE_ERRORS = 10
_ERROR_PAUSE_S = 1.0


class TaggedFrame(NamedTuple):
    """A frame and the motion gate's verdict on it (None when the runner has no gate)."""

    frame: Frame
    motion: MotionResult | None


class SourceRunner(threading.Thread):
    """Reads one source in a daemon thread and feeds ``queue`` with :class:`TaggedFrame` items.

    Stops when the source ends (finite sources), when ``stop_event`` is set (shared by all
    runners of a process, for shutdown) or when :meth:`stop` is called; setting the event closes
    the source, so a runner blocked in a stream read or a reconnect backoff ends within about one
    read timeout. With ``close_queue=True`` the queue is closed when the runner ends, so a
    consumer iterating over it finishes (set it False when several runners share one queue).
    ``skip_idle=True`` queues only frames the gate says are moving.

    An unexpected exception from the source is logged and retried after a pause; after
    ``10`` in a row the runner gives up (``status()["error"]``). A :class:`SourceError` on open
    ends the runner at once.
    """

    def __init__(
        self,
        source: Source,
        queue: BoundedFrameQueue[TaggedFrame],
        motion_gate: MotionGate | None = None,
        stop_event: threading.Event | None = None,
        *,
        close_queue: bool = True,
        skip_idle: bool = False,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name or f"source-{source.id}", daemon=True)
        self.source = source
        self.queue = queue
        self.motion_gate = motion_gate
        self.stop_event = stop_event if stop_event is not None else threading.Event()
        self.close_queue = close_queue
        self.skip_idle = skip_idle
        self._done = threading.Event()
        self.frames_read = 0
        self.frames_queued = 0
        self.frames_moving = 0
        self.frames_not_queued = 0
        self.errors = 0
        self.error: str | None = None
        self._started_mono: float | None = None

    # -- control --------------------------------------------------------------------------
    def stop(self, timeout: float | None = None) -> None:
        """Ask the runner to end, close its source, and wait up to ``timeout`` for it."""
        self.stop_event.set()
        self.source.close()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout)

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def _watch_stop(self) -> None:
        """Close the source when the shared stop event is set, to unblock a pending read."""
        while not self._done.is_set():
            if self.stop_event.wait(0.2):
                self.source.close()
                return

    # -- loop -----------------------------------------------------------------------------
    def run(self) -> None:
        self._started_mono = time.monotonic()
        watcher = threading.Thread(target=self._watch_stop, name=f"{self.name}-stop", daemon=True)
        watcher.start()
        try:
            self._loop()
        finally:
            self._done.set()
            self.source.close()
            if self.close_queue:
                self.queue.close()
            logger.info(
                "runner %s ended: %d frames read, %d queued, %d moving%s",
                self.name,
                self.frames_read,
                self.frames_queued,
                self.frames_moving,
                f", error: {self.error}" if self.error else "",
            )

    def _loop(self) -> None:
        try:
            self.source.open()
        except SourceError as exc:
            self.error = str(exc)
            logger.error("runner %s: %s", self.name, exc)
            return
        consecutive_errors = 0
        while not self.stop_event.is_set():
            try:
                frame = self.source.read()
            except Exception as exc:
                self.errors += 1
                consecutive_errors += 1
                self.error = f"{type(exc).__name__}: {exc}"
                logger.exception("runner %s: reading source %s failed", self.name, self.source.id)
                if consecutive_errors >= _MAX_CONSECUTIVE_ERRORS:
                    logger.error(
                        "runner %s: %d errors in a row, giving up on source %s",
                        self.name,
                        consecutive_errors,
                        self.source.id,
                    )
                    return
                self.stop_event.wait(_ERROR_PAUSE_S)
                continue
            if frame is None:
                return
            consecutive_errors = 0
            self.frames_read += 1
            motion = self._gate(frame)
            if motion is not None and motion.moving:
                self.frames_moving += 1
            if self.skip_idle and motion is not None and not motion.moving:
                continue
            if self._put(TaggedFrame(frame, motion)):
                self.frames_queued += 1
            else:
                self.frames_not_queued += 1
                if self.queue.closed:
                    logger.info("runner %s: queue closed, stopping", self.name)
                    return

    def _gate(self, frame: Frame) -> MotionResult | None:
        if self.motion_gate is None:
            return None
        try:
            return self.motion_gate.update(frame.image)
        except Exception:
            self.errors += 1
            logger.exception("runner %s: motion gate failed on frame %d", self.name, frame.index)
            return None

    def _put(self, item: TaggedFrame) -> bool:
        if self.queue.policy is not DropPolicy.BLOCK:
            return self.queue.put(item)  # never waits
        while not self.stop_event.is_set() and not self.queue.closed:
            if self.queue.put(item, timeout=_BLOCK_PUT_SLICE_S):
                return True
        return False

    # -- health ---------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        stats = self.queue.stats()
        return {
            "runner": self.name,
            "alive": self.is_alive(),
            "done": self.done,
            "frames_read": self.frames_read,
            "frames_queued": self.frames_queued,
            "frames_moving": self.frames_moving,
            "frames_not_queued": self.frames_not_queued,
            "errors": self.errors,
            "error": self.error,
            "uptime_s": None if self._started_mono is None else round(time.monotonic() - self._started_mono, 3),
            "source": self.source.status(),
            "queue": {
                "name": stats.name,
                "policy": stats.policy.value,
                "size": stats.size,
                "maxsize": stats.maxsize,
                "dropped_oldest": stats.dropped_oldest,
                "dropped_newest": stats.dropped_newest,
                "high_water": stats.high_water,
            },
        }


def merge_by_time(sources: Iterable[Source], *, close: bool = True) -> Generator[Frame, None, None]:
    """All frames of finite ``sources`` in timestamp order (a k-way heap merge).

    Equal timestamps are broken by the order of ``sources``, so a replay is the same every time.
    Each source must itself deliver frames in timestamp order (video files and folders named
    ``<epoch_ms>_...`` do); a source that goes back in time is logged once and its frames are
    still yielded, as soon as they come. Live sources are refused (they never end). Sources are
    opened as needed and closed at the end (also when the caller stops early) unless
    ``close=False``.
    """
    srcs = list(sources)
    for src in srcs:
        if src.live:
            raise SourceError(
                f"merge_by_time replays finite sources only; source {src.id!r} is live "
                "(a stream, or a folder with follow=True)"
            )
    heap: list[tuple[float, int, int, Frame]] = []
    last_ts: dict[int, float] = {}
    warned: set[int] = set()
    seq = 0
    try:
        for order, src in enumerate(srcs):
            first = src.read()
            if first is not None:
                heapq.heappush(heap, (first.ts, order, seq, first))
                seq += 1
        while heap:
            ts, order, _, frame = heapq.heappop(heap)
            previous = last_ts.get(order)
            if previous is not None and ts < previous and order not in warned:
                warned.add(order)
                logger.warning(
                    "merge_by_time: source %s went back in time (%.3f after %.3f); its frames are merged as they come",
                    srcs[order].id,
                    ts,
                    previous,
                )
            last_ts[order] = ts
            yield frame
            following = srcs[order].read()
            if following is not None:
                heapq.heappush(heap, (following.ts, order, seq, following))
                seq += 1
    finally:
        if close:
            for src in srcs:
                src.close()
