"""The outbox publisher: drains each sink's backlog in outbox order, one thread per sink.

An event is marked delivered for a sink only when that sink acknowledged it (MQTT PUBACK,
HTTP 2xx). A failure counts an attempt on the oldest unacknowledged event and backs off
exponentially with jitter; events are never skipped and never expire, so a sink that is down
only grows its own backlog while the other sinks go on. The one policy for old events is an
alarm (``check_backlog``): a WARNING when a sink's oldest undelivered event passes the store's
``backlog_alarm_s``, and again when it clears.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from appliance.store.db import OutboxRow, Store

log = logging.getLogger(__name__)

ALARM_CHECK_S = 15.0  # how often the backlog alarm is evaluated


@dataclass(frozen=True)
class SendResult:
    """What a sink acknowledged of a batch; ``error`` says why the rest was not."""

    acked: list[int] = field(default_factory=list)
    error: str | None = None


class Sink(Protocol):
    name: str
    lane_id: str | None  # only this lane's events; None: every lane

    def send(self, rows: Sequence[OutboxRow], timeout: float) -> SendResult: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class RetryPolicy:
    batch: int = 100
    ack_timeout_s: float = 10.0
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 60.0
    idle_poll_s: float = 0.5

    def delay(self, failures: int, rng: random.Random) -> float:
        """Exponential backoff with 'equal jitter': half fixed, half random."""
        d = min(self.backoff_max_s, self.backoff_initial_s * (2 ** max(0, failures - 1)))
        return d / 2 + rng.uniform(0, d / 2)


class Publisher:
    """Runs one drain thread per sink over the store's outbox."""

    def __init__(
        self,
        store: Store,
        sinks: Sequence[Sink],
        policies: Mapping[str, RetryPolicy] | None = None,
        default_policy: RetryPolicy | None = None,
        rng: random.Random | None = None,
    ):
        names = [s.name for s in sinks]
        if len(set(names)) != len(names):
            raise ValueError(f"sink names must be unique, got {names}")
        self.store = store
        self.sinks = list(sinks)
        self._policies = dict(policies or {})
        self._default = default_policy or RetryPolicy()
        self._rng = rng or random.Random()
        self._stop = threading.Event()
        self._wake = {s.name: threading.Event() for s in self.sinks}
        self._threads: list[threading.Thread] = []
        self._failures = {s.name: 0 for s in self.sinks}
        self._alarmed: set[str] = set()
        for sink in self.sinks:
            store.register_sink(sink.name, sink.lane_id)
        store.add_outbox_listener(self.notify)

    def policy(self, sink: str) -> RetryPolicy:
        return self._policies.get(sink, self._default)

    def notify(self) -> None:
        """New events are in the outbox: wake every idle sink."""
        for ev in self._wake.values():
            ev.set()

    def start(self) -> None:
        for sink in self.sinks:
            t = threading.Thread(target=self._run, args=(sink,), name=f"publish-{sink.name}", daemon=True)
            t.start()
            self._threads.append(t)
        t = threading.Thread(target=self._watch_backlog, name="publish-alarm", daemon=True)
        t.start()
        self._threads.append(t)

    def check_backlog(self) -> set[str]:
        """Log when a sink enters or leaves the backlog alarm; returns the sinks in alarm."""
        alarmed = {s.sink for s in self.store.outbox_status() if s.alarm}
        for sink in sorted(alarmed - self._alarmed):
            log.warning("sink %s: ALARM: undelivered events older than %.0f s; they are kept and retried, "
                        "never dropped", sink, self.store.backlog_alarm_s)
        for sink in sorted(self._alarmed - alarmed):
            log.warning("sink %s: alarm cleared, the backlog is younger than %.0f s", sink, self.store.backlog_alarm_s)
        self._alarmed = alarmed
        return alarmed

    def _watch_backlog(self) -> None:
        while not self._stop.wait(ALARM_CHECK_S):
            try:
                self.check_backlog()
            except Exception:
                log.exception("outbox backlog check failed")

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self.notify()
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        for sink in self.sinks:
            try:
                sink.close()
            except Exception:
                log.exception("closing sink %s failed", sink.name)

    def drain_once(self, sink: Sink) -> float:
        """One round for one sink; returns how long to wait before the next round (0: go on)."""
        policy = self.policy(sink.name)
        rows = self.store.pending(sink.name, policy.batch)
        if not rows:
            return policy.idle_poll_s
        wait = rows[0].next_attempt_at - time.time()
        if wait > 0:
            return wait
        try:
            result = sink.send(rows, policy.ack_timeout_s)
        except Exception as exc:  # a sink bug must not kill the drain thread
            log.exception("sink %s raised while sending", sink.name)
            result = SendResult([], f"{type(exc).__name__}: {exc}")
        acked = set(result.acked)
        if acked:
            self.store.mark_delivered(sink.name, [r.id for r in rows if r.id in acked])
        unacked = [r for r in rows if r.id not in acked]
        if not unacked:
            self._failures[sink.name] = 0
            return 0.0
        self._failures[sink.name] += 1
        delay = policy.delay(self._failures[sink.name], self._rng)
        error = result.error or "not acknowledged"
        self.store.record_failure(sink.name, unacked[0].id, error, time.time() + delay)
        log.warning(
            "sink %s: %d of %d events not acknowledged (%s); retry in %.1f s (failure %d in a row)",
            sink.name, len(unacked), len(rows), error, delay, self._failures[sink.name],
        )
        return delay

    def _run(self, sink: Sink) -> None:
        wake = self._wake[sink.name]
        while not self._stop.is_set():
            try:
                wait = self.drain_once(sink)
            except Exception:
                log.exception("sink %s: drain round failed", sink.name)
                wait = self.policy(sink.name).backoff_max_s
            if wait > 0:
                backing_off = self._failures[sink.name] > 0
                if backing_off:
                    self._stop.wait(wait)  # new events must not cut a backoff short
                else:
                    wake.wait(wait)
                    wake.clear()
