"""Inspectors' decisions on crossings: approve, hold, or correct one read, always with a reason.

``record`` writes, in one ``BEGIN IMMEDIATE`` transaction: the decision row, the crossing's review
state (approve and hold decide the crossing: it leaves the queue's "to review" part; a correction
does not), the corrected value's search key, the hash-chained audit entry and the signed
"inspector decision" event in the outbox. Either all of it is stored, or none.

Corrections are labels for retraining: the ``labels`` view (migration 5) lists them with the
evidence crop they apply to (``labels()`` here, ``GET /api/labels`` for model engineers).
"""

from __future__ import annotations

import re
import sqlite3
import time
import unicodedata
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from appliance.analyzers.iso6346 import is_valid as container_is_valid
from appliance.errors import ApplianceError
from appliance.publish.decision_events import DecisionFacts
from appliance.store import audit
from appliance.store.db import Store
from appliance.verdicts.manifest import plate_key

ACTIONS = ("approve", "hold", "correct")
FIELDS = ("tractor_plate", "trailer_plate", "fleet_id", "container", "seal", "declaration")
SEARCH_KIND = {"tractor_plate": "plate", "trailer_plate": "plate", "fleet_id": "plate", "container": "container",
               "seal": "seal", "declaration": "declaration"}
MAX_REASON = 1000
MAX_VALUE = 32
_SHA = re.compile(r"^[0-9a-f]{64}$")
_SEAL = re.compile(r"^[A-Z0-9][A-Z0-9-]{2,31}$")
_DECLARATION = re.compile(r"^\d{12}$")

EventFactory = Callable[[DecisionFacts], Mapping[str, Any]]


