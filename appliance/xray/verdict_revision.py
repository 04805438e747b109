"""An X-ray alarm revises the verdict of the crossing its scan is tied to.

When a scan tied to a crossing alarms (the anomaly score reached its operating threshold, or the
manifest-consistency check found the goods or the quantity not as declared), the crossing's verdict
is revised, in the same SQLite transaction that stores the X-ray result
(``appliance.xray.results.save_xray_result`` calls ``revise_in``):

- CLEAR becomes REVIEW; REVIEW and HOLD stay. Verdicts are never downgraded: a clear scan changes
  nothing, and an alarm never turns HOLD into REVIEW.
- The X-ray reasons are added to the crossing's reasons (``xray_anomaly``, ``xray_goods_mismatch``,
  ``xray_quantity_mismatch``, severity REVIEW, field ``xray``), shaped like the lane's own reasons
  (``appliance.verdicts.rules.Reason``), so every page and event that lists reasons shows them.
- An inspector who already approved or held the crossing is not overridden silently: the crossing's
  review state is cleared, so it is back in the inspectors' queue ("to review"), and the revision
  says which decision it reopened. The decision itself stays in the decision history.
- One row in ``verdict_revisions`` (numbered per crossing), one hash-chained audit entry (actor
  ``xray``) and one outbox event ``vn.smartgate.verdict.revised.v1``
  (``docs/schemas/verdict-revised-event.v1.json``; docs/XRAY.md says why it is a new event type and
  not a second verdict event).

A revision never moves an actuator: the lane's controller opens the barrier only on the CLEAR verdict
it was handed when the crossing closed, or on an inspector's ``approve`` decision
(appliance/actuators/controller.py); a revision is neither.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from appliance.publish.events import EVENT_NAMESPACE, SignsLikeVerdicts, _iso
from appliance.store import audit
from appliance.store.db import Store
from appliance.verdicts.rules import Reason

if TYPE_CHECKING:
    from appliance.xray.results import XrayReport

log = logging.getLogger(__name__)

EVENT_TYPE = "vn.smartgate.verdict.revised.v1"
DATASCHEMA = "urn:smartgate:schema:verdict-revised-event:v1"
SCHEMA_FILE = "docs/schemas/verdict-revised-event.v1.json"

XRAY_ANOMALY = "xray_anomaly"
XRAY_GOODS_MISMATCH = "xray_goods_mismatch"
XRAY_QUANTITY_MISMATCH = "xray_quantity_mismatch"
REASON_CODES = (XRAY_ANOMALY, XRAY_GOODS_MISMATCH, XRAY_QUANTITY_MISMATCH)
FIELD = "xray"
CAUSE = "xray"  # verdict_revisions.cause and the audit entry's actor
_RANK = {"CLEAR": 0, "REVIEW": 1, "HOLD": 2}


def _number(value: float) -> str:
    return f"{value:.2f}" if abs(value) < 100 else f"{value:.0f}"


def _truthy(value: Any) -> bool:
    return value in (True, 1, "true")


def xray_reasons(anomaly_alarm: bool, score: float, threshold: float, consistency: Mapping[str, Any] | None,
                 declared_goods: str | None, declared_quantity: float | None) -> list[Reason]:
    """The reasons an X-ray result gives to revise its crossing's verdict (empty for a clear scan).

    ``read`` is what the scan showed, ``expected`` what it was held against: the anomaly score against
    its threshold (``read`` "4.12 ≥ 3.00", no ``expected``), the predicted goods class against the
    declared one, the estimated quantity against the declared one. Only a judged consistency check
    (``decided``) that raised its alarm counts, as ``appliance.xray.results.tdr`` decides.
    """
    reasons: list[Reason] = []
    if anomaly_alarm:
        reasons.append(Reason(XRAY_ANOMALY, "REVIEW", FIELD, f"{_number(score)} ≥ {_number(threshold)}", None))
    c = consistency or {}
    if _truthy(c.get("alarm")) and _truthy(c.get("decided", True)):
        if c.get("goods_consistent") is False:
            predicted = c.get("predicted")
            reasons.append(Reason(XRAY_GOODS_MISMATCH, "REVIEW", FIELD, str(predicted) if predicted else None,
                                  declared_goods))
        if c.get("quantity_consistent") is False:
            estimate = c.get("quantity_estimate")
            reasons.append(Reason(
                XRAY_QUANTITY_MISMATCH, "REVIEW", FIELD,
                _number(float(estimate)) if isinstance(estimate, int | float) else None,
                _number(float(declared_quantity)) if declared_quantity is not None else None))
        if not any(r.code in (XRAY_GOODS_MISMATCH, XRAY_QUANTITY_MISMATCH) for r in reasons):
            # An alarm that names neither check (an older or foreign result): still a mismatch to look at.
            reasons.append(Reason(XRAY_GOODS_MISMATCH, "REVIEW", FIELD, None, declared_goods))
    return reasons


@dataclass(frozen=True)
class Revision:
    """One revision of a crossing's verdict (a row of ``verdict_revisions``)."""

    crossing_id: str
    lane_id: str
    revision: int  # 1 for the crossing's first revision
    scan_id: str
    previous_decision: str
    decision: str
    reasons_added: tuple[Reason, ...]
    reasons: tuple[dict[str, Any], ...]  # all the crossing's reasons after the revision
    reopened_action: str | None  # the inspector's decision ("approve" / "hold") it put back into the queue
    reopened_at: float | None  # when that decision was taken
    ts: float
    event_id: str


