"""The inspectors' queue: undecided REVIEW/HOLD crossings first, newest first, then all the others.

One ordering, served by the ``crossings_queue`` expression index of migration 5, so a page of
the queue is an index walk (a deep page skips index entries, never table rows) followed by a
primary-key look-up of the page's rows. ``PENDING`` must stay textually the index's expression,
or SQLite stops using the index.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from appliance.store.db import Store

PENDING = "(decision IN ('REVIEW', 'HOLD') AND reviewed_at IS NULL)"
QUEUE_ORDER = f"{PENDING} DESC, ended_at DESC, id DESC"
QUEUE_IDS_SQL = f"SELECT id FROM crossings ORDER BY {QUEUE_ORDER} LIMIT ? OFFSET ?"
COLUMNS = ("id, lane_id, started_at, ended_at, decision, declaration, summary_json, reviewed_at, review_action, "
           "reasons_json")


@dataclass(frozen=True)
class QueueRow:
    """A crossing as lists show it (the summary keeps the settled reads)."""

    id: str
    lane_id: str
    started_at: float
    ended_at: float
    decision: str
    declaration: str | None
    summary: dict[str, Any]
    reviewed_at: float | None
    review_action: str | None
    reasons: tuple[dict[str, Any], ...] = ()  # the verdict's reasons (an X-ray revision adds its own)

    @property
    def pending(self) -> bool:
        """REVIEW or HOLD, and no inspector has approved or held it yet."""
        return self.decision in ("REVIEW", "HOLD") and self.reviewed_at is None


def _reasons(raw: str | None) -> tuple[dict[str, Any], ...]:
    try:
        value = json.loads(raw or "[]")
    except ValueError:
        return ()
    return tuple(r for r in value if isinstance(r, dict)) if isinstance(value, list) else ()


def queue_row(row: sqlite3.Row) -> QueueRow:
    return QueueRow(row["id"], row["lane_id"], row["started_at"], row["ended_at"], row["decision"],
                    row["declaration"], json.loads(row["summary_json"]), row["reviewed_at"], row["review_action"],
                    _reasons(row["reasons_json"]))


def rows_by_id(store: Store, ids: Sequence[str]) -> list[QueueRow]:
    """The rows of ``ids``, in that order."""
    if not ids:
        return []
    marks = ",".join("?" * len(ids))
    found = {r["id"]: queue_row(r) for r in store.query(f"SELECT {COLUMNS} FROM crossings WHERE id IN ({marks})", ids)}
    return [found[i] for i in ids if i in found]


def get(store: Store, crossing_id: str) -> QueueRow | None:
    rows = rows_by_id(store, [crossing_id])
    return rows[0] if rows else None


def page(store: Store, offset: int, limit: int) -> tuple[list[QueueRow], bool]:
    """One page of the queue and whether another page follows."""
    ids = [r[0] for r in store.query(QUEUE_IDS_SQL, (limit + 1, offset))]
    return rows_by_id(store, ids[:limit]), len(ids) > limit


def by_decision(store: Store, decision: str, offset: int, limit: int) -> tuple[list[QueueRow], bool]:
    """One page of the crossings with the lane's verdict ``decision``, newest first."""
    ids = [r[0] for r in store.query(
        "SELECT id FROM crossings WHERE decision = ? ORDER BY ended_at DESC, id DESC LIMIT ? OFFSET ?",
        (decision, limit + 1, offset))]
    return rows_by_id(store, ids[:limit]), len(ids) > limit


def pending_count(store: Store) -> int:
    return int(store.query(f"SELECT COUNT(*) FROM crossings WHERE {PENDING} = 1")[0][0])


def stamp(store: Store) -> str:
    """Changes whenever a crossing, a decision or a verdict revision (X-ray) is added: the queue's scripts poll it."""
    row = store.query("SELECT (SELECT MAX(rowid) FROM crossings), (SELECT MAX(id) FROM decisions), "
                      "(SELECT MAX(id) FROM verdict_revisions)")[0]
    return f"{row[0] or 0}.{row[1] or 0}.{row[2] or 0}"


def neighbours(store: Store, current: QueueRow) -> tuple[str | None, str | None]:
    """(previous, next) crossing ids for the review page's j/k keys.

    Next: the next older crossing still to review; else the newest one still to review (after the
    inspector decided the oldest); else the next older crossing. Previous: the next newer one still to
    review, else the next newer crossing.
    """
    key = (current.ended_at, current.ended_at, current.id)
    older = "ended_at <= ? AND (ended_at < ? OR id < ?)"  # a range on ended_at: an index seek, not a scan
    newer = "ended_at >= ? AND (ended_at > ? OR id > ?)"

    def first(where: str, params: tuple[Any, ...], order: str) -> str | None:
        rows = store.query(f"SELECT id FROM crossings WHERE {where} ORDER BY {order} LIMIT 1", params)
        return str(rows[0][0]) if rows else None

    desc, asc = f"{PENDING} DESC, ended_at DESC, id DESC", f"{PENDING} DESC, ended_at ASC, id ASC"
    nxt = (first(f"{PENDING} = 1 AND {older}", key, desc)
           or first(f"{PENDING} = 1 AND id <> ?", (current.id,), desc)
           or first(older, key, "ended_at DESC, id DESC"))
    prev = (first(f"{PENDING} = 1 AND {newer}", key, asc)
            or first(newer, key, "ended_at ASC, id ASC"))
    return prev, nxt
