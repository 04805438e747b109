"""Usage per data class and one eviction pass: oldest first, never held evidence, every eviction recorded.

Classes in the evidence folder (``storage.evidence_dir``): ``evidence`` (crossing crops) and ``xray`` (X-ray
evidence images, named by an ``xray_results`` row). Usage is the sum of the stored files' sizes as the store
recorded them. An evicted file is deleted; its ``evidence`` row stays with ``evicted_at`` and every crossing
that named it gets ``evidence_evicted_at``: the verdict, the reads and the hash remain, the image is gone.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field

from appliance.retention.protect import evidence_hold
from appliance.store.db import Store

log = logging.getLogger(__name__)

STORE_CLASSES = ("evidence", "xray")
_IS_XRAY = "EXISTS (SELECT 1 FROM xray_results x WHERE x.evidence_sha256 = e.sha256)"
_CLASS_SQL = {"evidence": f"NOT {_IS_XRAY}", "xray": _IS_XRAY}
_BATCH = 200


@dataclass
class ClassReport:
    """One class after a pass: usage against its budget, what was evicted, what is held."""

    name: str
    budget: int | None
    used_bytes: int
    files: int
    evicted_files: int = 0
    evicted_bytes: int = 0
    held: dict[str, int] = field(default_factory=dict)  # reason -> bytes met while looking for eviction candidates
    state: str = "ok"  # ok | alarm | blocked | unbudgeted

    @property
    def fraction(self) -> float | None:
        return None if not self.budget else self.used_bytes / self.budget

    def as_dict(self) -> dict[str, object]:
        return {"budget_bytes": self.budget, "used_bytes": self.used_bytes, "files": self.files,
                "fraction": None if self.fraction is None else round(self.fraction, 4), "state": self.state,
                "evicted_files": self.evicted_files, "evicted_bytes": self.evicted_bytes, "held_bytes": dict(self.held)}


def read_connection(path: str) -> sqlite3.Connection:
    """A read-only connection of its own (WAL: it never blocks the lanes' writes)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    return conn


def class_usage(conn: sqlite3.Connection, name: str) -> tuple[int, int]:
    """(bytes, files) of the live (not evicted) evidence of a class."""
    row = conn.execute(f"SELECT count(*), coalesce(sum(bytes), 0) FROM evidence e "
                       f"WHERE e.evicted_at IS NULL AND {_CLASS_SQL[name]}").fetchone()
    return int(row[1]), int(row[0])


def _candidates(conn: sqlite3.Connection, name: str) -> Iterator[sqlite3.Row]:
    """Live evidence of a class, oldest first (keyset pages, so marking rows meanwhile is safe)."""
    after: tuple[float, str] = (float("-inf"), "")
    while True:
        rows = conn.execute(
            f"SELECT e.sha256, e.relpath, e.bytes, e.created_at FROM evidence e "
            f"WHERE e.evicted_at IS NULL AND (e.created_at, e.sha256) > (?, ?) AND {_CLASS_SQL[name]} "
            f"ORDER BY e.created_at, e.sha256 LIMIT {_BATCH}", after,
        ).fetchall()
        if not rows:
            return
        yield from rows
        after = (rows[-1]["created_at"], rows[-1]["sha256"])


def evict_store_class(store: Store, name: str, budget: int | None, target_fraction: float, alarm_fraction: float,
                      orphan_grace_s: float, now: float | None = None) -> ClassReport:
    """Measure a class and, when it is over its budget, evict the oldest unheld files down to the target."""
    ts = time.time() if now is None else now
    with closing(read_connection(str(store.path))) as conn:
        used, files = class_usage(conn, name)
        report = ClassReport(name, budget, used, files)
        if budget is None:
            report.state = "unbudgeted"
            return report
        if used > budget:
            goal = int(budget * target_fraction)
            for row in _candidates(conn, name):
                if report.used_bytes <= goal:
                    break
                reason = evidence_hold(conn, row["sha256"], row["created_at"], ts, orphan_grace_s)
                if reason is not None:
                    report.held[reason] = report.held.get(reason, 0) + int(row["bytes"])
                    continue
                _evict_one(store, row["sha256"], row["relpath"], ts)
                report.evicted_files += 1
                report.evicted_bytes += int(row["bytes"])
                report.used_bytes -= int(row["bytes"])
                report.files -= 1
            if report.evicted_files:
                log.info("retention: evicted %d %s file(s), %d bytes (oldest first)", report.evicted_files, name,
                         report.evicted_bytes)
    report.state = state_of(report.used_bytes, budget, alarm_fraction)
    return report


def state_of(used: int, budget: int, alarm_fraction: float) -> str:
    if used > budget:
        return "blocked"  # eviction could not get under the budget: everything left is held
    if used >= budget * alarm_fraction:
        return "alarm"
    return "ok"


def _evict_one(store: Store, sha256: str, relpath: str, now: float) -> None:
    # The file goes first: a crash between the two leaves a row that says "live" for a missing file,
    # which the next pass evicts again (unlink of a missing file is fine); never the other way round.
    (store.evidence_dir / relpath).unlink(missing_ok=True)
    with store.transaction() as conn:
        conn.execute("UPDATE evidence SET evicted_at = ? WHERE sha256 = ?", (now, sha256))
        conn.execute(
            "UPDATE crossings SET evidence_evicted_at = ? WHERE id IN ("
            "SELECT crossing_id FROM observations WHERE evidence_sha256 = ? "
            "UNION SELECT crossing_id FROM xray_results WHERE evidence_sha256 = ? AND crossing_id IS NOT NULL)",
            (now, sha256, sha256),
        )
