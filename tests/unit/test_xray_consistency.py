"""The manifest-consistency model: the load descriptor, the ONNX graph, fitting, the scorer and its
refusals, on synthetic images and simulated scans (scale 0.5, the model's pitch)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import yaml

from appliance.errors import ModelError
from appliance.eval.xray_consistency import evaluate_consistency
from appliance.inference.validation import ValidationPolicy, validate_package
from appliance.sim.xray import random_spec
from appliance.training.xray_anomaly import SimScan, SimScanner
from appliance.training.xray_consistency import (
    ConsistencyFit,
    SimDescriptors,
    choose_goods_threshold,
    fit_from_simulation,
    render_descriptors,
    write_package,
)
from appliance.xray.consistency import (
    DESCRIPTOR_NAMES,
    MODEL_COL_M,
    MODEL_ROW_M,
    ConsistencyModel,
    ConsistencyScorer,
    compute_descriptor,
    describe_scan,
)
from appliance.xray.scan import ScanError

PAIR = ("fruit", "fertiliser")  # two classes that look nothing alike (organic cartons vs inorganic bags)


@pytest.fixture(scope="module")
def sim() -> SimScanner:
    return SimScanner(0.5)


@pytest.fixture(scope="module")
def fruit_scan(sim: SimScanner) -> SimScan:
    return sim.scan(random_spec(np.random.default_rng(3), goods="fruit", containers=("40",)), 31)


@pytest.fixture(scope="module")
def small_fit() -> ConsistencyFit:
    return fit_from_simulation(4, seed=5, validation_per_class=2, goods=PAIR)


@pytest.fixture(scope="module")
def held_out(sim: SimScanner) -> SimDescriptors:
    return render_descriptors(3, seed=77, tag=5, goods=PAIR, sim=sim)


def pitch(scan: SimScan) -> tuple[float, float]:
    return scan.truth["pixel_m"]["row"], scan.truth["pixel_m"]["col"]


def synthetic_load(units: int = 8, levels: int = 1, scale: int = 1) -> tuple[np.ndarray, np.ndarray, list]:
    """A container box with ``units`` blocks 1.0 m long and 0.9 m high + 5 cm gaps along it (``levels``
    high, 10 cm apart), at the
    model's pitch times 1 / ``scale``: attenuation 3.0 high, 3.78 low (ratio 1.26), walls 0.1."""
    rows, cols = 520 * scale, 1800 * scale
    high = np.zeros((rows, cols), np.float32)
    low = np.zeros((rows, cols), np.float32)
    box = (100 * scale, 40 * scale, 1600 * scale, 500 * scale)  # x, y, w, h: 12.8 m x 3 m
    x0, y0, w, h = box
    high[y0:y0 + h, x0:x0 + w] = 0.1
    low[y0:y0 + h, x0:x0 + w] = 0.16
    unit_px, gap_px = round(1.0 / MODEL_COL_M) * scale, round(0.05 / MODEL_COL_M) * scale
    level_px, band_px = round(0.9 / MODEL_ROW_M) * scale, round(0.1 / MODEL_ROW_M) * scale
    floor = y0 + 380 * scale  # 2.28 m under the roof: inside the descriptor's interior
    start = x0 + round(0.02 * w) + 4 * scale
    for level in range(levels):
        bottom = floor - level * (level_px + band_px)
        for u in range(units):
            c = start + u * (unit_px + gap_px)
            high[bottom - level_px:bottom, c:c + unit_px] = 3.0
            low[bottom - level_px:bottom, c:c + unit_px] = 3.78
    return high, low, [box]


# ---------------------------------------------------------------------------------------------
# The descriptor
# ---------------------------------------------------------------------------------------------


