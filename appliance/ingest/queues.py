"""A bounded, thread-safe frame queue with a named drop policy.

Like roboflow/inference's ``BufferFillingStrategy``: the realtime path must never block a camera
(``DROP_OLDEST``: keep the freshest frames; ``DROP_NEWEST``: keep what is queued), while offline
replay and evaluation must not lose a frame (``BLOCK``). Every dropped frame is counted.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, TypeVar

__all__ = ["BoundedFrameQueue", "DropPolicy", "QueueClosed", "QueueStats"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

_DROP_LOG_INTERVAL_S = 10.0


class DropPolicy(StrEnum):
    """What ``put`` does when the queue is full."""

    DROP_OLDEST = "drop_oldest"  # evict the oldest queued item (realtime default)
    DROP_NEWEST = "drop_newest"  # discard the item being put
    BLOCK = "block"  # wait for room (offline replay / evaluation)


class QueueClosed(Exception):
    """``get`` on a closed queue that has been drained."""


@dataclass(frozen=True)
class QueueStats:
    """Counters since the queue was created."""

    name: str
    policy: DropPolicy
    maxsize: int
    size: int
    put: int  # items accepted
    got: int  # items handed out
    dropped_oldest: int  # evicted by DROP_OLDEST
    dropped_newest: int  # refused by DROP_NEWEST
    timed_out: int  # BLOCK puts that gave up after their timeout
    refused_closed: int  # puts after close()
    high_water: int  # largest size seen
    closed: bool

    @property
    def dropped(self) -> int:
        return self.dropped_oldest + self.dropped_newest


class BoundedFrameQueue(Generic[T]):
    """FIFO of at most ``maxsize`` items; what happens when full is ``policy``.

    ``put(item, timeout)`` returns True when the item was queued. ``get(timeout)`` returns the
    oldest item, raises :class:`queue.Empty` after ``timeout`` seconds, and
    :class:`QueueClosed` once the queue is closed and drained. ``close()`` wakes every waiter;
    items already queued can still be taken. Iterating yields items until closed and drained.
    """

    def __init__(self, maxsize: int, policy: DropPolicy | str = DropPolicy.DROP_OLDEST, name: str = "") -> None:
        if maxsize < 1:
            raise ValueError(f"BoundedFrameQueue maxsize must be >= 1, got {maxsize}")
        try:
            self.policy = DropPolicy(policy)
        except ValueError:
            known = ", ".join(p.value for p in DropPolicy)
            raise ValueError(f"unknown drop policy {policy!r}; known: {known}") from None
        self.maxsize = int(maxsize)
        self.name = name or f"queue@{id(self):x}"
        self._items: deque[T] = deque()
        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)
        self._not_full = threading.Condition(self._lock)
        self._closed = False
        self._put = 0
        self._got = 0
        self._dropped_oldest = 0
        self._dropped_newest = 0
        self._timed_out = 0
        self._refused_closed = 0
        self._high_water = 0
        self._drops_since_log = 0
        self._last_drop_log = float("-inf")

    # -- producer -------------------------------------------------------------------------
    def put(self, item: T, timeout: float | None = None) -> bool:
        """Queue ``item``; True when queued, False when dropped, timed out or closed.

        ``timeout`` only matters for ``BLOCK`` (None waits until there is room or the queue is
        closed); the drop policies never wait.
        """
        with self._lock:
            if self._closed:
                self._refused_closed += 1
                return False
            if len(self._items) >= self.maxsize:
                if self.policy is DropPolicy.DROP_OLDEST:
                    self._items.popleft()
                    self._dropped_oldest += 1
                    self._note_drop_locked()
                elif self.policy is DropPolicy.DROP_NEWEST:
                    self._dropped_newest += 1
                    self._note_drop_locked()
                    return False
                else:
                    deadline = None if timeout is None else time.monotonic() + timeout
                    while len(self._items) >= self.maxsize and not self._closed:
                        remaining = None if deadline is None else deadline - time.monotonic()
                        if remaining is not None and remaining <= 0:
                            self._timed_out += 1
                            return False
                        self._not_full.wait(remaining)
                    if self._closed:
                        self._refused_closed += 1
                        return False
            self._items.append(item)
            self._put += 1
            self._high_water = max(self._high_water, len(self._items))
            self._not_empty.notify()
            return True

    def _note_drop_locked(self) -> None:
        self._drops_since_log += 1
        now = time.monotonic()
        if now - self._last_drop_log >= _DROP_LOG_INTERVAL_S:
            logger.warning(
                "queue %s full (%d): dropped %d frame(s) by %s since the last report; the consumer is "
                "slower than the source",
                self.name,
                self.maxsize,
                self._drops_since_log,
                self.policy.value,
            )
            self._drops_since_log = 0
            self._last_drop_log = now

    # -- consumer -------------------------------------------------------------------------
    def get(self, timeout: float | None = None) -> T:
        """Oldest item; ``queue.Empty`` after ``timeout`` s, ``QueueClosed`` when closed and empty."""
        with self._lock:
            deadline = None if timeout is None else time.monotonic() + timeout
            while not self._items:
                if self._closed:
                    raise QueueClosed(f"queue {self.name} is closed and drained")
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise queue.Empty
                self._not_empty.wait(remaining)
            item = self._items.popleft()
            self._got += 1
            self._not_full.notify()
            return item

    def get_nowait(self) -> T:
        return self.get(timeout=0.0)

    def __iter__(self) -> Iterator[T]:
        while True:
            try:
                yield self.get()
            except QueueClosed:
                return

    def close(self) -> None:
        """No more puts; wake every waiting producer and consumer. Idempotent."""
        with self._lock:
            self._closed = True
            self._not_empty.notify_all()
            self._not_full.notify_all()

    # -- introspection --------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        return self._closed

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    @property
    def dropped(self) -> int:
        with self._lock:
            return self._dropped_oldest + self._dropped_newest

    def stats(self) -> QueueStats:
        with self._lock:
            return QueueStats(
                name=self.name,
                policy=self.policy,
                maxsize=self.maxsize,
                size=len(self._items),
                put=self._put,
                got=self._got,
                dropped_oldest=self._dropped_oldest,
                dropped_newest=self._dropped_newest,
                timed_out=self._timed_out,
                refused_closed=self._refused_closed,
                high_water=self._high_water,
                closed=self._closed,
            )
