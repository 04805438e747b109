"""The X-ray anomaly model's ONNX graph, its fitting, the container finder and the scorer, on simulated scans."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from appliance.sim.xray import random_spec
from appliance.training.xray_anomaly import SimScanner, container_boxes, scorer_for
from appliance.xray.anomaly import render_overlay
from appliance.xray.anomaly_fit import FeatureExtractor, fit_normal_model, region_cells
from appliance.xray.anomaly_graph import FEATURES, STRIDE, build_model
from appliance.xray.regions import cargo_interior, find_containers, iou, match_boxes


@pytest.fixture(scope="module")
def sim() -> SimScanner:
    return SimScanner(0.25)


def test_feature_graph_measures_what_it_says() -> None:
    """A flat image: mean = the level, std 0, contrast 0, gradient 0; ratio = (low+eps)/(high+eps)."""
    high = np.full((64, 96), 2.0, np.float32)
    low = np.full((64, 96), 3.0, np.float32)
    f = FeatureExtractor()(high, low)
    assert f.shape == (len(FEATURES), 64 // STRIDE, 96 // STRIDE)
    named = dict(zip(FEATURES, f, strict=True))
    assert np.allclose(named["mean"], 2.0, atol=1e-5) and np.allclose(named["max"], 2.0, atol=1e-5)
    assert np.allclose(named["std"], 0.0, atol=2e-3) and np.allclose(named["contrast"], 0.0, atol=1e-5)
    assert np.allclose(named["gradient"], 0.0, atol=1e-5) and np.allclose(named["texture"], 0.0, atol=1e-5)
    assert np.allclose(named["ratio"], 3.05 / 2.05, atol=1e-4)
    # A dense square raises the local mean and the contrast where it is, not far away.
    high[24:40, 40:56] = 6.0
    g = dict(zip(FEATURES, FeatureExtractor()(high, low), strict=True))
    assert g["contrast"][4, 6] > 1.0 and abs(g["contrast"][0, 0]) < 1e-4


def test_knn_head_reproduces_the_numpy_distance() -> None:
    rng = np.random.default_rng(0)
    f = len(FEATURES)
    mu, sigma = np.zeros((2, f), np.float32), np.ones((2, f), np.float32)
    banks = rng.normal(size=(2, 16, f)).astype(np.float32)
    model = build_model("knn", mu, sigma, banks, np.array([1.0, 2.0], np.float32))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    high = rng.uniform(0, 3, (1, 1, 48, 64)).astype(np.float32)
    low = (high * 1.2).astype(np.float32)
    heat = session.run(None, {"high": high, "low": low, "goods": np.array([1], np.int64)})[0][0, 0]
    feats = FeatureExtractor()(high[0, 0], low[0, 0])
    cells = feats.reshape(f, -1).T
    d = np.sqrt(((cells[:, None, :] - banks[1][None]) ** 2).sum(-1).min(1)) / 2.0
    grid = d.reshape(feats.shape[1:])
    padded = np.pad(grid, 1)
    counts = np.pad(np.ones_like(grid), 1)
    smooth = sum(padded[i:i + grid.shape[0], j:j + grid.shape[1]] for i in range(3) for j in range(3))
    n = sum(counts[i:i + grid.shape[0], j:j + grid.shape[1]] for i in range(3) for j in range(3))
    assert np.allclose(heat, smooth / n, rtol=1e-3, atol=1e-3)


def test_the_container_finder_finds_simulated_containers(sim: SimScanner) -> None:
    rng = np.random.default_rng(4)
    found = total = 0
    for i in range(6):
        scan = sim.scan(random_spec(rng, containers=("40",)), 300 + i)
        boxes = find_containers(scan.high)
        tp, _, _ = match_boxes(boxes, container_boxes(scan.truth), threshold=0.5)
        found, total = found + tp, total + 1
        cab = scan.truth["vehicle"]["cab_bbox"]
        assert all(iou(tuple(cab), b) < 0.1 for b in boxes), "the cab is not a container"
    assert found >= 5


def test_a_massive_dense_block_is_found_where_it_is(sim: SimScanner) -> None:
    rng = np.random.default_rng(7)
    normal = {"fruit": [], "parcels": []}
    extractor = FeatureExtractor()
    for i in range(3):
        for goods in normal:
            scan = sim.scan(random_spec(rng, goods=goods), 400 + i)
            feats = extractor(scan.high, scan.low)
            normal[goods] += [region_cells(feats, cargo_interior(b)) for b in find_containers(scan.high)]
    model = fit_normal_model("knn", ("fruit", "parcels"), normal, {}, bank_size=64)
    scorer = scorer_for(model, 1.0, threshold=1.0)
    scan = sim.scan(random_spec(rng, goods="fruit"), 499)
    box = find_containers(scan.high)[0]
    x, y, w, h = cargo_interior(box)
    cx, cy = x + w // 2, y + h // 2
    clean = scorer.score(scan.high, scan.low, "fruit")
    hot_high, hot_low = scan.high.copy(), scan.low.copy()
    hot_high[cy - 12:cy + 12, cx - 12:cx + 12] += 4.0  # 24 x 24 px of steel-like attenuation
    hot_low[cy - 12:cy + 12, cx - 12:cx + 12] += 6.5
    hot = scorer.score(hot_high, hot_low, "fruit")
    assert hot.score > clean.score
    assert hot.findings, "no finding over the block"
    fx, fy, fw, fh = hot.findings[0].box
    assert fx <= cx <= fx + fw and fy <= cy <= fy + fh, "the strongest finding is not on the block"
    image = render_overlay(hot_high, hot)
    assert image.dtype == np.uint8 and image.shape[2] == 3


def test_unknown_goods_fall_back_to_the_mixed_class(sim: SimScanner) -> None:
    model = fit_normal_model("gaussian", ("fruit", "parcels"), {"fruit": [np.random.default_rng(1).normal(
        size=(500, len(FEATURES)))], "parcels": [np.random.default_rng(2).normal(size=(500, len(FEATURES)))]}, {})
    scorer = scorer_for(model, 1.0, threshold=1.0)
    assert scorer.goods_index("fruit") == 0 and scorer.goods_index("durian-ish") == 1 and scorer.goods_index(None) == 1


def test_a_container_of_dense_goods_is_a_container_not_a_blank_panel() -> None:
    """Starved load (attenuation 8) under an ordinary roof; a truly blank panel (no signal top to bottom) beside it."""
    att = np.zeros((300, 1200), np.float32)
    att[40:44, 300:1100] = 1.0  # roof rail
    att[40:260, 300:306] = att[40:260, 1094:1100] = 1.5  # end walls
    att[44:250, 306:1094] = 0.3  # side walls
    att[80:250, 306:1094] = 8.0  # two-high bags of fertiliser, starved over more than half the height
    att[250:262, 280:1120] = 2.0  # floor and chassis beam
    att[:, :120] = 8.0  # a blank panel: no signal over the whole height
    boxes = find_containers(att)
    assert len(boxes) == 1
    x, y, w, h = boxes[0]
    assert abs(x - 300) <= 8 and abs(x + w - 1100) <= 8 and y <= 44 and y + h >= 250