def test_descriptor_shape_and_determinism(fruit_scan: SimScan) -> None:
    d1, boxes = describe_scan(fruit_scan.high, fruit_scan.low, *pitch(fruit_scan))
    d2, _ = describe_scan(fruit_scan.high.copy(), fruit_scan.low.copy(), *pitch(fruit_scan))
    assert d1.vector.shape == (len(DESCRIPTOR_NAMES),) and d1.vector.dtype == np.float32
    assert len(set(DESCRIPTOR_NAMES)) == len(DESCRIPTOR_NAMES)
    assert np.array_equal(d1.vector, d2.vector) and np.isfinite(d1.vector).all()
    named = d1.named()
    assert len(boxes) == 1 and 0.05 < named["fill"] < 1.0
    assert 1.0 < named["length_m"] <= 12.1 and named["occupied_m"] <= named["length_m"] + 1e-6
    assert abs(sum(named[f"att_{i}"] for i in range(12)) - 1) < 1e-5  # a histogram of fractions
    assert 1.05 < named["ratio_mean"] < 1.2  # fruit is organic


def test_descriptor_measures_a_known_load() -> None:
    """Eight 1 m units with 5 cm gaps, two levels: length 8.35 m, occupied about 8 m, 2 levels, a
    1.05 m period, ratio 1.26 in its bin, attenuation median 3.0."""
    high, low, boxes = synthetic_load(units=8, levels=2)
    named = compute_descriptor(high, low, boxes).named()
    assert abs(named["length_m"] - 8.35) < 0.1
    assert 7.6 < named["occupied_m"] < 8.4
    assert named["levels"] == pytest.approx(2.0)
    assert abs(named["period_fill_m"] - 1.05) < 0.04
    assert abs(named["att_p50"] - 3.0) < 1e-3 and named["starved"] == 0.0
    assert abs(named["ratio_mean"] - 1.26) < 1e-3 and named["ratio_7"] > 0.99  # the 1.22..1.30 bin
    one = compute_descriptor(*synthetic_load(units=8, levels=1)).named()
    assert one["levels"] == pytest.approx(1.0)
    assert one["mass_high"] == pytest.approx(named["mass_high"] / 2, rel=0.02)


def test_the_scan_is_resampled_to_the_models_pitch() -> None:
    """The same load at twice the resolution gives the same lengths once the pitch is given."""
    coarse, _ = describe_scan(*synthetic_load(units=6)[:2], MODEL_ROW_M, MODEL_COL_M,
                              containers=synthetic_load(units=6)[2])
    high, low, boxes = synthetic_load(units=6, scale=2)
    fine, found = describe_scan(high, low, MODEL_ROW_M / 2, MODEL_COL_M / 2, containers=boxes)
    assert found == boxes  # boxes come back in the caller's pixels
    a, b = coarse.named(), fine.named()
    assert b["length_m"] == pytest.approx(a["length_m"], rel=0.02)
    assert b["levels"] == a["levels"] and b["att_p50"] == pytest.approx(3.0, abs=0.01)


# ---------------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------------


def test_onnx_graph_reproduces_the_numpy_model() -> None:
    rng = np.random.default_rng(0)
    d, c = len(DESCRIPTOR_NAMES), 7
    model = ConsistencyModel(tuple(f"g{i}" for i in range(c)), rng.normal(size=d), rng.uniform(0.5, 2, d),
                             rng.normal(0, 0.3, (d, c)), rng.normal(size=c), rng.normal(0, 0.05, (d, c)),
                             rng.normal(2, 0.5, c))
    x = (model.mu + model.sigma * rng.normal(size=(16, d))).astype(np.float32)
    session = ort.InferenceSession(model.onnx_bytes(), providers=["CPUExecutionProvider"])
    probs, quantity = session.run(None, {"descriptor": x})
    ref_p, ref_q = model.predict(x)
    assert probs.shape == quantity.shape == (16, c)
    assert np.abs(probs - ref_p).max() < 1e-5
    assert np.abs(quantity / ref_q - 1).max() < 1e-5
    assert model.onnx_bytes() == model.onnx_bytes()  # byte-identical for the same parameters
    with pytest.raises(ModelError, match="q_weights"):
        ConsistencyModel(model.labels, model.mu, model.sigma, model.weights, model.bias, model.q_weights[:, :3],
                         model.q_bias)


