"""Every actuator command, acknowledgement, fault and alarm: one append-only SQLite row and one signed
outbox event, written in the same transaction (so central sees exactly what the box recorded).

Rows live in ``actuator_log`` (store migration "lane actuators"); each lane's cycle state lives in
``actuator_state``: which crossing the barrier is open for, the last command number, the end time of
the last crossing acted on. A restart that finds a state other than ``idle`` stopped mid-crossing.

Events: ``vn.smartgate.actuator.command.v1`` (commands and acknowledgements, docs/schemas/
actuator-command-event.v1.json) and ``vn.smartgate.actuator.alarm.v1`` (faults and alarms,
docs/schemas/actuator-alarm-event.v1.json), signed like the verdict events.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
import uuid
from dataclasses import dataclass
from typing import Any

from appliance.publish.events import SPECVERSION, SignsLikeVerdicts, _iso, sign_event
from appliance.store.db import Store

log = logging.getLogger(__name__)

COMMAND_TYPE = "vn.smartgate.actuator.command.v1"
COMMAND_SCHEMA = "urn:smartgate:schema:actuator-command-event:v1"
ALARM_TYPE = "vn.smartgate.actuator.alarm.v1"
ALARM_SCHEMA = "urn:smartgate:schema:actuator-alarm-event:v1"
RECORDS = ("command", "ack", "fault", "alarm", "note")
STATES = ("idle", "opening", "open", "closing", "fault")


@dataclass(frozen=True)
class CycleState:
    state: str
    crossing_id: str | None
    fleet_id: str | None
    last_seq: int
    last_ended_at: float | None


@dataclass
class ActuatorEventBuilder(SignsLikeVerdicts):
    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        alarm = row["record"] in ("fault", "alarm")
        event: dict[str, Any] = {
            "specversion": SPECVERSION,
            "id": row["event_id"],
            "source": f"smartgate/{self.gate}/{row['lane_id']}/{self.box_id}",
            "type": ALARM_TYPE if alarm else COMMAND_TYPE,
            "subject": row["crossing_id"] or row["lane_id"],
            "time": _iso(row["ts"]),
            "datacontenttype": "application/json",
            "dataschema": ALARM_SCHEMA if alarm else COMMAND_SCHEMA,
            "data": {
                "gate": self.gate, "box_id": self.box_id, "lane_id": row["lane_id"],
                "crossing_id": row["crossing_id"], "seq": row["seq"], "actuator": row["actuator"],
                "record": row["record"], "action": row["action"], "code": row["code"],
                "detail": row["detail"], "at": _iso(row["ts"]),
            },
        }
        if self.signing_key is not None:
            event = sign_event(event, self.signing_key)
        return event


class ActuatorAudit:
    """Writes the audit rows of one lane; thread-safe through the store's lock."""

    def __init__(self, store: Store, lane_id: str, events: ActuatorEventBuilder):
        self.store = store
        self.lane_id = lane_id
        self.events = events

    def write(self, record: str, actuator: str, action: str, seq: int, crossing_id: str | None = None,
              code: str | None = None, detail: dict[str, Any] | None = None,
              state: dict[str, Any] | None = None) -> str:
        """One audit row + its outbox event (+ a cycle-state change, when given) in one transaction."""
        assert record in RECORDS, record
        row = {"ts": time.time(), "lane_id": self.lane_id, "crossing_id": crossing_id, "seq": seq,
               "actuator": actuator, "record": record, "action": action, "code": code,
               "detail": detail or {}, "event_id": str(uuid.uuid4())}
        event = self.events(row)
        with self.store.transaction() as conn:
            conn.execute(
                "INSERT INTO actuator_log (ts, lane_id, crossing_id, seq, actuator, record, action, code, "
                "detail_json, event_id) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (row["ts"], self.lane_id, crossing_id, seq, actuator, record, action, code,
                 json.dumps(row["detail"], ensure_ascii=False, sort_keys=True), row["event_id"]))
            if state is not None:
                self._set_state(conn, **state)
            self.store.enqueue_in(conn, event, self.lane_id, crossing_id)
        self.store.notify_outbox()
        return str(row["event_id"])

    def _set_state(self, conn: sqlite3.Connection, **changes: Any) -> None:
        assert set(changes) <= {"state", "crossing_id", "fleet_id", "last_seq", "last_ended_at"}, changes
        if "state" in changes:
            assert changes["state"] in STATES, changes
        conn.execute("INSERT OR IGNORE INTO actuator_state (lane_id, state, last_seq, updated_at) "
                     "VALUES (?, 'idle', 0, ?)", (self.lane_id, time.time()))
        sets = ", ".join(f"{k} = ?" for k in changes)
        conn.execute(f"UPDATE actuator_state SET {sets}, updated_at = ? WHERE lane_id = ?",
                     (*changes.values(), time.time(), self.lane_id))

    def set_state(self, **changes: Any) -> None:
        with self.store.transaction() as conn:
            self._set_state(conn, **changes)

    def load_state(self) -> CycleState:
        rows = self.store.query("SELECT state, crossing_id, fleet_id, last_seq, last_ended_at FROM actuator_state "
                                "WHERE lane_id = ?", (self.lane_id,))
        if not rows:
            return CycleState("idle", None, None, 0, None)
        r = rows[0]
        return CycleState(r["state"], r["crossing_id"], r["fleet_id"], int(r["last_seq"]), r["last_ended_at"])

    def acted_on(self, crossing_id: str) -> bool:
        """Whether a verdict or approval of this crossing was already acted on (a duplicate otherwise)."""
        return bool(self.store.query(
            "SELECT 1 FROM actuator_log WHERE lane_id = ? AND crossing_id = ? AND record = 'note' "
            "AND action IN ('verdict', 'approval') LIMIT 1", (self.lane_id, crossing_id)))

    def rows(self, crossing_id: str | None = None) -> list[sqlite3.Row]:
        if crossing_id is None:
            return self.store.query("SELECT * FROM actuator_log WHERE lane_id = ? ORDER BY id", (self.lane_id,))
        return self.store.query("SELECT * FROM actuator_log WHERE lane_id = ? AND crossing_id = ? ORDER BY id",
                                (self.lane_id, crossing_id))


def dead_letter(store: Store, topic: str, payload: bytes, reason: str) -> None:
    """Keep a rejected fleet message (its size, hash and first bytes) in the store's dead letters."""
    import hashlib

    with store.transaction() as conn:
        conn.execute(
            "INSERT INTO dead_letters (received_at, topic, reason, payload_bytes, payload_sha256, payload_head) "
            "VALUES (?,?,?,?,?,?)",
            (time.time(), topic, reason[:500], len(payload), hashlib.sha256(payload).hexdigest(),
             payload[:256].decode("utf-8", errors="replace")))
