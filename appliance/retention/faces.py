"""The ``faces`` class: sealed face crops in the face store, evicted oldest first under their budget.

Only crops go (templates expire by their own TTL, ``appliance faces purge``). A crop stays while the face
store's own ``legal_hold`` flag is set, while its passage or crossing is held in the main store (legal hold,
undecided), or while an undelivered event names it. Rows are deleted with ``secure_delete`` and the WAL is
truncated, as the face store's own purge does; the file's freed pages are reused, not returned to the disk.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from contextlib import closing
from pathlib import Path

from appliance.retention.evict import ClassReport, read_connection, state_of
from appliance.retention.protect import OPEN_CROSSING, crossing_hold, undelivered_event_names
from appliance.store.db import Store

log = logging.getLogger(__name__)


def _open(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), timeout=30, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA secure_delete=ON")
    return conn


def evict_faces(store: Store, face_store: Path, budget: int | None, target_fraction: float, alarm_fraction: float,
                orphan_grace_s: float, now: float | None = None) -> ClassReport:
    ts = time.time() if now is None else now
    if not face_store.is_file():
        return ClassReport("faces", budget, 0, 0, state="unbudgeted" if budget is None else "ok")
    with closing(_open(face_store)) as faces, closing(read_connection(str(store.path))) as main:
        row = faces.execute("SELECT count(*), coalesce(sum(length(ciphertext)), 0) FROM face_crops").fetchone()
        report = ClassReport("faces", budget, int(row[1]), int(row[0]))
        if budget is None:
            report.state = "unbudgeted"
            return report
        if report.used_bytes > budget:
            goal = int(budget * target_fraction)
            crops = faces.execute("SELECT sha256, crossing_id, created_at, legal_hold, length(ciphertext) AS n "
                                  "FROM face_crops ORDER BY created_at, sha256").fetchall()
            doomed: list[str] = []
            for crop in crops:
                if report.used_bytes <= goal:
                    break
                reason = _crop_hold(main, crop, ts, orphan_grace_s)
                if reason is not None:
                    report.held[reason] = report.held.get(reason, 0) + int(crop["n"])
                    continue
                doomed.append(crop["sha256"])
                report.used_bytes -= int(crop["n"])
                report.files -= 1
                report.evicted_files += 1
                report.evicted_bytes += int(crop["n"])
            if doomed:
                faces.execute("BEGIN IMMEDIATE")
                faces.executemany("DELETE FROM face_crops WHERE sha256 = ? AND legal_hold = 0",
                                  [(s,) for s in doomed])
                faces.execute("COMMIT")
                try:
                    faces.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                except sqlite3.Error as exc:  # a reader holds the WAL: the next checkpoint finishes it
                    log.warning("retention: face store WAL checkpoint did not finish: %s", exc)
                log.info("retention: evicted %d face crop(s), %d bytes (oldest first)", len(doomed),
                         report.evicted_bytes)
    report.state = state_of(report.used_bytes, budget, alarm_fraction)
    return report


def _crop_hold(main: sqlite3.Connection, crop: sqlite3.Row, now: float, orphan_grace_s: float) -> str | None:
    if crop["legal_hold"]:
        return "legal_hold"
    owner = crop["crossing_id"]
    if owner:
        reason = crossing_hold(main, owner)
        if reason is not None:
            return reason
        if undelivered_event_names(main, owner, crop["created_at"]) or undelivered_event_names(
                main, crop["sha256"], crop["created_at"]):
            return "undelivered"
    elif now - crop["created_at"] < orphan_grace_s:
        return OPEN_CROSSING
    return None