def test_the_goods_threshold_keeps_the_alarm_budget() -> None:
    p = np.linspace(0.01, 0.99, 100)
    t = choose_goods_threshold(p, 2.0)
    assert int((p < t).sum()) == 2
    assert int((p < choose_goods_threshold(p, 0.5)).sum()) == 0


def test_a_small_fit_separates_fruit_from_fertiliser(small_fit: ConsistencyFit, held_out: SimDescriptors) -> None:
    scorer = small_fit.scorer()
    assert scorer.labels == PAIR and 0 < scorer.goods_threshold < 1
    for i in range(len(held_out)):
        r = scorer.score_descriptor(held_out.descriptors[i], held_out.real[i], held_out.real_quantity[i])
        assert r.predicted == held_out.real[i], r.probabilities
        assert r.p_declared > 0.9 and r.goods_consistent


def test_a_goods_mismatch_gets_a_low_p_declared(small_fit: ConsistencyFit, held_out: SimDescriptors) -> None:
    scorer = small_fit.scorer()
    for i in range(len(held_out)):
        wrong = PAIR[1] if held_out.real[i] == PAIR[0] else PAIR[0]
        r = scorer.score_descriptor(held_out.descriptors[i], wrong, held_out.real_quantity[i])
        assert r.decided and r.p_declared < 0.1 and not r.goods_consistent
        assert r.score < 0.5 and not r.consistent


def test_a_clearly_wrong_quantity_is_flagged(small_fit: ConsistencyFit, held_out: SimDescriptors) -> None:
    scorer = small_fit.scorer()
    errors = []
    for i in range(len(held_out)):
        real, q = held_out.real[i], held_out.real_quantity[i]
        right = scorer.score_descriptor(held_out.descriptors[i], real, q)
        assert right.quantity_estimate is not None and right.relative_error is not None
        errors.append(right.relative_error)
        for factor in (0.5, 2.0):  # half or double the real count declared
            r = scorer.score_descriptor(held_out.descriptors[i], real, round(q * factor))
            assert r.decided and r.goods_consistent and not r.quantity_consistent, (real, q, right.quantity_estimate)
            assert r.score < 0.5 and not r.consistent
    assert float(np.median(errors)) < 0.15 and max(errors) < 0.35, errors


# ---------------------------------------------------------------------------------------------
# Refusals and "cannot tell"
# ---------------------------------------------------------------------------------------------


def test_bad_input_is_refused_or_undecided(small_fit: ConsistencyFit, sim: SimScanner, fruit_scan: SimScan) -> None:
    scorer = small_fit.scorer()
    row_m, col_m = pitch(fruit_scan)
    air = np.zeros((375, 1000), np.float32)  # no vehicle at all
    r = scorer.score(air, air, "fruit", 20, row_m=row_m, col_m=col_m)
    assert not r.decided and "no container" in r.reason and not r.consistent and r.score == 0.0
    nan = fruit_scan.high.copy()
    nan[100, 100] = np.nan
    with pytest.raises(ScanError, match="NaN"):
        scorer.score(nan, fruit_scan.low, "fruit", 20, row_m=row_m, col_m=col_m)
    with pytest.raises(ScanError, match="shape"):
        scorer.score(fruit_scan.high, fruit_scan.low[:, :-1], "fruit", 20, row_m=row_m, col_m=col_m)
    with pytest.raises(ScanError, match="2-D"):
        scorer.score(fruit_scan.high[0], None, "fruit", 20, row_m=row_m, col_m=col_m)
    with pytest.raises(ScanError, match="pitch"):
        scorer.score(fruit_scan.high, fruit_scan.low, "fruit", 20, row_m=0.0, col_m=col_m)
    with pytest.raises(ScanError, match="quantity"):
        scorer.score(fruit_scan.high, fruit_scan.low, "fruit", float("nan"), row_m=row_m, col_m=col_m)
    # the declared class is unknown to the model, or missing: the goods cannot be checked
    tea = scorer.score(fruit_scan.high, fruit_scan.low, "tea", 20, row_m=row_m, col_m=col_m)
    assert not tea.decided and "not a class the model knows" in tea.reason and tea.predicted == "fruit"
    assert not scorer.score(fruit_scan.high, fruit_scan.low, None, 20, row_m=row_m, col_m=col_m).decided
    no_q = scorer.score(fruit_scan.high, fruit_scan.low, "fruit", None, row_m=row_m, col_m=col_m)
    assert not no_q.decided and no_q.goods_consistent and not no_q.consistent
    # an empty container: declared goods are not there; declared empty is consistent
    empty = sim.scan(random_spec(np.random.default_rng(5), goods="empty", containers=("40",)), 5)
    e = scorer.score(empty.high, empty.low, "fruit", 20, row_m=row_m, col_m=col_m)
    assert e.decided and e.predicted == "empty" and not e.goods_consistent and not e.consistent
    assert scorer.score(empty.high, empty.low, "empty", 0, row_m=row_m, col_m=col_m).consistent
    # a load declared empty is not consistent either
    loaded = scorer.score(fruit_scan.high, fruit_scan.low, "empty", 0, row_m=row_m, col_m=col_m)
    assert loaded.decided and not loaded.goods_consistent


