"""Passenger-lane passages in the store: the verdict, its reasons and facts, and its outbox event,
written in one transaction (so a verdict is never stored without its event, nor sent without being
stored). No biometric data: the face crop stays encrypted in the faces store, named by its sha256."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from appliance.store.db import Store

if TYPE_CHECKING:
    from appliance.lanes.passenger import PassageResult

PassageEventBuilder = Callable[["PassageResult"], Mapping[str, Any]]


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


def list_passages(store: Store, limit: int = 100) -> list[PassageRow]:
    with store.transaction() as conn:
        rows = conn.execute(
            "SELECT id, lane_id, started_at, ended_at, decision, reasons, facts, crop_sha256, models FROM passages "
            "ORDER BY started_at DESC LIMIT ?",
            (limit,),
        ).fetchall()
    return [PassageRow(r[0], r[1], r[2], r[3], r[4], json.loads(r[5]), json.loads(r[6]), r[7], json.loads(r[8]))
            for r in rows]
