"""The demo's X-ray scanner end to end (appliance/sim/demo_xray.py, as ``run_demo`` wires it): a tiny simulated
cargo lane replayed by the real ``run_appliance`` (OpenCV video decoding, ONNX Runtime OCR, SQLite), scans of its
container trucks rendered by the X-ray simulator, the virtual scanner's calibration built from its dark/air frames,
the feeder dropping each scan once its crossing exists, and the appliance's own X-ray thread taking the drops
(drop folder, calibration, ONNX anomaly model, evidence image, matcher, outbox, verdict revision). Nothing is mocked.

The committed anomaly model alarms on few scans (docs/XRAY.md), so which scans alarm is not asserted. To exercise
the alarm path every time, the model run here is the committed ``sim-knn`` graph repackaged (unsigned, in a temporary
model store) with its alarm threshold lowered so that every scan alarms: an alarm must then revise its crossing
CLEAR -> REVIEW. The demo itself runs the committed model unchanged (``test_the_demo_config_keeps_the_default_model``).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import cv2
import pytest
import yaml

from appliance.app import run_appliance
from appliance.config import XrayConfig, load_config
from appliance.publish.events import decode_event
from appliance.sim import simulate
from appliance.sim.demo_xray import TRUTH_FILE, DemoXray, add_demo_xray, load_demo_scans
from appliance.xray.results import EVENT_TYPE as XRAY_EVENT
from appliance.xray.verdict_revision import EVENT_TYPE as REVISION_EVENT

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SEED = 5  # 3 vehicles, two of them container trucks (the second one carries the projected threat)
ALARM_MODEL = "sim-knn-alarm"


@pytest.fixture(scope="module")
def lane_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sim") / f"sim-{SEED}-3"
    simulate(out, 3, seed=SEED, width=1280, height=720, gap_s=3.0, night_share=0.0, mismatch_share=0.0)
    return out


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's lane models, plus the committed anomaly model with an alarm threshold every scan passes."""
    root = tmp_path_factory.mktemp("models")
    for part in ("text-detection", "text-recognition", "keys"):
        shutil.copytree(ROOT / "models" / part, root / part)
    src = ROOT / "models" / "xray-anomaly" / "sim-knn" / "1"
    dst = root / "xray-anomaly" / ALARM_MODEL / "1"
    dst.mkdir(parents=True)
    shutil.copyfile(src / "model.onnx", dst / "model.onnx")
    manifest = yaml.safe_load((src / "manifest.yaml").read_text(encoding="utf-8"))
    manifest["name"] = ALARM_MODEL
    manifest["thresholds"]["alarm"] = 0.001
    (dst / "manifest.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False), encoding="utf-8")
    return root


def demo_config(lane_dir: Path, workdir: Path) -> dict[str, Any]:
    """The demo's config as ``run_demo`` starts it: the simulated lane's own lane.yaml, a fresh store."""
    data = load_config(lane_dir / "lane.yaml").model_dump(mode="json")
    data["storage"] = {"path": str(workdir / "appliance.db"), "evidence_dir": str(workdir / "evidence")}
    return data


def scan_id(scans_dir: Path, name: str) -> str:
    """The id the appliance gives a drop: sha256 of the raw image bytes, high then low (docs/XRAY.md)."""
    h = hashlib.sha256()
    for energy in ("high", "low"):
        h.update((scans_dir / f"{name}_{energy}.png").read_bytes())
    return h.hexdigest()


def test_the_demo_scans_each_container_truck_once_its_crossing_exists(lane_dir: Path, models: Path,
                                                                      tmp_path: Path) -> None:
    data = demo_config(lane_dir, tmp_path)
    xray = add_demo_xray(data, tmp_path, lane_dir, SEED, stop_when_done=True)
    data["xray"]["model"] = ALARM_MODEL
    data["models"] = {**data["models"], "root": str(models), "allow_unsigned": True}
    config = tmp_path / "demo.yaml"
    config.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")

    services = run_appliance(config, serve=False, keep_serving=False, on_start=xray.start)
    store = services.store

    truth = json.loads((lane_dir / "truth.json").read_text(encoding="utf-8"))
    trucks = [v for v in truth["vehicles"] if v["kind"] == "truck" and v["containers"]]
    assert len(trucks) == 2
    scans = load_demo_scans(xray.cache_dir)
    assert [s.vehicle_id for s in scans] == [v["id"] for v in trucks]
    rendered = json.loads((xray.cache_dir / TRUTH_FILE).read_text(encoding="utf-8"))["scans"]
    threats = [r for r in rendered if r["threat"]]
    assert len(threats) == 1 and threats[0]["anomalies"]  # the projected threat is in the rendered scan's truth
    assert all(a["area_px"] > 0 for a in threats[0]["anomalies"])

    # Every scan was dropped, taken by the appliance's X-ray thread and stored; none rejected.
    assert sorted(xray.dropped) == sorted(s.name for s in scans)
    assert sorted(p.name for p in (xray.drop_dir / "done").glob("*.json")) == sorted(f"{s.name}.json" for s in scans)
    assert not list((xray.drop_dir / "rejected").glob("*"))
    results = {r["scan_id"]: r for r in store.query("SELECT * FROM xray_results")}
    assert len(results) == len(scans)
    crossings = {r["id"]: r for r in store.query("SELECT * FROM crossings")}
    events = [decode_event(r["payload"]) for r in store.query("SELECT payload FROM outbox ORDER BY id")]
    xray_events = [e for e in events if e["type"] == XRAY_EVENT]
    revisions = {r["crossing_id"]: r for r in store.query("SELECT * FROM verdict_revisions")}

    for scan, vehicle in zip(scans, trucks, strict=True):
        result = results[scan_id(xray.cache_dir / "scans", scan.name)]
        number = vehicle["containers"][0]["number"]
        # Tied to the crossing that read this truck's container, by container number.
        assert result["match"] == "container", result["match_detail"]
        crossing = crossings[result["crossing_id"]]
        assert number in [c["value"] for c in json.loads(crossing["summary_json"])["containers"]]
        assert crossing["started_at"] < vehicle["t_exit"] and crossing["ended_at"] > vehicle["t_enter"]
        assert result["lane_id"] == data["lanes"][0]["id"]
        # Its evidence image (grey scan + heat map) is in the evidence store and decodes.
        path = store.evidence_path(result["evidence_sha256"])
        assert path is not None
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        assert image is not None and image.ndim == 3
        # One result event in the outbox, naming the scan and its crossing.
        mine = [e for e in xray_events if e["data"]["scan_id"] == result["scan_id"]]
        assert len(mine) == 1 and mine[0]["data"]["crossing_id"] == crossing["id"]
        # An alarm raises its crossing: a CLEAR crossing becomes REVIEW with the X-ray reason.
        assert result["alarm"] == 1  # every scan passes this model's lowered threshold
        revision = revisions[crossing["id"]]
        assert revision["scan_id"] == result["scan_id"]
        assert crossing["decision"] in ("REVIEW", "HOLD")
        assert "xray_anomaly" in {r["code"] for r in json.loads(crossing["reasons_json"])}
        if revision["previous_decision"] == "CLEAR":
            assert revision["decision"] == crossing["decision"] == "REVIEW"
    assert len(xray_events) == len(scans)
    assert sum(1 for e in events if e["type"] == REVISION_EVENT) == len(revisions) == len(scans)
    assert any(r["previous_decision"] == "CLEAR" for r in revisions.values())  # the lane cleared these trucks
    assert services.status["xray"]["processed"] == len(scans)


def test_the_demo_config_keeps_the_default_model(lane_dir: Path, tmp_path: Path) -> None:
    """The demo's ``xray:`` section is valid config, names the virtual scanner's calibration and leaves the model
    to the config default (the store's committed, signed model); a second demo run reuses the rendered scans and
    starts from an empty drop folder."""
    data = demo_config(lane_dir, tmp_path)
    first = add_demo_xray(data, tmp_path, lane_dir, SEED)
    (first.drop_dir / "stale.json").write_text("{}", encoding="utf-8")
    rendered = {p.name: p.stat().st_mtime_ns for p in (first.cache_dir / "scans").iterdir()}
    again: DemoXray = add_demo_xray(data, tmp_path, lane_dir, SEED)
    assert {p.name: p.stat().st_mtime_ns for p in (again.cache_dir / "scans").iterdir()} == rendered
    assert not any(again.drop_dir.iterdir())
    config = tmp_path / "demo.yaml"
    config.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    x = load_config(config).xray
    assert x is not None and x.model == XrayConfig.model_fields["model"].default and x.follow
    cal = json.loads((x.calibration_dir / "SIM-XR-DEMO" / "calibration.json").read_text(encoding="utf-8"))
    assert cal["rows"] == json.loads((again.cache_dir / TRUTH_FILE).read_text(encoding="utf-8"))["rows"]
