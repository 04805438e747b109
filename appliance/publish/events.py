"""Verdict events: one CloudEvents 1.0 JSON envelope per crossing verdict, signed with Ed25519.

The event ``id`` is derived from the gate, the box and the crossing id (uuid5), so every copy
of the same verdict carries the same id: a receiver dedupes on it, and a redelivery after a
reconnect or a restart is byte-for-byte the event that was stored in the outbox.

Signature: ``sig`` (base64url, no padding) is a detached Ed25519 signature over the canonical
JSON of the whole event without ``sig`` itself (keys sorted, no whitespace, UTF-8, no ASCII
escaping). ``sigalg`` and ``sigkeyid`` are signed too, so neither can be swapped. CloudEvents
extension names must be lower-case letters and digits, hence the short names.
The data schema is ``docs/schemas/verdict-event.v1.json``.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from appliance import keys
from appliance.errors import ApplianceError
from appliance.keys import b64url as _b64
from appliance.keys import key_id as key_id  # re-exported: receivers and tests import it from here
from appliance.keys import unb64url as _unb64
from appliance.keys import write_signing_key as write_signing_key
from appliance.lanes.crossing import Crossing, FieldResult
from appliance.verdicts.rules import Verdict

log = logging.getLogger(__name__)

SPECVERSION = "1.0"
EVENT_TYPE = "vn.smartgate.crossing.verdict.v1"
DATASCHEMA = "urn:smartgate:schema:verdict-event:v1"
SCHEMA_FILE = "docs/schemas/verdict-event.v1.json"
SIGALG = "ed25519"
# Fixed namespace for event ids: never change it, or redeliveries stop looking like duplicates.
EVENT_NAMESPACE = uuid.UUID("6f1c1a52-3a55-5b1e-9d0e-5a7d2b8c0e11")


class EventError(ApplianceError):
    """An event is malformed, unsigned, signed by another key, or was changed after signing."""


def canonical_json(obj: Mapping[str, Any]) -> bytes:
    """The bytes that are signed: keys sorted, compact separators, UTF-8 without escaping."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode(
        "utf-8"
    )


def event_id(gate: str, box_id: str, crossing_id: str) -> str:
    """Deterministic event id of a crossing's verdict (the same on every redelivery)."""
    return str(uuid.uuid5(EVENT_NAMESPACE, f"{gate}/{box_id}/{crossing_id}/verdict"))


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def load_signing_key(path: Path) -> Ed25519PrivateKey:
    """An Ed25519 private key from a PEM (PKCS#8) file or a file of 32 raw bytes (see appliance.keys)."""
    return keys.load_signing_key(path, EventError)


def _read(value: FieldResult | None) -> dict[str, Any] | None:
    if value is None:
        return None
    return {
        "value": value.value,
        "confidence": round(float(value.confidence), 3),
        "votes": value.votes,
        "method": value.method,
        "evidence_sha256": value.evidence_sha256,
    }


