"""Decisions, the queue and search keys in the store; crop geometry; the decision event's schema."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import cv2
import jsonschema
import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from appliance.lanes.analysis import crop_jpeg
from appliance.publish.decision_events import DecisionEventBuilder, DecisionFacts
from appliance.publish.events import VerdictEventBuilder, verify_event
from appliance.reads import BBox
from appliance.store import audit, decisions, review_queue
from appliance.store.db import MIGRATIONS, Store
from appliance.store.decisions import DecisionError, DecisionRequest
from appliance.web.crops import Box, box_in_crop, jpeg_size
from tests.web.review_helpers import add_crossing

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "docs/schemas/inspector-decision-event.v1.json").read_text(encoding="utf-8"))
EVENTS = DecisionEventBuilder("VNHNG", "box-1")


def totals(store: Store) -> tuple[int, int, int, Any]:
    return (int(store.query("SELECT COUNT(*) FROM decisions")[0][0]),
            int(store.query("SELECT COUNT(*) FROM audit_log")[0][0]), store.outbox_count(),
            store.query("SELECT reviewed_at FROM crossings WHERE id = 'cargo-1-2'")[0][0])


def test_decision_audit_and_event_commit_together(store: Store) -> None:
    decision = decisions.record(store, "cargo-1-2", "lan.nguyen", "inspector",
                                DecisionRequest("approve", " checked "), EVENTS, now=1_795_000_500.0)
    assert totals(store) == (1, 1, 1, 1_795_000_500.0)
    assert decision.reason == "checked"
    payload = json.loads(store.query("SELECT payload FROM outbox")[0][0])
    assert payload["id"] == decision.event_id and payload["data"]["decision_id"] == decision.id


@pytest.mark.parametrize("where", ["audit", "event", "outbox"])
def test_a_failing_step_leaves_nothing(store: Store, monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    before = totals(store)

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"{where} failed")

    if where == "audit":
        monkeypatch.setattr(audit, "append", boom)
    elif where == "outbox":
        monkeypatch.setattr(store, "enqueue_in", boom)
    events = boom if where == "event" else EVENTS
    with pytest.raises(RuntimeError):
        decisions.record(store, "cargo-1-2", "lan", "inspector", DecisionRequest("hold", "x-ray"), events)
    assert totals(store) == before
    assert store.query("SELECT COUNT(*) FROM labels")[0][0] == 0


@pytest.mark.parametrize(("field", "value", "code"), [
    ("container", "MSKU1234566", "container_check_digit"),
    ("container", "MSKU123456", "container_check_digit"),
    ("seal", "V!", "invalid_seal"),
    ("declaration", "30123456789", "invalid_declaration"),
    ("tractor_plate", "..--", "invalid_value"),
    ("tractor_plate", "29C\x1b123", "invalid_value"),
    ("tractor_plate", "", "value_required"),
    ("colour", "red", "unknown_field"),
])
def test_bad_corrections(store: Store, field: str, value: str, code: str) -> None:
    with pytest.raises(DecisionError) as info:
        decisions.record(store, "cargo-1-2", "lan", "inspector",
                         DecisionRequest("correct", "typo", field, None, value), EVENTS)
    assert info.value.code == code
    assert totals(store)[:3] == (0, 0, 0)


def test_evidence_must_belong_to_the_crossing(store: Store) -> None:
    other = add_crossing(store, "cargo-1-8")
    sha = other.observations[0].evidence_sha256
    with pytest.raises(DecisionError) as info:
        decisions.record(store, "cargo-1-2", "lan", "inspector",
                         DecisionRequest("correct", "r", "tractor_plate", "14C-456.78", "14C-456.79", sha), EVENTS)
    assert info.value.code == "invalid_evidence"


def test_decision_event_matches_its_schema_and_verifies() -> None:
    key = Ed25519PrivateKey.generate()
    builder = DecisionEventBuilder.like(VerdictEventBuilder("VNHNG", "box-9", key), "ignored")
    facts = DecisionFacts(7, "3f2b0c1e-8f5a-4a55-9c61-0d2f4f7f3a10", "cargo-1-2", "cargo-1", "HOLD", "correct",
                          "container", "MWCU6059784", "TGHU9876542", "<b>paint</b>", "a" * 64, "lan", "inspector",
                          1_795_000_000.0)
    event = builder(facts)
    jsonschema.validate(event, SCHEMA)
    verify_event(event, key.public_key())
    approve = DecisionEventBuilder("VNHNG")(DecisionFacts(8, facts.event_id, "c", "cargo-1", "REVIEW", "approve",
                                                          None, None, None, "ok", None, "lan", "supervisor", 1.0))
    jsonschema.validate(approve, SCHEMA)
    with pytest.raises(jsonschema.ValidationError):  # a correction without its new value is not an event
        jsonschema.validate({**event, "data": {**event["data"], "new_value": None}}, SCHEMA)


def test_neighbours_walk_the_queue(store: Store) -> None:
    add_crossing(store, "cargo-1-5", "HOLD", ended_at=1_794_000_000.0, frames=1)
    row = review_queue.get(store, "cargo-1-3")
    assert row is not None
    assert review_queue.neighbours(store, row) == (None, "cargo-1-2")
    row = review_queue.get(store, "cargo-1-5")
    assert row is not None and review_queue.neighbours(store, row) == ("cargo-1-2", "cargo-1-3")  # wraps to newest
    row = review_queue.get(store, "cargo-1-1")  # decided or clear: the nearest still to review on either side
    assert row is not None and review_queue.neighbours(store, row) == ("cargo-1-2", "cargo-1-5")


def test_queue_query_walks_the_index(store: Store) -> None:
    plan = " ".join(r[3] for r in store.query("EXPLAIN QUERY PLAN " + review_queue.QUEUE_IDS_SQL, (50, 0)))
    assert plan == "SCAN crossings USING INDEX crossings_queue"  # no table scan, no temporary sort
    pending = " ".join(r[3] for r in store.query(
        f"EXPLAIN QUERY PLAN SELECT COUNT(*) FROM crossings WHERE {review_queue.PENDING} = 1"))
    assert "USING INDEX crossings_queue (<expr>=?)" in pending


def test_upgrade_from_v4_backfills_search_keys(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "old.db")
    for script in MIGRATIONS[:4]:
        conn.executescript(script)
    summary = {"tractor_plate": {"value": "29C-123.45"}, "containers": [{"value": "MSKU1234565"}],
               "seal": {"present": True, "serial": {"value": "VNH1"}}, "declarations": ["301234567890"]}
    conn.execute("INSERT INTO crossings VALUES ('old-1', 'cargo-1', 1, 2, 'HOLD', NULL, '[]', ?, 3)",
                 (json.dumps(summary),))
    conn.execute("PRAGMA user_version = 4")
    conn.commit()
    conn.close()
    store = Store(tmp_path / "old.db", tmp_path / "evidence")
    try:
        assert store.schema_version() == len(MIGRATIONS) >= 5
        keys = {(r[0], r[1]) for r in store.query("SELECT kind, key FROM search_keys WHERE crossing_id = 'old-1'")}
        assert keys == {("plate", "29C12345"), ("container", "MSKU1234565"), ("seal", "VNH1"),
                        ("declaration", "301234567890")}
        assert review_queue.pending_count(store) == 1
    finally:
        store.close()


@pytest.mark.parametrize("box", [BBox(500, 300, 160, 40), BBox(0, 0, 120, 30), BBox(1200, 690, 80, 30),
                                 BBox(3, 5, 40, 20)])
def test_box_in_crop_matches_the_lanes_crops(tmp_path: Path, box: BBox) -> None:
    frame = np.zeros((720, 1280, 3), np.uint8)
    cv2.rectangle(frame, (box.x, box.y), (box.x + box.w - 1, box.y + box.h - 1), (255, 255, 255), -1)
    data = crop_jpeg(frame, box)
    assert data is not None
    path = tmp_path / "crop.jpg"
    path.write_bytes(data)
    size = jpeg_size(path)
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
    assert size == (image.shape[1], image.shape[0])
    found = box_in_crop(json.dumps(box.__dict__), size)
    assert found is not None
    # The box drawn is where the white rectangle is in the crop.
    ys, xs = np.nonzero(image > 128)
    assert (found.x, found.y) == (int(xs.min()), int(ys.min()))
    assert (found.x + found.w - 1, found.y + found.h - 1) == (int(xs.max()), int(ys.max()))


def test_box_not_drawn_when_geometry_disagrees() -> None:
    assert box_in_crop('{"x": 10, "y": 10, "w": 100, "h": 30}', (8, 8)) is None  # crop smaller than the box
    assert box_in_crop('{"x": 500, "y": 300, "w": 100, "h": 30}', (400, 300)) is None  # crop far too big
    assert box_in_crop("not json", (100, 100)) is None and box_in_crop(None, (10, 10)) is None
    assert box_in_crop('{"x": 500, "y": 300, "w": 100, "h": 30}', (158, 52)) == Box(29, 11, 100, 30)


def test_jpeg_size_of_junk(tmp_path: Path) -> None:
    (tmp_path / "x").write_bytes(b"<svg onload=alert(1)>")
    assert jpeg_size(tmp_path / "x") is None
    assert jpeg_size(tmp_path / "missing") is None
