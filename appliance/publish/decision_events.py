"""Inspector decision events: one CloudEvents 1.0 JSON envelope per decision an officer takes.

When the lane cannot clear a crossing (REVIEW or HOLD) an inspector approves it, holds it, or
corrects one of its reads (appliance/store/decisions.py). Each decision goes out through the
same outbox as the verdicts, in the decision's own transaction, so central sees the officer's
decision next to the machine's. The envelope is built and signed exactly like a verdict event
(see appliance/publish/events.py: Ed25519 over the canonical JSON without ``sig``); receivers
verify it with ``verify_event`` and dedupe on ``id`` (a uuid4 kept in the decisions table, so a
redelivery is the same stored bytes). The data schema is ``docs/schemas/inspector-decision-event.v1.json``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from appliance.publish.events import SignsLikeVerdicts, _iso

EVENT_TYPE = "vn.smartgate.inspector.decision.v1"
DATASCHEMA = "urn:smartgate:schema:inspector-decision-event:v1"
SCHEMA_FILE = "docs/schemas/inspector-decision-event.v1.json"
DEFAULT_BOX_ID = "local"


@dataclass(frozen=True)
class DecisionFacts:
    """What one decision says (a row of the decisions table plus the crossing it is about)."""

    decision_id: int
    event_id: str
    crossing_id: str
    lane_id: str
    machine_decision: str  # the lane's verdict: CLEAR, REVIEW or HOLD
    action: str  # approve, hold or correct
    field: str | None
    old_value: str | None
    new_value: str | None
    reason: str
    evidence_sha256: str | None
    username: str
    role: str
    ts: float


@dataclass
class DecisionEventBuilder(SignsLikeVerdicts):
    """Builds (and signs, when a key is given) the event of an inspector's decision."""

    box_id: str = DEFAULT_BOX_ID

    def __call__(self, facts: DecisionFacts) -> dict[str, Any]:
        return self.envelope(event_id=facts.event_id, lane_id=facts.lane_id, event_type=EVENT_TYPE,
                             subject=facts.crossing_id, ts=facts.ts, dataschema=DATASCHEMA,
                             data=decision_data(facts, gate=self.gate, box_id=self.box_id))


def decision_data(facts: DecisionFacts, *, gate: str, box_id: str) -> dict[str, Any]:
    """The ``data`` member of a decision event (see the JSON Schema)."""
    return {
        "decision_id": facts.decision_id,
        "crossing_id": facts.crossing_id,
        "gate": gate,
        "box_id": box_id,
        "lane_id": facts.lane_id,
        "machine_decision": facts.machine_decision,
        "action": facts.action,
        "field": facts.field,
        "old_value": facts.old_value,
        "new_value": facts.new_value,
        "evidence_sha256": facts.evidence_sha256,
        "reason": facts.reason,
        "inspector": {"username": facts.username, "role": facts.role},
        "decided_at": _iso(facts.ts),
    }


def is_decision_event(event: Mapping[str, Any]) -> bool:
    return event.get("type") == EVENT_TYPE
