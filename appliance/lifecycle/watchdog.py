"""Lane heartbeats and the systemd watchdog that trusts them.

Every lane loop calls ``Heartbeats.beat(lane)`` for each frame it gets through its pipeline, and
``done(lane)`` when its sources end. ``Watchdog`` pings systemd (``WATCHDOG=1``) every half watchdog
interval *only while* every running lane beat within ``stall_s``: a pipeline stuck in a read, a model
call or a lock stops the pings, and systemd (``WatchdogSec=``) kills and restarts the service. A thread
that merely stays alive proves nothing; progress does.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from appliance.lifecycle.sd_notify import notify

log = logging.getLogger(__name__)


class Heartbeats:
    """The last moment each running lane made progress (monotonic clock). Thread-safe."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}

    def beat(self, lane: str) -> None:
        now = self._clock()
        with self._lock:
            self._last[lane] = now

    def done(self, lane: str) -> None:
        """The lane ended on purpose (its sources finished, or shutdown): no longer watched."""
        with self._lock:
            self._last.pop(lane, None)

    def ages(self) -> dict[str, float]:
        """Seconds since each running lane's last beat."""
        now = self._clock()
        with self._lock:
            return {lane: now - last for lane, last in self._last.items()}

    def stalled(self, stall_s: float) -> list[str]:
        """Running lanes with no progress for more than ``stall_s`` seconds, sorted."""
        return sorted(lane for lane, age in self.ages().items() if age > stall_s)


class Watchdog(threading.Thread):
    """Pings systemd every ``interval_s`` while no lane is stalled; ``stall_s`` may change at run time."""

    def __init__(
        self,
        heartbeats: Heartbeats,
        interval_s: float,
        stall_s: Callable[[], float],
        status: dict[str, Any] | None = None,
        send: Callable[..., bool] = notify,
    ) -> None:
        super().__init__(name="watchdog", daemon=True)
        self.heartbeats = heartbeats
        self.interval_s = interval_s
        self.stall_s = stall_s
        self.status = status if status is not None else {}
        self._send = send
        self._stop_event = threading.Event()
        self.pings = 0

    def stop(self) -> None:
        self._stop_event.set()

    def check_once(self) -> bool:
        """Ping when every lane made progress recently; True when it pinged."""
        stalled = self.heartbeats.stalled(self.stall_s())
        was_stalled = bool(self.status.get("stalled_lanes"))
        self.status["stalled_lanes"] = stalled
        if stalled:
            if not was_stalled:
                log.error("lane(s) %s made no progress for over %.0f s: watchdog pings stopped, systemd will "
                          "restart the service", ", ".join(stalled), self.stall_s())
            return False
        if was_stalled:
            log.warning("every lane makes progress again: watchdog pings resumed")
        if self._send("WATCHDOG=1"):
            self.pings += 1
            self.status["last_ping_at"] = time.time()
        return True

    def run(self) -> None:
        log.info("systemd watchdog: ping every %.1f s while every lane progresses", self.interval_s)
        while not self._stop_event.wait(self.interval_s):
            try:
                self.check_once()
            except Exception:  # the watchdog thread must not die silently: no pings means a restart
                log.exception("watchdog check failed")
