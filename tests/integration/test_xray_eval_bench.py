"""`appliance eval xray` and `appliance bench xray` end to end (figures are for the commands, not for tests).

The real-image part reads a folder in the ../shared/eval/xray layout that the test writes itself from
simulated scans (8-bit exports, as a viewer would save them), so the suite never needs ../shared.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from appliance.cli import main
from appliance.eval.labels import LabelError
from appliance.eval.xray_real import evaluate_cargo_scans
from appliance.sim.xray import random_spec
from appliance.training.xray_anomaly import SimScanner, container_boxes

pytestmark = pytest.mark.slow


def _export(att: np.ndarray) -> np.ndarray:
    """An 8-bit viewer export: bright = air."""
    return np.clip(255 * np.exp(-att), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def real_like(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("xray-eval")
    sim = SimScanner(0.5)
    rng = np.random.default_rng(12)
    (root / "cargo_scans" / "images").mkdir(parents=True)
    (root / "baggage_patches" / "images").mkdir(parents=True)
    cargo = ["file,n_containers,cls,cx,cy,w,h"]
    bags = ["file,label,is_threat"]
    for i in range(3):
        scan = sim.scan(random_spec(rng, containers=("40",), anomaly="dense_block" if i % 2 else None), 500 + i)
        name = f"images/scan{i}.jpg"
        cv2.imwrite(str(root / "cargo_scans" / name), _export(scan.high))
        rows, cols = scan.high.shape
        for x, y, w, h in container_boxes(scan.truth):
            cargo.append(f"{name},1,container,{(x + w / 2) / cols:.5f},{(y + h / 2) / rows:.5f},{w / cols:.5f},"
                         f"{h / rows:.5f}")
        x, y, w, h = container_boxes(scan.truth)[0]
        for j in range(2):
            patch = scan.high[y + 20:y + h - 20, x + 40 + 300 * j:x + 340 + 300 * j].copy()
            threat = (i + j) % 2 == 1
            if threat:
                patch[60:110, 100:130] += 5.0  # a dense bar
            bags.append(f"images/p{i}{j}.png,{'bar' if threat else 'other'},{int(threat)}")
            cv2.imwrite(str(root / "baggage_patches" / f"images/p{i}{j}.png"), _export(patch))
    (root / "cargo_scans" / "labels.csv").write_text("\n".join(cargo) + "\n", encoding="utf-8")
    (root / "baggage_patches" / "labels.csv").write_text("\n".join(bags) + "\n", encoding="utf-8")
    return root


def test_eval_xray_reports_sim_types_real_patches_and_container_finding(real_like: Path, tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import appliance.eval.xray as ev

    real = ev.evaluate_xray
    monkeypatch.setattr(ev, "evaluate_xray", lambda folder, model=None, consistency_per_class=1: real(
        folder, per_class=1, fit_scans=1, consistency_fit_scans=3, consistency_per_class=1, model=model))
    out = tmp_path / "xray.json"
    assert main(["eval", "xray", "--data", str(real_like), "--json", str(out)]) == 0
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["task"] == "xray" and report["metric"].startswith("threat-vs-benign ROC AUC")
    assert 0.0 <= report["score"] <= 1.0 and "intensity" in report["baselines"]
    names = [g["name"] for g in report["groups"]]
    assert {"dense_block", "hidden_compartment", "weapon", "undeclared_goods"} <= set(names)
    cargo = next(g for g in report["groups"] if g["name"].startswith("cargo_scans"))
    assert cargo["n"] == 3 and cargo["passed"] == 3  # every simulated 40' container found at IoU >= 0.5
    notes = "\n".join(report["notes"])
    assert "alarms per 100 clean scans" in notes and "model: " in notes
    assert "manifest consistency model" in notes


def test_eval_xray_names_a_model_missing_from_the_store(real_like: Path) -> None:
    from appliance.errors import ApplianceError
    from appliance.eval.xray import evaluate_xray

    with pytest.raises(ApplianceError, match=r"xray-anomaly/no-such-model is not in the model store"):
        evaluate_xray(real_like, per_class=1, model="no-such-model")


def test_eval_xray_label_errors_are_clear(real_like: Path, tmp_path: Path) -> None:
    bad = tmp_path / "cargo_scans"
    bad.mkdir()
    (bad / "labels.csv").write_text("file,cx,cy\nimages/x.jpg,0.5,0.5\n", encoding="utf-8")
    with pytest.raises(LabelError, match=r"missing columns \['h', 'w'\]"):
        evaluate_cargo_scans(bad)


def test_bench_xray_prints_steps_and_the_target() -> None:
    from appliance.bench.xray import bench_xray

    out = bench_xray(runs=1)
    for step in ("calibrate", "containers", "model", "materials", "render", "total"):
        assert step in out
    assert "target < 1000 ms" in out and "baseline: model at full resolution" in out
    assert "1500 x" in out  # scanner resolution, not a reduced render
