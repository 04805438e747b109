"""An X-ray alarm revises its crossing's verdict: real SQLite store (WAL, migrations, outbox, audit chain),
crossings saved through ``Store.save_crossing`` with their signed verdict events, X-ray results saved
through ``save_xray_result`` as the processor does, inspector decisions through ``decisions.record``,
events checked against their JSON Schema and their Ed25519 signature; and one scan end to end through
``XrayProcessor`` (simulated export, real calibration, real ONNX Runtime). Nothing is mocked."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import paho.mqtt.client as mqtt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt.enums import CallbackAPIVersion

from appliance.lanes.crossing import Crossing, FieldResult
from appliance.publish.decision_events import DecisionEventBuilder
from appliance.publish.events import VerdictEventBuilder, decode_event, verify_event
from appliance.publish.mqtt_sink import MqttSink
from appliance.publish.publisher import Publisher, RetryPolicy
from appliance.store import decisions, review_queue
from appliance.store.audit import first_broken
from appliance.store.db import Store
from appliance.verdicts.rules import Reason, Verdict
from appliance.xray import verdict_revision
from appliance.xray.anomaly import AnomalyResult, Finding
from appliance.xray.results import XrayEventBuilder, XrayReport, save_xray_result
from appliance.xray.scan import ScanMeta
from tests.integration.mosquitto import Broker, wait_until

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / verdict_revision.SCHEMA_FILE).read_text(encoding="utf-8"))
BASE = 1_795_000_000.0
CONTAINER = "MSKU1234565"
KEY = Ed25519PrivateKey.generate()


@pytest.fixture()
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "gate.db", tmp_path / "evidence", event_builder=VerdictEventBuilder("VNHNG", "box-1", KEY))
    yield s
    s.close()


def add_crossing(store: Store, crossing_id: str, decision: str = "CLEAR", reasons: tuple[Reason, ...] = (),
                 ended_at: float = BASE) -> None:
    crossing = Crossing(crossing_id, "cargo-1", ended_at - 30, ended_at,
                        tractor_plate=FieldResult("29C-123.45", 0.95, 4),
                        containers=(FieldResult(CONTAINER, 0.93, 3),), declarations=("301234567890",))
    store.save_crossing(crossing, Verdict(decision, reasons, "301234567890"))  # type: ignore[arg-type]


def report(crossing_id: str | None, name: str, *, score: float = 0.8, threshold: float = 1.5,
           consistency: dict[str, Any] | None = None, quantity: float | None = 20) -> XrayReport:
    """An X-ray result as the processor builds it (anomaly result, scan metadata, the tie to a crossing)."""
    findings = [Finding((80, 24, 40, 24), score)] if score >= threshold else []
    anomaly = AnomalyResult(score, threshold, score >= threshold, "fruit", [(24, 16, 336, 64)], findings,
                            np.zeros((12, 48), np.float32), 8.0)
    meta = ScanMeta("XR-HN-01", BASE + 60, "cargo-1", containers=(CONTAINER,), declared_goods="fruit",
                    declared_quantity=quantity)
    match = "none" if crossing_id is None else "container"
    return XrayReport(hashlib.sha256(name.encode()).hexdigest(), meta, anomaly, crossing_id, match,
                      f"container {CONTAINER} within 3600 s", ["xray-anomaly/test@1"], None, consistency,
                      received_at=BASE + 62)


def mismatch(goods: bool, quantity: bool) -> dict[str, Any]:
    """A judged consistency result (``XrayProcessor._consistency``'s shape)."""
    return {"decided": True, "reason": "", "predicted": "coke" if not goods else "fruit", "p_declared": 0.03,
            "goods_consistent": goods, "quantity_estimate": 11.4, "quantity_consistent": quantity, "score": 0.2,
            "alarm": not (goods and quantity)}


def xray_events() -> XrayEventBuilder:
    return XrayEventBuilder("VNHNG", "box-1", KEY)


def crossing(store: Store, crossing_id: str) -> sqlite3.Row:
    return store.query("SELECT decision, reasons_json, reviewed_at, review_action FROM crossings WHERE id = ?",
                       (crossing_id,))[0]


def events(store: Store) -> list[dict[str, Any]]:
    return [decode_event(r["payload"]) for r in store.query("SELECT payload FROM outbox ORDER BY id")]


def revised(store: Store) -> list[dict[str, Any]]:
    return [e for e in events(store) if e["type"] == verdict_revision.EVENT_TYPE]


def check(event: dict[str, Any]) -> None:
    """Valid against docs/schemas/verdict-revised-event.v1.json and signed by the box's key."""
    jsonschema.validate(event, SCHEMA, format_checker=jsonschema.FormatChecker())
    verify_event(event, KEY.public_key())


def test_an_anomaly_alarm_turns_clear_into_review_with_its_reason_and_event(store: Store) -> None:
    add_crossing(store, "c-1")
    assert review_queue.pending_count(store) == 0
    stamp = review_queue.stamp(store)
    save_xray_result(store, report("c-1", "scan-1", score=2.4), xray_events())

    row = crossing(store, "c-1")
    assert row["decision"] == "REVIEW"
    reasons = json.loads(row["reasons_json"])
    assert reasons == [{"code": "xray_anomaly", "severity": "REVIEW", "field": "xray", "read": "2.40 ≥ 1.50",
                        "expected": None}]
    assert review_queue.pending_count(store) == 1
    assert review_queue.page(store, 0, 10)[0][0].id == "c-1"  # first in the inspectors' queue
    assert review_queue.stamp(store) != stamp  # the queue page redraws

    types = [e["type"] for e in events(store)]
    assert types == ["vn.smartgate.crossing.verdict.v1", "vn.smartgate.xray.result.v1", verdict_revision.EVENT_TYPE]
    event = revised(store)[0]
    check(event)
    data = event["data"]
    assert event["subject"] == "c-1" and data["revision"] == 1
    assert (data["previous_decision"], data["decision"]) == ("CLEAR", "REVIEW")
    assert [r["code"] for r in data["reasons_added"]] == ["xray_anomaly"] and data["reasons"] == reasons
    assert data["cause"] == {"kind": "xray", "scan_id": hashlib.sha256(b"scan-1").hexdigest()}
    assert data["reopened_review"] is None
    # The revision is audited in the hash chain, which stays intact.
    audit = store.query("SELECT actor, action, target, details_json FROM audit_log")
    assert [(a["actor"], a["action"], a["target"]) for a in audit] == [("xray", "verdict_revised", "c-1")]
    assert json.loads(audit[0]["details_json"])["decision"] == "REVIEW"
    assert first_broken(store._conn) is None


@pytest.mark.parametrize(("goods", "quantity", "codes", "read", "expected"), [
    (False, True, ["xray_goods_mismatch"], "coke", "fruit"),
    (True, False, ["xray_quantity_mismatch"], "11.40", "20.00"),
    (False, False, ["xray_goods_mismatch", "xray_quantity_mismatch"], "coke", "fruit"),
])
def test_a_manifest_mismatch_turns_clear_into_review(store: Store, goods: bool, quantity: bool, codes: list[str],
                                                      read: str, expected: str) -> None:
    add_crossing(store, "c-2")
    save_xray_result(store, report("c-2", "scan-2", score=0.4, consistency=mismatch(goods, quantity)), xray_events())
    row = crossing(store, "c-2")
    reasons = json.loads(row["reasons_json"])
    assert row["decision"] == "REVIEW" and [r["code"] for r in reasons] == codes
    assert (reasons[0]["read"], reasons[0]["expected"]) == (read, expected)
    event = revised(store)[0]
    check(event)
    assert [r["code"] for r in event["data"]["reasons_added"]] == codes


def test_hold_stays_hold_with_the_xray_reason_added(store: Store) -> None:
    seal = Reason("seal_mismatch", "HOLD", "seal", "VNH7654321", "VNH1234567")
    add_crossing(store, "c-3", "HOLD", (seal,))
    save_xray_result(store, report("c-3", "scan-3", score=3.0, consistency=mismatch(False, True)), xray_events())
    row = crossing(store, "c-3")
    assert row["decision"] == "HOLD"
    assert [r["code"] for r in json.loads(row["reasons_json"])] == ["seal_mismatch", "xray_anomaly",
                                                                   "xray_goods_mismatch"]
    event = revised(store)[0]
    check(event)
    assert (event["data"]["previous_decision"], event["data"]["decision"]) == ("HOLD", "HOLD")
    assert event["data"]["reasons"][0]["code"] == "seal_mismatch"


def test_a_clear_scan_changes_nothing(store: Store) -> None:
    add_crossing(store, "c-4")
    add_crossing(store, "c-5", "HOLD", (Reason("seal_missing", "HOLD", "seal"),), ended_at=BASE + 5)
    before = {c: tuple(crossing(store, c)) for c in ("c-4", "c-5")}
    stamp = review_queue.stamp(store)
    undecided = {"decided": False, "reason": "no container found", "goods_consistent": False,
                 "quantity_consistent": False, "alarm": False}
    save_xray_result(store, report("c-4", "clear-4", score=1.49), xray_events())  # just below the threshold
    save_xray_result(store, report("c-5", "clear-5", score=0.2, consistency=undecided), xray_events())
    save_xray_result(store, report("c-4", "ok-4", consistency=mismatch(True, True)), xray_events())
    assert {c: tuple(crossing(store, c)) for c in ("c-4", "c-5")} == before  # a clear scan never lowers HOLD either
    assert revised(store) == [] and store.query("SELECT COUNT(*) FROM verdict_revisions")[0][0] == 0
    assert review_queue.stamp(store) == stamp


def test_an_untied_scan_or_the_same_scan_again_revises_nothing_more(store: Store) -> None:
    add_crossing(store, "c-6")
    save_xray_result(store, report(None, "untied", score=4.0), xray_events())
    assert crossing(store, "c-6")["decision"] == "CLEAR" and revised(store) == []
    save_xray_result(store, report("c-6", "scan-6", score=2.0), xray_events())
    save_xray_result(store, report("c-6", "scan-6", score=2.0), xray_events())  # dropped twice: the first stands
    assert len(revised(store)) == 1
    save_xray_result(store, report("c-6", "scan-6b", score=5.0), xray_events())  # a second scan: revision 2
    numbers = [e["data"]["revision"] for e in revised(store)]
    assert numbers == [1, 2]
    second = revised(store)[1]
    check(second)
    assert (second["data"]["previous_decision"], second["data"]["decision"]) == ("REVIEW", "REVIEW")
    assert len({e["id"] for e in revised(store)}) == 2


@pytest.mark.parametrize("action", ["approve", "hold"])
def test_a_decided_crossing_goes_back_to_the_queue_with_the_xray_reason(store: Store, action: str) -> None:
    add_crossing(store, "c-7", "REVIEW", (Reason("seal_unread", "REVIEW", "seal", None, "VNH1234567"),))
    decisions.record(store, "c-7", "inspector", "inspector", decisions.DecisionRequest(action, "checked at the gate"),
                     DecisionEventBuilder("VNHNG", "box-1", KEY), now=BASE + 40)
    assert review_queue.pending_count(store) == 0
    save_xray_result(store, report("c-7", "scan-7", score=2.2), xray_events())

    row = crossing(store, "c-7")
    assert row["decision"] == "REVIEW" and row["reviewed_at"] is None and row["review_action"] is None
    q = review_queue.get(store, "c-7")
    assert q is not None and q.pending and review_queue.pending_count(store) == 1
    assert "xray_anomaly" in [r["code"] for r in q.reasons]
    assert [d.action for d in decisions.history(store, "c-7")] == [action]  # the decision stays on record
    event = revised(store)[0]
    check(event)
    decided_at = dt.datetime.fromtimestamp(BASE + 40, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    assert event["data"]["reopened_review"] == {"action": action, "reviewed_at": decided_at}
    stored = verdict_revision.revisions(store, "c-7")
    assert [(r.revision, r.previous_decision, r.decision, r.reopened_action) for r in stored] == [
        (1, "REVIEW", "REVIEW", action)]


def test_the_schema_refuses_a_revision_that_clears_or_has_no_xray_reason(store: Store) -> None:
    add_crossing(store, "c-8")
    save_xray_result(store, report("c-8", "scan-8", score=2.0), xray_events())
    event = revised(store)[0]
    unsigned = {k: v for k, v in event.items() if k not in ("sig", "sigalg", "sigkeyid")}
    jsonschema.validate(unsigned, SCHEMA)
    for path, value in ((("decision",), "CLEAR"), (("reasons_added",), []),
                        (("reasons_added", 0, "code"), "seal_mismatch"), (("cause", "scan_id"), "scan-8")):
        bad = json.loads(json.dumps(unsigned))
        target = bad["data"]
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, SCHEMA)


def test_the_revision_commits_with_the_xray_result_or_not_at_all(store: Store) -> None:
    """A revision that cannot be written (here: a trigger refuses the row, as a full disk would) takes the
    X-ray result and its event down with it: the scan can be dropped again, nothing half-stored."""
    add_crossing(store, "c-9")
    with store.transaction() as conn:
        conn.execute("CREATE TRIGGER refuse BEFORE INSERT ON verdict_revisions "
                     "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END")
    outbox = store.outbox_count()
    with pytest.raises(sqlite3.IntegrityError, match="refused by the test"):
        save_xray_result(store, report("c-9", "scan-9", score=2.0), xray_events())
    assert store.query("SELECT COUNT(*) FROM xray_results")[0][0] == 0
    assert store.outbox_count() == outbox and crossing(store, "c-9")["decision"] == "CLEAR"
    with store.transaction() as conn:
        conn.execute("DROP TRIGGER refuse")
    save_xray_result(store, report("c-9", "scan-9", score=2.0), xray_events())  # the same drop, again
    assert crossing(store, "c-9")["decision"] == "REVIEW" and len(revised(store)) == 1


def test_a_box_without_event_publishing_still_revises(store: Store) -> None:
    add_crossing(store, "c-10")
    save_xray_result(store, report("c-10", "scan-10", score=2.0), None)
    assert crossing(store, "c-10")["decision"] == "REVIEW" and revised(store) == []
    assert len(verdict_revision.revisions(store, "c-10")) == 1


def test_a_scan_through_the_processor_revises_its_crossing(tmp_path: Path, store: Store) -> None:
    """The real path: a simulated export read from disk, calibrated, scored by a real ONNX Runtime session
    with a threshold every scan reaches, tied to its crossing by container number."""
    from appliance.sim.xray import simulate_xray
    from appliance.training.xray_anomaly import scorer_for
    from appliance.xray.anomaly_fit import FeatureExtractor, fit_normal_model, region_cells
    from appliance.xray.calibration import attenuation, build_calibration, calibration_for, save_calibration
    from appliance.xray.ingest import read_calibration, read_scan
    from appliance.xray.regions import cargo_interior, find_containers
    from appliance.xray.results import XrayProcessor

    out = tmp_path / "drop"
    simulate_xray(out, 1, seed=3, scale=0.25, anomaly_share=0.0, mismatch_share=0.0)
    frames = read_calibration(out / "calibration")
    root = tmp_path / "calibration"
    save_calibration(build_calibration(frames.scanner_id, dark=frames.dark, air=frames.air), root)
    scan = read_scan(next((out / "scans").glob("*.json")))
    add_crossing(store, "c-sim", ended_at=scan.meta.scanned_at - 60)
    with store.transaction() as conn:  # the crossing carries the scan's container number
        conn.execute("INSERT INTO search_keys (crossing_id, kind, key) VALUES ('c-sim', 'container', ?)",
                     (scan.meta.containers[0],))
    extractor = FeatureExtractor()
    att = attenuation(scan, calibration_for(scan, root))
    feats = extractor(att.high, att.low)
    goods = scan.meta.declared_goods or "parcels"
    cells = {goods: [region_cells(feats, cargo_interior(b)) for b in find_containers(att.high)]}
    model = fit_normal_model("knn", (goods,), cells, {}, bank_size=32)
    processor = XrayProcessor(store, scorer_for(model, 1.0, threshold=0.0), root, xray_events())
    result = processor.process(scan)
    assert result.crossing_id == "c-sim" and result.anomaly.alarm
    assert crossing(store, "c-sim")["decision"] == "REVIEW"
    check(revised(store)[0])


def test_the_revision_reaches_central_through_a_real_broker(tmp_path: Path, broker: Broker) -> None:
    """Outbox -> publisher -> MQTT sink -> a real Mosquitto -> a QoS 1 subscriber that verifies the signature."""
    received: list[dict[str, Any]] = []
    central = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="central-revisions", protocol=mqtt.MQTTv311)
    central.on_connect = lambda c, *a: c.subscribe("smartgate/VNHNG/cargo-1/verdicts", 1)
    central.on_message = lambda c, u, msg: received.append(decode_event(msg.payload))
    central.connect("127.0.0.1", broker.port, 30)
    central.loop_start()
    store = Store(tmp_path / "gate.db", tmp_path / "evidence", event_builder=VerdictEventBuilder("VNHNG", "box-1", KEY))
    sink = MqttSink("central", "127.0.0.1", broker.port, gate="VNHNG", box_id="box-1", lane_id="cargo-1",
                    reconnect_max_s=1)
    publisher = Publisher(store, [sink], default_policy=RetryPolicy(batch=10, ack_timeout_s=2.0,
                                                                    backoff_initial_s=0.05, idle_poll_s=0.05))
    try:
        wait_until(central.is_connected, 5, "the subscriber to connect")
        time.sleep(0.2)  # its subscription in place
        publisher.start()
        add_crossing(store, "c-mqtt")
        save_xray_result(store, report("c-mqtt", "scan-mqtt", score=2.0), xray_events())
        wait_until(lambda: any(e["type"] == verdict_revision.EVENT_TYPE for e in received), 10,
                   "the revision event at central")
        event = next(e for e in received if e["type"] == verdict_revision.EVENT_TYPE)
        check(event)
        assert event["data"]["crossing_id"] == "c-mqtt" and event["data"]["decision"] == "REVIEW"
        wait_until(lambda: store.outbox_status()[0].backlog == 0, 10, "the outbox to drain")
    finally:
        publisher.stop()
        central.disconnect()
        central.loop_stop()
        store.close()
