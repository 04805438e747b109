"""`appliance train xray-anomaly --head cnn`: trained on normal scans with generic synthetic anomalies,
exported to ONNX, opened from the model store and served like any xray-anomaly model (real torch training,
real ONNX Runtime; a few steps only: the figures are docs/XRAY.md's, measured by `appliance eval xray`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from appliance.inference.store import ModelStore
from appliance.training.xray_anomaly import TRAIN_SCALE, SimScanner, train_xray_anomaly
from appliance.xray.anomaly import AnomalyScorer

pytest.importorskip("torch", reason="the train extra (torch) is needed to train the detector; CI installs it")


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("models")
    folder, _ = train_xray_anomaly("cnn", scans_per_class=1, seed=3, name="t-cnn", root=root, key=None,
                                   eval_per_class=0, steps=12)
    return folder


def test_the_package_keeps_the_xray_anomaly_contract(package: Path) -> None:
    manifest = yaml.safe_load((package / "manifest.yaml").read_text(encoding="utf-8"))
    assert manifest["task"] == "xray-anomaly" and manifest["version"] == "1"
    assert manifest["training"]["head"] == "cnn" and "--steps 12" in manifest["training"]["command"]
    assert [i["name"] for i in manifest["inputs"]] == ["high", "low", "goods"]
    assert manifest["thresholds"]["alarm"] >= 1.0
    assert (package / "model.onnx").stat().st_size < 5_000_000  # small enough to commit


def test_the_store_serves_it_on_a_scan_of_any_size(package: Path) -> None:
    from appliance.sim.xray import random_spec

    model = ModelStore(package.parents[2]).open("xray-anomaly", "t-cnn")
    scorer = AnomalyScorer.from_model(model)
    assert scorer.scale == TRAIN_SCALE
    scan = SimScanner(1.0).scan(random_spec(np.random.default_rng(5), goods="coke"), 77)
    result = scorer.score(scan.high, scan.low, "coke")
    rows, cols = scan.high.shape
    cells = np.ceil(np.array([rows, cols]) * TRAIN_SCALE / 8)
    assert result.heatmap.shape == tuple(int(c) for c in cells)
    assert np.isfinite(result.heatmap).all() and result.containers
    assert result.alarm == (result.score >= scorer.threshold)


def test_the_exported_heat_is_standardised_per_class(package: Path) -> None:
    """ONNX reproduces the trained network and its per-class standardisation: on the held-out normal scans
    the standardisation was computed on, each class's 99th percentile of interior cells is 1.0."""
    from appliance.training.xray_cnn import render_normal_scans

    model = ModelStore(package.parents[2]).open("xray-anomaly", "t-cnn")
    scorer = AnomalyScorer.from_model(model)
    held = render_normal_scans(2, 3 + 1, TRAIN_SCALE)  # what fit_cnn_from_simulation standardised on
    for goods in ("fruit", "chemicals"):
        values = []
        for scan in (s for s in held if s.goods == goods):
            r = AnomalyScorer(scorer.run, scorer.labels, 1.0, scorer.threshold).score(
                scan.high.astype(np.float32), scan.low.astype(np.float32), goods, containers=scan.boxes,
                interior=False)
            inside = np.zeros(r.heatmap.shape, bool)
            for x, y, w, h in scan.boxes:
                inside[y // 8:(y + h) // 8, x // 8:(x + w) // 8] = True
            values.append(r.heatmap[inside])
        assert abs(float(np.percentile(np.concatenate(values), 99)) - 1.0) < 0.15, goods
