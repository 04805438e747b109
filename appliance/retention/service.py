"""The retention thread of a running appliance: one pass every ``retention.interval_s``.

Each pass measures every class, evicts what is over budget, and publishes the outcome in
``Services.status["retention"]`` (shown by ``/api/status``). A class that reaches ``alarm_fraction`` of
its budget logs a WARNING; a class still over its budget after eviction (everything left is held) logs an
ERROR that says what holds the bytes. Both repeat while the state lasts, at most once per ``REMIND_S``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from appliance.config import AppConfig
from appliance.retention.evict import STORE_CLASSES, ClassReport, evict_store_class
from appliance.retention.faces import evict_faces
from appliance.retention.holds import list_holds
from appliance.store.db import Store

log = logging.getLogger(__name__)

REMIND_S = 3600.0
_SEVERITY = {"unbudgeted": 0, "ok": 0, "alarm": 1, "blocked": 2}


def run_pass(config: AppConfig, store: Store, now: float | None = None) -> list[ClassReport]:
    """One retention pass over every class (evicting what is over budget)."""
    r = config.retention
    ts = time.time() if now is None else now
    reports = [
        evict_store_class(store, name, getattr(r.budgets, name), r.target_fraction, r.alarm_fraction,
                          r.orphan_grace_s, now=ts)
        for name in STORE_CLASSES
    ]
    reports.append(evict_faces(store, Path(config.faces.store_path), r.budgets.faces, r.target_fraction,
                               r.alarm_fraction, r.orphan_grace_s, now=ts))
    return reports


def disk_free(path: Path) -> dict[str, int] | None:
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    return {"total_bytes": st.f_blocks * st.f_frsize, "free_bytes": st.f_bavail * st.f_frsize}


def describe(report: ClassReport) -> str:
    held = ", ".join(f"{reason} {n} B" for reason, n in sorted(report.held.items())) or "none seen"
    return (f"{report.name}: {report.used_bytes} of {report.budget} bytes "
            f"({100 * (report.fraction or 0):.1f} %, {report.files} files); held: {held}")


class RetentionService:
    """Runs ``run_pass`` periodically in a daemon thread and keeps ``status["retention"]`` current."""

    def __init__(self, config: AppConfig, store: Store, status: dict[str, Any]):
        self.config = config
        self.store = store
        self.status = status
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_state: dict[str, str] = {}
        self._last_warned: dict[str, float] = {}

    def run_once(self, now: float | None = None) -> list[ClassReport]:
        ts = time.time() if now is None else now
        try:
            reports = run_pass(self.config, self.store, now=ts)
        except Exception as exc:  # a failed pass must not stop the appliance: it says so and tries again
            log.exception("retention pass failed")
            self.status["retention"] = {**self.status.get("retention", {}), "state": "error",
                                        "error": f"{type(exc).__name__}: {exc}", "last_pass_at": ts}
            return []
        for report in reports:
            self._alarm(report, ts)
        worst = max((r.state for r in reports), key=lambda s: _SEVERITY[s], default="ok")
        self.status["retention"] = {
            "state": "ok" if worst == "unbudgeted" else worst,
            "last_pass_at": ts,
            "alarm_fraction": self.config.retention.alarm_fraction,
            "classes": {r.name: r.as_dict() for r in reports},
            "legal_holds": len(list_holds(self.store)),
            "evidence_disk": disk_free(self.store.evidence_dir),
        }
        return reports

    def _alarm(self, report: ClassReport, now: float) -> None:
        previous = self._last_state.get(report.name)
        self._last_state[report.name] = report.state
        if report.state not in ("alarm", "blocked"):
            if previous in ("alarm", "blocked"):
                log.info("retention: %s back under its alarm level", report.name)
            return
        if previous == report.state and now - self._last_warned.get(report.name, 0.0) < REMIND_S:
            return
        self._last_warned[report.name] = now
        if report.state == "blocked":
            log.error("retention: %s is over its budget and eviction cannot free space, everything left is held "
                      "(legal holds, undecided or undelivered crossings); add disk, raise the budget or release "
                      "holds. %s", report.name, describe(report))
        else:
            log.warning("retention: %s has reached %.0f %% of its budget (alarm at %.0f %%); %s", report.name,
                        100 * (report.fraction or 0), 100 * self.config.retention.alarm_fraction, describe(report))

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, name="retention", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.run_once()
            self._stop.wait(self.config.retention.interval_s)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
