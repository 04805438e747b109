"""A scanner drop end to end: simulated export, ingest, calibration, anomaly score, crossing, store and TDR event.

Real files (16-bit PNGs + sidecars written by the simulator), the real calibration, a real ONNX Runtime
session of a small fitted model, real SQLite with its outbox; nothing mocked.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import jsonschema
import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from appliance.publish.events import decode_event
from appliance.sim.xray import simulate_xray
from appliance.store.db import Store
from appliance.training.xray_anomaly import scorer_for
from appliance.xray.anomaly_fit import FeatureExtractor, fit_normal_model, region_cells
from appliance.xray.calibration import CalibrationError, attenuation, build_calibration, save_calibration
from appliance.xray.ingest import read_calibration, read_scan
from appliance.xray.regions import cargo_interior, find_containers
from appliance.xray.results import XrayEventBuilder, XrayProcessor, match_crossing

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def drop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("xray-drop")
    simulate_xray(out, 3, seed=8, scale=0.5, anomaly_share=0.0, mismatch_share=0.0)
    return out


@pytest.fixture(scope="module")
def processor_parts(drop: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    frames = read_calibration(drop / "calibration")
    cal = build_calibration(frames.scanner_id, dark=frames.dark, air=frames.air)
    root = tmp_path_factory.mktemp("calibration")
    save_calibration(cal, root)
    scans = [read_scan(p) for p in sorted((drop / "scans").glob("*.json"))]
    extractor = FeatureExtractor()
    cells: dict[str, list[np.ndarray]] = {}
    for scan in scans:
        att = cal.attenuation(scan)
        feats = extractor(att.high, att.low)
        goods = scan.meta.declared_goods or "parcels"
        cells.setdefault(goods, []).extend(region_cells(feats, cargo_interior(b)) for b in find_containers(att.high))
    labels = tuple(sorted(cells))
    model = fit_normal_model("knn", labels, cells, {}, bank_size=64)
    return root, scorer_for(model, 1.0, threshold=3.0)


def _crossing(store: Store, crossing_id: str, container: str, t: float) -> None:
    summary = {"containers": [{"value": container}], "tractor_plate": {"value": "29C-123.45"}}
    with store.transaction() as conn:
        conn.execute("INSERT INTO crossings (id, lane_id, started_at, ended_at, decision, declaration, reasons_json, "
                     "summary_json, created_at) VALUES (?,?,?,?,?,?,?,?,?)",
                     (crossing_id, "L1", t - 30, t, "CLEAR", None, "[]", json.dumps(summary), time.time()))


def test_a_scan_is_scored_tied_to_its_crossing_and_published_as_a_tdr(drop: Path, processor_parts: tuple,
                                                                     tmp_path: Path) -> None:
    root, scorer = processor_parts
    store = Store(tmp_path / "gate.db", tmp_path / "evidence")
    scans = [read_scan(p) for p in sorted((drop / "scans").glob("*.json"))]
    first = scans[0]
    _crossing(store, "L1-1", first.meta.containers[0], first.meta.scanned_at - 120)
    _crossing(store, "L1-old", first.meta.containers[0], first.meta.scanned_at - 5 * 86400)  # same box, days ago
    # Signed as a box with an event-signing key signs it: the signature is part of what the schema checks.
    key = Ed25519PrivateKey.generate()
    processor = XrayProcessor(store, scorer, root, XrayEventBuilder("VNHNG", "box-1", key),
                              models=["xray-anomaly/test@1"])
    reports = [processor.process(s) for s in scans]
    assert reports[0].crossing_id == "L1-1" and reports[0].match == "container"
    assert all(r.crossing_id is None and r.match == "none" for r in reports[1:])
    assert "no crossing within 3600 s has container" in reports[1].match_detail
    rows = store.query("SELECT scan_id, evidence_sha256, tdr_json FROM xray_results ORDER BY scanned_at")
    assert len(rows) == 3
    assert all(store.evidence_path(r["evidence_sha256"]) is not None for r in rows)
    schema = json.loads((ROOT / "docs/schemas/xray-result-event.v1.json").read_text(encoding="utf-8"))
    events = [decode_event(r["payload"]) for r in store.query("SELECT payload FROM outbox ORDER BY id")]
    assert len(events) == 3
    for event in events:
        jsonschema.validate(event, schema)
        assert isinstance(event["sig"], str) and event["sigalg"] == "ed25519"
    assert events[0]["data"]["crossing_id"] == "L1-1"
    # The same scan dropped again is the same result and no second event.
    processor.process(scans[0])
    assert store.outbox_count() == 3


def test_a_plate_ties_a_scan_when_no_container_matches(drop: Path, tmp_path: Path) -> None:
    store = Store(tmp_path / "gate.db", tmp_path / "evidence")
    scan = read_scan(sorted((drop / "scans").glob("*.json"))[0])
    _crossing(store, "L1-7", "ZZZU0000000", scan.meta.scanned_at + 60)
    meta = type(scan.meta)(scan.meta.scanner_id, scan.meta.scanned_at, plate="29C-123.45", containers=("ABCU1234560",))
    crossing, how, detail = match_crossing(store, meta)
    assert (crossing, how) == ("L1-7", "plate") and "29C12345" in detail
    nothing = type(scan.meta)(scan.meta.scanner_id, scan.meta.scanned_at)
    assert match_crossing(store, nothing) == (None, "none", "the scan names no container and no plate")


def test_a_raw_scan_without_its_scanners_calibration_is_refused_clearly(drop: Path, tmp_path: Path) -> None:
    scan = read_scan(sorted((drop / "scans").glob("*.json"))[0])
    with pytest.raises(CalibrationError, match="need"):
        attenuation(scan, None)
    store = Store(tmp_path / "gate.db", tmp_path / "evidence")
    processor = XrayProcessor(store, scorer_for(fit_normal_model(
        "gaussian", ("fruit",), {"fruit": [np.random.default_rng(0).normal(size=(200, 8))]}, {}), 1.0, 3.0),
        tmp_path / "no-calibration")
    with pytest.raises(CalibrationError, match=scan.meta.scanner_id):
        processor.process(scan)
    assert store.query("SELECT count(*) AS n FROM xray_results")[0]["n"] == 0


def test_the_manifest_consistency_check_goes_into_the_result_and_the_tdr(drop: Path, processor_parts: tuple,
                                                                         tmp_path: Path) -> None:
    from appliance.training.xray_consistency import fit_from_simulation

    root, scorer = processor_parts
    consistency = fit_from_simulation(2, seed=5).scorer()
    store = Store(tmp_path / "gate.db", tmp_path / "evidence")
    processor = XrayProcessor(store, scorer, root, XrayEventBuilder("VNHNG", "box-1"), consistency=consistency)
    scan = read_scan(sorted((drop / "scans").glob("*.json"))[0])
    report = processor.process(scan)
    assert report.consistency is not None
    assert set(report.consistency) >= {"decided", "predicted", "p_declared", "goods_consistent", "alarm"}
    row = store.query("SELECT consistency_json, tdr_json FROM xray_results")[0]
    assert json.loads(row["consistency_json"])["predicted"] == report.consistency["predicted"]
    assert json.loads(row["tdr_json"])["ManifestConsistency"]["decided"] == report.consistency["decided"]
