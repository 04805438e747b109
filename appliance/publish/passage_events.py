"""Passenger verdict events: one CloudEvents 1.0 JSON envelope per passage of the passenger lane.

Built and signed exactly like the cargo verdict events (appliance/publish/events.py: Ed25519 over
the canonical JSON without ``sig``; a deterministic ``id`` per passage, so a redelivery is the same
bytes). The data holds no biometric data and no identity: no face image, no descriptor, no name,
no document number. Central learns the decision, its reasons, which checks passed and the model
that matched; an officer on the box sees the rest. Schema: ``docs/schemas/passage-verdict-event.v1.json``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from appliance.publish.events import EVENT_NAMESPACE, SPECVERSION, SignsLikeVerdicts, _iso, sign_event

if TYPE_CHECKING:
    from appliance.lanes.passenger import PassageResult

EVENT_TYPE = "vn.smartgate.passage.verdict.v1"
DATASCHEMA = "urn:smartgate:schema:passage-verdict-event:v1"
SCHEMA_FILE = "docs/schemas/passage-verdict-event.v1.json"


def passage_event_id(gate: str, box_id: str, passage_id: str) -> str:
    return str(uuid.uuid5(EVENT_NAMESPACE, f"{gate}/{box_id}/{passage_id}/passage-verdict"))


@dataclass
class PassageEventBuilder(SignsLikeVerdicts):

    def __call__(self, result: PassageResult) -> dict[str, Any]:
        event: dict[str, Any] = {
            "specversion": SPECVERSION,
            "id": passage_event_id(self.gate, self.box_id, result.passage_id),
            "source": f"smartgate/{self.gate}/{result.lane_id}/{self.box_id}",
            "type": EVENT_TYPE,
            "subject": result.passage_id,
            "time": _iso(result.ended_at),
            "datacontenttype": "application/json",
            "dataschema": DATASCHEMA,
            "data": passage_data(result, gate=self.gate, box_id=self.box_id),
        }
        if self.signing_key is not None:
            event = sign_event(event, self.signing_key)
        return event


def passage_data(result: PassageResult, *, gate: str, box_id: str) -> dict[str, Any]:
    """The ``data`` member: outcomes and scores only (see the module docstring)."""
    f = result.facts
    return {
        "passage_id": result.passage_id,
        "gate": gate,
        "box_id": box_id,
        "lane_id": result.lane_id,
        "started_at": _iso(result.started_at),
        "ended_at": _iso(result.ended_at),
        "decision": result.verdict.decision,
        "reasons": [{"code": r.code, "detail": r.detail} for r in result.verdict.reasons],
        "checks": {
            "document_read": f.document_read,
            "document_valid": f.document_read and f.document_problem is None,
            "document_listed": f.document_listed,
            "reference": f.reference,
            "frames_with_face": f.frames_with_face,
            "most_faces": f.most_faces,
            "quality_ok": f.frames_with_face > 0 and not f.quality_reasons,
            "live": f.live,
            "match_distance": f.match_distance,
            "face_listed": f.watchlist_distance is not None and any(r.code == "face_listed"
                                                                   for r in result.verdict.reasons),
        },
        "models": list(result.models),
    }
