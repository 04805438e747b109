from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from appliance.lanes.crossing import Crossing, FieldResult, SealState
from appliance.publish.events import (
    EVENT_TYPE,
    EventError,
    VerdictEventBuilder,
    decode_event,
    encode_event,
    load_signing_key,
    verify_event,
    write_signing_key,
)
from appliance.reads import BBox, Observation, PlateRead
from appliance.verdicts.rules import Reason, Verdict

jsonschema = pytest.importorskip("jsonschema")
SCHEMA = json.loads((Path(__file__).parents[2] / "docs/schemas/verdict-event.v1.json").read_text())
SHA = "ab" * 32


def crossing(cid: str = "c-1") -> Crossing:
    obs = Observation("front", 100.0, PlateRead("12C-123.45", "VN", "one_line", "yellow", 0.9, BBox(1, 2, 3, 4)), SHA)
    return Crossing(
        id=cid, lane_id="l1", started_at=100.0, ended_at=104.25,
        tractor_plate=FieldResult("12C-123.45", 0.91234, 3, SHA),
        trailer_plate=FieldResult("12R-004.56", 0.8, 2),
        containers=(FieldResult("MSCU1234565", 0.95, 4, "cd" * 32),), size_types=("22G1",),
        seal=SealState(True, FieldResult("VN1234567", 0.7, 2)), declarations=("301234567890",),
        observations=(obs,),
    )


VERDICT = Verdict("REVIEW", (Reason("seal_low_confidence", "REVIEW", "seal", "VN1234567", None),), "301234567890")


def build(key: Ed25519PrivateKey | None) -> dict[str, Any]:
    return VerdictEventBuilder("VNHNG", "box-1", key, {"plates": "ppocr-v4@1"})(crossing(), VERDICT)


def test_event_is_a_valid_cloudevent_with_the_verdict() -> None:
    event = build(Ed25519PrivateKey.generate())
    jsonschema.validate(event, SCHEMA, format_checker=jsonschema.FormatChecker())
    assert event["specversion"] == "1.0" and event["type"] == EVENT_TYPE
    assert event["source"] == "smartgate/VNHNG/l1/box-1"
    assert event["time"] == "1970-01-01T00:01:44.250Z"
    data = event["data"]
    assert data["gate"] == "VNHNG" and data["decision"] == "REVIEW"
    assert data["containers"][0] == {"value": "MSCU1234565", "confidence": 0.95, "votes": 4, "method": "read",
                                     "evidence_sha256": "cd" * 32, "size_type": "22G1"}
    assert data["tractor_plate"]["confidence"] == 0.912
    assert {e["sha256"] for e in data["evidence"]} == {SHA, "cd" * 32}
    assert data["reasons"][0]["code"] == "seal_low_confidence"


def test_event_id_is_deterministic_and_distinct_per_crossing() -> None:
    b = VerdictEventBuilder("VNHNG", "box-1")
    a1, a2 = b(crossing("a"), VERDICT), b(crossing("a"), VERDICT)
    assert a1["id"] == a2["id"] and encode_event(a1) == encode_event(a2)
    assert b(crossing("b"), VERDICT)["id"] != a1["id"]
    assert VerdictEventBuilder("VNHNG", "box-2")(crossing("a"), VERDICT)["id"] != a1["id"]


def test_signature_round_trip_through_bytes(tmp_path: Path) -> None:
    public = write_signing_key(tmp_path / "k.pem")
    key = load_signing_key(tmp_path / "k.pem")
    event = decode_event(encode_event(build(key)))
    verify_event(event, public)
    assert (tmp_path / "k.pem").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(
    "tamper",
    [
        lambda e: e["data"].__setitem__("decision", "CLEAR"),
        lambda e: e["data"]["containers"][0].__setitem__("value", "MSCU7654321"),
        lambda e: e.__setitem__("id", "00000000-0000-0000-0000-000000000000"),
        lambda e: e.__setitem__("extra", "x"),
        lambda e: e.pop("time"),
        # A character in the middle (the last one carries padding bits: changing it may decode to the same bytes).
        lambda e: e.__setitem__("sig", e["sig"][:10] + ("B" if e["sig"][10] != "B" else "C") + e["sig"][11:]),
    ],
)
def test_tampered_event_is_rejected(tamper: Any) -> None:
    key = Ed25519PrivateKey.generate()
    event = build(key)
    bad = copy.deepcopy(event)
    tamper(bad)
    with pytest.raises(EventError, match="bad signature"):
        verify_event(bad, key.public_key())


def test_wrong_key_and_unsigned_are_rejected() -> None:
    event = build(Ed25519PrivateKey.generate())
    with pytest.raises(EventError, match="not by the expected key"):
        verify_event(event, Ed25519PrivateKey.generate().public_key())
    with pytest.raises(EventError, match="unsigned"):
        verify_event(build(None), Ed25519PrivateKey.generate().public_key())


def test_schema_rejects_missing_and_wrong_fields() -> None:
    event = build(None)
    jsonschema.validate(event, SCHEMA)
    for mutate in (lambda e: e["data"].pop("decision"), lambda e: e["data"].__setitem__("decision", "MAYBE"),
                   lambda e: e["data"].__setitem__("gate", "hanoi"), lambda e: e.__setitem__("specversion", "0.3")):
        bad = copy.deepcopy(event)
        mutate(bad)
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, SCHEMA)


def test_decode_rejects_non_json() -> None:
    with pytest.raises(EventError, match="not valid JSON"):
        decode_event(b"\xff{")
    with pytest.raises(EventError, match="not a JSON object"):
        decode_event(b"[1]")


def test_bad_key_file(tmp_path: Path) -> None:
    (tmp_path / "bad.pem").write_text("nope")
    with pytest.raises(EventError, match="not a PEM"):
        load_signing_key(tmp_path / "bad.pem")