def revision_event_id(gate: str, box_id: str, crossing_id: str, scan_id: str) -> str:
    """Deterministic (the same on every redelivery): one revision per crossing and scan."""
    return str(uuid.uuid5(EVENT_NAMESPACE, f"{gate}/{box_id}/{crossing_id}/verdict-revision/{scan_id}"))


def _reason_dict(r: Reason | Mapping[str, Any]) -> dict[str, Any]:
    d = dict(r.__dict__) if isinstance(r, Reason) else dict(r)
    return {"code": str(d.get("code", "")), "severity": d.get("severity", "REVIEW"), "field": d.get("field", ""),
            "read": d.get("read"), "expected": d.get("expected")}


@dataclass
class RevisionEventBuilder(SignsLikeVerdicts):
    """Builds (and signs, when a key is given) the event of a verdict revision."""

    def __call__(self, rev: Revision) -> dict[str, Any]:
        return self.envelope(
            event_id=rev.event_id, lane_id=rev.lane_id, event_type=EVENT_TYPE, subject=rev.crossing_id, ts=rev.ts,
            dataschema=DATASCHEMA, data={
                "crossing_id": rev.crossing_id,
                "gate": self.gate,
                "box_id": self.box_id,
                "lane_id": rev.lane_id,
                "revision": rev.revision,
                "previous_decision": rev.previous_decision,
                "decision": rev.decision,
                "reasons_added": [_reason_dict(r) for r in rev.reasons_added],
                "reasons": [_reason_dict(r) for r in rev.reasons],
                "cause": {"kind": CAUSE, "scan_id": rev.scan_id},
                "reopened_review": None if rev.reopened_action is None else {
                    "action": rev.reopened_action,
                    "reviewed_at": _iso(rev.reopened_at) if rev.reopened_at is not None else None},
                "revised_at": _iso(rev.ts),
            })