def verdict_data(
    crossing: Crossing, verdict: Verdict, *, gate: str, box_id: str, model_versions: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The ``data`` member of a verdict event (see the JSON Schema)."""
    containers = []
    for i, container in enumerate(crossing.containers):
        entry = _read(container)
        assert entry is not None
        entry["size_type"] = crossing.size_types[i] if i < len(crossing.size_types) else None
        containers.append(entry)
    evidence: dict[str, dict[str, Any]] = {}
    for obs in crossing.observations:
        if obs.evidence_sha256 and obs.evidence_sha256 not in evidence:
            evidence[obs.evidence_sha256] = {"sha256": obs.evidence_sha256, "source_id": obs.source_id}
    for fr in (crossing.tractor_plate, crossing.trailer_plate, crossing.fleet_id, crossing.seal.serial,
               *crossing.containers):
        if fr is not None and fr.evidence_sha256 and fr.evidence_sha256 not in evidence:
            evidence[fr.evidence_sha256] = {"sha256": fr.evidence_sha256, "source_id": None}
    return {
        "crossing_id": crossing.id,
        "gate": gate,
        "box_id": box_id,
        "lane_id": crossing.lane_id,
        "started_at": _iso(crossing.started_at),
        "ended_at": _iso(crossing.ended_at),
        "tractor_plate": _read(crossing.tractor_plate),
        "trailer_plate": _read(crossing.trailer_plate),
        "fleet_id": _read(crossing.fleet_id),
        "containers": containers,
        "seal": {"present": crossing.seal.present, "serial": _read(crossing.seal.serial)},
        "declarations": list(crossing.declarations),
        "matched_declaration": verdict.declaration,
        "decision": verdict.decision,
        "reasons": [
            {"code": r.code, "severity": r.severity, "field": r.field, "read": r.read, "expected": r.expected}
            for r in verdict.reasons
        ],
        "evidence": sorted(evidence.values(), key=lambda e: e["sha256"]),
        "model_versions": dict(sorted((model_versions or _model_versions(crossing.models)).items())),
        # Every model version whose reads made the crossing (a hot swap mid-passage lists both).
        "models": list(crossing.models),
    }


def _model_versions(models: tuple[str, ...]) -> dict[str, str]:
    """Model name -> its version(s) (comma-separated when a swap happened mid-crossing), from ``task/name@v``."""
    versions: dict[str, list[str]] = {}
    for label in models:
        name, _, version = label.rpartition("/")[2].partition("@")
        versions.setdefault(name, []).append(version)
    return {name: ",".join(v) for name, v in versions.items()}


def sign_event(event: Mapping[str, Any], key: Ed25519PrivateKey) -> dict[str, Any]:
    """A copy of ``event`` with ``sigalg``, ``sigkeyid`` and the detached ``sig`` added."""
    signed = {k: v for k, v in event.items() if k != "sig"}
    signed["sigalg"] = SIGALG
    signed["sigkeyid"] = key_id(key.public_key())
    signed["sig"] = _b64(key.sign(canonical_json(signed)))
    return signed


def verify_event(event: Mapping[str, Any], public_key: Ed25519PublicKey) -> None:
    """Check a received event's signature; raise EventError saying why it is rejected.

    Receivers call this before trusting anything in the event, then dedupe on ``event["id"]``.
    """
    if not isinstance(event, Mapping):
        raise EventError("event: not a JSON object")
    sig = event.get("sig")
    if not isinstance(sig, str) or not sig:
        raise EventError(f"event {event.get('id')!r}: unsigned (no 'sig' attribute)")
    if event.get("sigalg") != SIGALG:
        raise EventError(f"event {event.get('id')!r}: signature algorithm {event.get('sigalg')!r}, expected {SIGALG}")
    if event.get("sigkeyid") != key_id(public_key):
        raise EventError(
            f"event {event.get('id')!r}: signed by key {event.get('sigkeyid')!r}, not by the expected key "
            f"{key_id(public_key)} (wrong gate box, or its key was rotated)"
        )
    body = {k: v for k, v in event.items() if k != "sig"}
    try:
        signature = _unb64(sig)
        public_key.verify(signature, canonical_json(body))
    except (InvalidSignature, ValueError) as exc:
        raise EventError(f"event {event.get('id')!r}: bad signature (changed after signing, or forged)") from exc


def decode_event(payload: bytes | str) -> dict[str, Any]:
    """Parse an event received as JSON bytes (no signature check: see verify_event)."""
    try:
        event = json.loads(payload)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise EventError(f"event: not valid JSON: {exc}") from exc
    if not isinstance(event, dict):
        raise EventError("event: not a JSON object")
    return event


def encode_event(event: Mapping[str, Any]) -> bytes:
    """The bytes stored in the outbox and sent to every sink (canonical JSON)."""
    return canonical_json(event)


@dataclass
class VerdictEventBuilder:
    """Builds (and signs, when a key is given) the verdict event of a crossing.

    ``Store(..., event_builder=VerdictEventBuilder(...))`` writes the result into the outbox in the
    crossing's own transaction.
    """

    gate: str
    box_id: str
    signing_key: Ed25519PrivateKey | None = None
    model_versions: Mapping[str, str] = field(default_factory=dict)

    def __call__(self, crossing: Crossing, verdict: Verdict, now: float | None = None) -> dict[str, Any]:
        ts = now if now is not None else crossing.ended_at
        event: dict[str, Any] = {
            "specversion": SPECVERSION,
            "id": event_id(self.gate, self.box_id, crossing.id),
            "source": f"smartgate/{self.gate}/{crossing.lane_id}/{self.box_id}",
            "type": EVENT_TYPE,
            "subject": crossing.id,
            "time": _iso(ts),
            "datacontenttype": "application/json",
            "dataschema": DATASCHEMA,
            "data": verdict_data(
                crossing, verdict, gate=self.gate, box_id=self.box_id, model_versions=self.model_versions
            ),
        }
        if self.signing_key is not None:
            event = sign_event(event, self.signing_key)
        return event


@dataclass
class SignsLikeVerdicts:
    """Base of the event builders that sign like the store's verdict builder: same gate, box and key."""

    gate: str
    box_id: str = "local"
    signing_key: Ed25519PrivateKey | None = None

    def envelope(self, *, event_id: str, lane_id: str, event_type: str, subject: str, ts: float, dataschema: str,
                 data: dict[str, Any]) -> dict[str, Any]:
        """The CloudEvents envelope of this box's events around ``data``, signed when the builder has a key."""
        event: dict[str, Any] = {
            "specversion": SPECVERSION,
            "id": event_id,
            "source": f"smartgate/{self.gate}/{lane_id}/{self.box_id}",
            "type": event_type,
            "subject": subject,
            "time": _iso(ts),
            "datacontenttype": "application/json",
            "dataschema": dataschema,
            "data": data,
        }
        return sign_event(event, self.signing_key) if self.signing_key is not None else event

    @classmethod
    def like(cls, verdicts: object, gate: str) -> Self:
        """The builder that signs as ``verdicts`` (a VerdictEventBuilder) does, or an unsigned one for ``gate``
        when the store has none (tests, a box without a signing key)."""
        if isinstance(verdicts, VerdictEventBuilder):
            return cls(verdicts.gate, verdicts.box_id, verdicts.signing_key)
        return cls(gate)