# ---------------------------------------------------------------------------------------------
# The package and the evaluation
# ---------------------------------------------------------------------------------------------


def test_the_package_validates_and_scores_like_the_fit(tmp_path: Path, small_fit: ConsistencyFit,
                                                        fruit_scan: SimScan) -> None:
    folder = write_package(tmp_path / "pkg", small_fit, "pytest", metrics={"class_accuracy": 1.0}, seed=5)
    assert (folder / "model.onnx").stat().st_size < 20_000
    manifest = yaml.safe_load((folder / "manifest.yaml").read_text(encoding="utf-8"))
    assert manifest["task"] == "xray-consistency" and manifest["labels"] == list(PAIR)
    assert set(manifest["thresholds"]) == {"goods", "quantity_tolerance"}
    assert manifest["training"]["fit_scans"] == 8 and manifest["training"]["seed"] == 5
    validated = validate_package(folder, ValidationPolicy(allow_unsigned=True))
    packaged = ConsistencyScorer.from_model(validated.model)
    assert packaged.goods_threshold == pytest.approx(small_fit.goods_threshold, abs=1e-6)
    row_m, col_m = pitch(fruit_scan)
    a = packaged.score(fruit_scan.high, fruit_scan.low, "fruit", 12, row_m=row_m, col_m=col_m)
    b = small_fit.scorer().score(fruit_scan.high, fruit_scan.low, "fruit", 12, row_m=row_m, col_m=col_m)
    assert a.probabilities == pytest.approx(b.probabilities)
    assert a.quantity_estimate == pytest.approx(b.quantity_estimate)

    class WrongTask:
        manifest = validated.manifest.model_copy(update={"task": "xray-anomaly"})
        run = validated.model.run

    with pytest.raises(ModelError, match="cannot check manifest consistency"):
        ConsistencyScorer.from_model(WrongTask())


def test_the_evaluation_reports_model_and_baseline(small_fit: ConsistencyFit) -> None:
    result = evaluate_consistency(small_fit.scorer(), per_class=1, seed=4242)
    assert result.n == {"consistent": 2, "goods mismatch": 2, "quantity mismatch": 2}
    assert 0.0 <= result.class_accuracy <= 1.0 and 0.0 <= result.goods_auroc <= 1.0
    assert set(result.baseline) >= {"class_accuracy", "goods_auroc", "quantity_auroc", "alarms_per_100_consistent"}
    names = [g.name for g in result.groups]
    assert names[:3] == ["consistent: not flagged", "goods mismatch: flagged", "quantity mismatch: flagged"]
    assert all(g.n > 0 and "centroid+length" in g.baselines for g in result.groups)
    assert len(result.notes()) == 4
