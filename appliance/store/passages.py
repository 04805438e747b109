"""Passenger-lane passages in the store: the verdict, its reasons and facts, and its outbox event,
written in one transaction (so a verdict is never stored without its event, nor sent without being
stored). No biometric data: the face crop stays encrypted in the faces store, named by its sha256.
The web UI (appliance/web/passages.py) reads them back with ``page_passages``, ``passage_counts`` and
``get_passage``; ``person_ref`` is never read back here."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from appliance.store.db import Store

if TYPE_CHECKING:
    from appliance.lanes.passenger import PassageResult

PassageEventBuilder = Callable[["PassageResult"], Mapping[str, Any]]
DECISIONS = ("OPEN", "DENY", "MANUAL")  # the CHECK of the passages table (migration 7)
_COLUMNS = "id, lane_id, started_at, ended_at, decision, reasons, facts, crop_sha256, models"
_ORDER = "started_at DESC, id DESC"  # newest first; ids break ties so pages never overlap


@dataclass(frozen=True)
class PassageRow:
    id: str
    lane_id: str
    started_at: float
    ended_at: float
    decision: str
    reasons: list[dict[str, str]]
    facts: dict[str, Any]
    crop_sha256: str | None
    models: list[str]


def save_passage(store: Store, result: PassageResult, event_builder: PassageEventBuilder | None) -> None:
    event = event_builder(result) if event_builder is not None else None
    with store.transaction() as conn:
        conn.execute(
            "INSERT INTO passages (id, lane_id, started_at, ended_at, decision, reasons, facts, person_ref, "
            "crop_sha256, models) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (
                result.passage_id,
                result.lane_id,
                result.started_at,
                result.ended_at,
                result.verdict.decision,
                json.dumps([asdict(r) for r in result.verdict.reasons], ensure_ascii=False),
                json.dumps(asdict(result.facts), ensure_ascii=False),
                result.person_ref,
                result.crop_sha256,
                json.dumps(list(result.models)),
            ),
        )
        if event is not None:
            store.enqueue_in(conn, event, result.lane_id, None)
    if event is not None:
        store.notify_outbox()


def _row(r: Sequence[Any]) -> PassageRow:
    return PassageRow(r[0], r[1], r[2], r[3], r[4], json.loads(r[5]), json.loads(r[6]), r[7], json.loads(r[8]))


def list_passages(store: Store, limit: int = 100) -> list[PassageRow]:
    with store.transaction() as conn:
        rows = conn.execute(
            f"SELECT {_COLUMNS} FROM passages ORDER BY {_ORDER} LIMIT ?",
            (limit,),
        ).fetchall()
    return [_row(r) for r in rows]


def get_passage(store: Store, passage_id: str) -> PassageRow | None:
    """One passage by its id, or None."""
    rows = store.query(f"SELECT {_COLUMNS} FROM passages WHERE id = ?", (passage_id,))
    return _row(rows[0]) if rows else None


def page_passages(store: Store, decision: str | None = None, offset: int = 0,
                  limit: int = 50) -> tuple[list[PassageRow], bool]:
    """One page of passages, newest first, of one decision (None: all); and whether a next page exists."""
    if decision is not None and decision not in DECISIONS:
        raise ValueError(f"decision must be one of {', '.join(DECISIONS)}, got {decision!r}")
    where, params = ("WHERE decision = ?", [decision]) if decision is not None else ("", [])
    rows = store.query(f"SELECT {_COLUMNS} FROM passages {where} ORDER BY {_ORDER} LIMIT ? OFFSET ?",
                       (*params, limit + 1, offset))
    return [_row(r) for r in rows[:limit]], len(rows) > limit


def passage_counts(store: Store) -> dict[str, int]:
    """How many passages there are per decision (every decision present, 0 when none)."""
    counts = dict.fromkeys(DECISIONS, 0)
    for decision, n in store.query("SELECT decision, COUNT(*) FROM passages GROUP BY decision"):
        counts[str(decision)] = int(n)
    return counts