def revise_in(conn: sqlite3.Connection, store: Store, crossing_id: str, scan_id: str, reasons: list[Reason],
              events: RevisionEventBuilder | None, now: float) -> Revision | None:
    """Revise the crossing's verdict inside the caller's open transaction (the X-ray result's).

    Returns the revision, or None when there is nothing to revise: no reasons (a clear scan), no such
    crossing, or every reason already on it. With ``events`` the revision's event goes into the
    outbox; the caller calls ``store.notify_outbox()`` after its commit.
    """
    if not reasons:
        return None
    row = conn.execute("SELECT lane_id, decision, reasons_json, reviewed_at, review_action FROM crossings "
                       "WHERE id = ?", (crossing_id,)).fetchone()
    if row is None:
        return None
    try:
        current = json.loads(row["reasons_json"])
    except ValueError:
        current = []
    current = [r for r in current if isinstance(r, dict)] if isinstance(current, list) else []
    have = {json.dumps(_reason_dict(r), sort_keys=True) for r in current}
    added = tuple(r for r in reasons if json.dumps(_reason_dict(r), sort_keys=True) not in have)
    if not added:
        return None
    previous = str(row["decision"])
    decision = previous
    for r in added:
        if _RANK[r.severity] > _RANK.get(decision, 0):
            decision = r.severity
    reopened = row["review_action"] if row["reviewed_at"] is not None else None
    all_reasons = tuple(current + [_reason_dict(r) for r in added])
    number = int(conn.execute("SELECT COALESCE(MAX(revision), 0) + 1 FROM verdict_revisions WHERE crossing_id = ?",
                              (crossing_id,)).fetchone()[0])
    gate, box_id = (events.gate, events.box_id) if events is not None else ("-", "local")
    rev = Revision(crossing_id, str(row["lane_id"]), number, scan_id, previous, decision, added, all_reasons,
                   reopened, row["reviewed_at"], now, revision_event_id(gate, box_id, crossing_id, scan_id))
    conn.execute("UPDATE crossings SET decision = ?, reasons_json = ?, reviewed_at = NULL, review_action = NULL "
                 "WHERE id = ?", (decision, json.dumps(list(all_reasons), ensure_ascii=False), crossing_id))
    conn.execute(
        "INSERT INTO verdict_revisions (crossing_id, revision, ts, cause, scan_id, previous_decision, decision, "
        "reasons_json, reopened_action, reopened_at, event_id) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        (crossing_id, number, now, CAUSE, scan_id, previous, decision,
         json.dumps([_reason_dict(r) for r in added], ensure_ascii=False), reopened, row["reviewed_at"],
         rev.event_id))
    audit.append(conn, CAUSE, "verdict_revised", crossing_id,
                 {"revision": number, "scan_id": scan_id, "previous_decision": previous, "decision": decision,
                  "reasons": [r.code for r in added], "reopened_action": reopened}, now=now)
    if events is not None:
        store.enqueue_in(conn, events(rev), rev.lane_id, crossing_id)
    return rev


def revise_for_xray(conn: sqlite3.Connection, store: Store, report: XrayReport,
                    builder: SignsLikeVerdicts | None) -> Revision | None:
    """``revise_in`` for a freshly stored X-ray result (``save_xray_result``, inside its transaction); the
    revision's event is signed like the X-ray event (``builder``: its builder, None for no events)."""
    if report.crossing_id is None:
        return None
    a = report.anomaly
    reasons = xray_reasons(a.alarm, a.score, a.threshold, report.consistency, report.meta.declared_goods,
                           report.meta.declared_quantity)
    events = RevisionEventBuilder(builder.gate, builder.box_id, builder.signing_key) if builder is not None else None
    rev = revise_in(conn, store, report.crossing_id, report.scan_id, reasons, events, time.time())
    if rev is not None:
        log.info("crossing %s: verdict revised %s -> %s by x-ray scan %s (%s)%s", rev.crossing_id,
                 rev.previous_decision, rev.decision, report.scan_id[:12], ", ".join(r.code for r in rev.reasons_added),
                 f"; the inspector's '{rev.reopened_action}' is back in the queue" if rev.reopened_action else "")
    return rev


@dataclass(frozen=True)
class RevisionRow:
    """A stored revision, as the review page lists it."""

    revision: int
    ts: float
    scan_id: str | None
    previous_decision: str
    decision: str
    reasons: list[dict[str, Any]]
    reopened_action: str | None


def revisions(store: Store, crossing_id: str) -> list[RevisionRow]:
    """The crossing's verdict revisions, oldest first."""
    out = []
    for r in store.query("SELECT revision, ts, scan_id, previous_decision, decision, reasons_json, reopened_action "
                         "FROM verdict_revisions WHERE crossing_id = ? ORDER BY revision", (crossing_id,)):
        try:
            reasons = json.loads(r["reasons_json"])
        except ValueError:
            reasons = []
        out.append(RevisionRow(int(r["revision"]), float(r["ts"]), r["scan_id"], r["previous_decision"],
                               r["decision"], reasons if isinstance(reasons, list) else [], r["reopened_action"]))
    return out