class DecisionError(ApplianceError):
    """A decision that cannot be stored; ``code`` names the UI message (``err_<code>`` in i18n)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class DecisionRequest:
    """What the inspector asked for (``old_value``: the value the correction replaces)."""

    action: str
    reason: str
    field: str | None = None
    old_value: str | None = None
    new_value: str | None = None
    evidence_sha256: str | None = None


@dataclass(frozen=True)
class Decision:
    id: int
    crossing_id: str
    ts: float
    username: str
    role: str
    action: str
    field: str | None
    old_value: str | None
    new_value: str | None
    reason: str
    evidence_sha256: str | None
    event_id: str


def corrections(history: Iterable[Decision]) -> dict[str, dict[str | None, str]]:
    """Per field, old value -> the value it was finally corrected to (chains followed: a->b then b->c
    gives a->c)."""
    out: dict[str, dict[str | None, str]] = {}
    for d in history:
        if d.action != "correct" or d.field is None or d.new_value is None:
            continue
        mapping = out.setdefault(d.field, {})
        chained = False
        for old, new in list(mapping.items()):
            if new == d.old_value:
                mapping[old], chained = d.new_value, True
        if not chained:
            mapping[d.old_value] = d.new_value
    return out


def _has_control(text: str) -> bool:
    return any(unicodedata.category(ch) in ("Cc", "Cf") for ch in text)


def normalise_value(field: str, value: str) -> str:
    """The corrected value as stored, or DecisionError saying what is wrong with it."""
    text = value.strip()
    if not text:
        raise DecisionError("value_required", "type the correct value")
    if _has_control(text) or len(text) > MAX_VALUE:
        raise DecisionError("invalid_value", f"not a {field} value: control characters or longer than {MAX_VALUE}")
    if field == "container":
        number = text.replace(" ", "").upper()
        if not container_is_valid(number):
            raise DecisionError("container_check_digit",
                                f"{number!r} is not an ISO 6346 container number with a valid check digit")
        return number
    if field == "seal":
        serial = text.replace(" ", "").upper()
        if not _SEAL.match(serial):
            raise DecisionError("invalid_seal", f"{serial!r} is not a seal serial (3-32 letters, digits or '-')")
        return serial
    if field == "declaration":
        if not _DECLARATION.match(text):
            raise DecisionError("invalid_declaration", "a VNACCS declaration number has 12 digits")
        return text
    if not plate_key(text):  # plates and fleet IDs: as typed, but with letters or digits in them
        raise DecisionError("invalid_value", f"{text!r} has no letters or digits")
    return text.upper()


def validate(request: DecisionRequest) -> DecisionRequest:
    """The request with its reason trimmed and its value normalised; DecisionError when it is not valid."""
    if request.action not in ACTIONS:
        raise DecisionError("unknown_action", f"action must be one of {ACTIONS}, got {request.action!r}")
    reason = request.reason.strip()
    if not reason:
        raise DecisionError("reason_required", "a decision needs a reason")
    if len(reason) > MAX_REASON:
        raise DecisionError("reason_too_long", f"reasons are at most {MAX_REASON} characters")
    if "\x00" in reason:
        raise DecisionError("invalid_value", "the reason contains a NUL character")
    sha = request.evidence_sha256 or None
    if sha is not None and not _SHA.match(sha):
        raise DecisionError("invalid_evidence", "evidence ids are lowercase sha256 hex digests")
    if request.action != "correct":
        return DecisionRequest(request.action, reason)
    if request.field not in FIELDS:
        raise DecisionError("unknown_field", f"field must be one of {FIELDS}, got {request.field!r}")
    new_value = normalise_value(request.field, request.new_value or "")
    if request.old_value is not None and new_value == request.old_value:
        raise DecisionError("value_unchanged", "the corrected value is the value that was read")
    return DecisionRequest("correct", reason, request.field, request.old_value, new_value, sha)


def record(
    store: Store, crossing_id: str, username: str, role: str, request: DecisionRequest, events: EventFactory,
    now: float | None = None,
) -> Decision:
    """Validate and store one decision with its audit entry and outbox event, in one transaction."""
    req = validate(request)
    ts = time.time() if now is None else now
    event_id = str(uuid.uuid4())
    with store.transaction() as conn:
        crossing = conn.execute("SELECT lane_id, decision FROM crossings WHERE id = ?", (crossing_id,)).fetchone()
        if crossing is None:
            raise DecisionError("no_such_crossing", f"no crossing {crossing_id!r}")
        if req.evidence_sha256 is not None and not _is_evidence_of(conn, crossing_id, req.evidence_sha256):
            raise DecisionError("invalid_evidence", "that evidence crop is not one of this crossing's")
        cur = conn.execute(
            "INSERT INTO decisions (crossing_id, ts, username, role, action, field, old_value, new_value, reason, "
            "evidence_sha256, event_id) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (crossing_id, ts, username, role, req.action, req.field, req.old_value, req.new_value, req.reason,
             req.evidence_sha256, event_id),
        )
        decision = Decision(int(cur.lastrowid or 0), crossing_id, ts, username, role, req.action, req.field,
                            req.old_value, req.new_value, req.reason, req.evidence_sha256, event_id)
        if req.action in ("approve", "hold"):
            conn.execute("UPDATE crossings SET reviewed_at = ?, review_action = ? WHERE id = ?",
                         (ts, req.action, crossing_id))
        elif req.field is not None and req.new_value is not None and plate_key(req.new_value):
            conn.execute("INSERT OR IGNORE INTO search_keys (crossing_id, kind, key) VALUES (?,?,?)",
                         (crossing_id, SEARCH_KIND[req.field], plate_key(req.new_value)))
        details: dict[str, Any] = {"decision_id": decision.id, "reason": req.reason}
        if req.action == "correct":
            details |= {"field": req.field, "old_value": req.old_value, "new_value": req.new_value}
        audit.append(conn, username, f"decision_{req.action}", crossing_id, details, now=ts)
        facts = DecisionFacts(decision.id, event_id, crossing_id, crossing["lane_id"], crossing["decision"],
                              req.action, req.field, req.old_value, req.new_value, req.reason,
                              req.evidence_sha256, username, role, ts)
        store.enqueue_in(conn, events(facts), crossing["lane_id"], crossing_id)
    store.notify_outbox()
    return decision


def _is_evidence_of(conn: sqlite3.Connection, crossing_id: str, sha256: str) -> bool:
    row = conn.execute("SELECT 1 FROM observations WHERE crossing_id = ? AND evidence_sha256 = ? LIMIT 1",
                       (crossing_id, sha256)).fetchone()
    if row is not None:
        return True
    summary = conn.execute("SELECT summary_json FROM crossings WHERE id = ?", (crossing_id,)).fetchone()
    return summary is not None and f'"{sha256}"' in summary[0]


def _decision(row: sqlite3.Row) -> Decision:
    return Decision(row["id"], row["crossing_id"], row["ts"], row["username"], row["role"], row["action"],
                    row["field"], row["old_value"], row["new_value"], row["reason"], row["evidence_sha256"],
                    row["event_id"])


def history(store: Store, crossing_id: str) -> list[Decision]:
    """The crossing's decisions, oldest first."""
    rows = store.query("SELECT * FROM decisions WHERE crossing_id = ? ORDER BY id", (crossing_id,))
    return [_decision(r) for r in rows]


def labels(store: Store, after_id: int = 0, limit: int = 500) -> list[dict[str, Any]]:
    """Corrections as labels for retraining (oldest first, after ``after_id``), with the read they replace."""
    rows = store.query(
        "SELECT l.*, c.lane_id FROM labels l JOIN crossings c ON c.id = l.crossing_id WHERE l.id > ? "
        "ORDER BY l.id LIMIT ?", (after_id, limit),
    )
    return [dict(r) for r in rows]
