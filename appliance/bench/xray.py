"""``appliance bench xray``: one 40' container scan at scanner resolution, calibrated, scored, rendered.

A simulated 40' truck scan (1,500 rows x about 4,000 columns, 16-bit, dual energy) goes through
what the appliance does with a real one: flat-field calibration to attenuation (dark/air frames of
the virtual scanner), the container finder, the anomaly model (ONNX Runtime, one thread; the store's
``xray-anomaly`` model when one is installed, else one fitted in this run on simulated normal scans:
the cost depends on the graph and the bank size, not on how well it was fitted), the findings, the
material map and the evidence image (false colour + heat map + boxes). Target: under 1 s in all.
Baseline in the same run: the same model fed the scan at full resolution instead of the model's
half-resolution input.
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from appliance.config import XrayConfig
from appliance.xray.anomaly import AnomalyScorer

DEFAULT_MODEL = XrayConfig.model_fields["model"].default
TARGET_MS = 1000.0


def bench_xray(runs: int = 5, seed: int = 3) -> str:
    from appliance.sim.xray import calibration_frames, random_spec, render_scan
    from appliance.training.xray_anomaly import TRAIN_SCALE, fit_from_simulation, scorer_for
    from appliance.xray.anomaly import render_overlay
    from appliance.xray.calibration import build_calibration
    from appliance.xray.materials import classify_materials, false_colour
    from appliance.xray.scan import ScanMeta, XrayScan

    rng = np.random.default_rng(seed)
    spec = random_spec(rng, goods="electronics", anomaly="dense_block", containers=("40",))
    rendered = render_scan(spec, seed, scale=1.0)
    assert rendered.scanner is not None
    frames = calibration_frames(rendered.scanner, seed=1)
    calibration = build_calibration(rendered.scanner.scanner_id, dark=frames["dark"], air=frames["air"])
    scan = XrayScan("bench", rendered.high, ScanMeta(rendered.scanner.scanner_id, 0.0), low=rendered.low)
    scorer: AnomalyScorer | None
    scorer, source = store_scorer()
    if scorer is None:
        model, threshold, _ = fit_from_simulation("knn", 2, seed=1)
        scorer = scorer_for(model, TRAIN_SCALE, threshold)
        source = "fitted in this run (knn, 2 normal scans per class; no xray-anomaly model in the store)"
    full = AnomalyScorer(scorer.run, scorer.labels, 1.0, scorer.threshold)
    steps: dict[str, list[float]] = {k: [] for k in ("calibrate", "containers", "model", "materials", "render",
                                                      "total", "baseline: model at full resolution")}
    result = None
    for _ in range(runs):
        t0 = time.perf_counter()
        att = calibration.attenuation(scan)
        t1 = time.perf_counter()
        result = scorer.score(att.high, att.low, "electronics")
        t2 = time.perf_counter()
        classes = classify_materials(att, calibration.thresholds)
        t3 = time.perf_counter()
        overlay = render_overlay(att.high, result)
        _ = false_colour(att, classes)
        t4 = time.perf_counter()
        steps["calibrate"].append(1000 * (t1 - t0))
        steps["containers"].append(result.timings_ms["containers"])
        steps["model"].append(result.timings_ms["model"])
        steps["materials"].append(1000 * (t3 - t2))
        steps["render"].append(1000 * (t4 - t3))
        steps["total"].append(1000 * (t4 - t0))
        t5 = time.perf_counter()
        full.score(att.high, att.low, "electronics")
        steps["baseline: model at full resolution"].append(1000 * (time.perf_counter() - t5))
    assert result is not None
    rows, cols = scan.shape
    p50 = statistics.median(steps["total"])
    lines = [
        f"X-ray benchmark: one 40' truck scan, {rows} x {cols} px, 16-bit, dual energy; {runs} runs, one core "
        f"(ONNX Runtime 1 thread); model: {source}",
        f"evidence image {overlay.shape[1]} x {overlay.shape[0]}; score {result.score:.2f} vs threshold "
        f"{result.threshold:.2f}; {len(result.findings)} finding(s)",
        "",
        f"{'step':40s} {'p50 ms':>9s} {'max ms':>9s}",
    ]
    for name, values in steps.items():
        lines.append(f"{name:40s} {statistics.median(values):9.1f} {max(values):9.1f}")
    base = statistics.median(steps["baseline: model at full resolution"])
    model_ms = statistics.median(steps["model"])
    lines += ["", f"calibrated, scored and rendered in {p50:.0f} ms (p50), {max(steps['total']):.0f} ms (max): "
              f"target < {TARGET_MS:.0f} ms: {'ok' if max(steps['total']) < TARGET_MS else 'MISSED'}",
              f"half-resolution model input vs full resolution: {base / model_ms:.1f}x faster"]
    return "\n".join(lines)


def store_scorer(name: str = DEFAULT_MODEL) -> tuple[AnomalyScorer | None, str]:
    """The store's ``xray-anomaly/<name>`` (the model a lane serves by default), if installed."""
    from appliance.inference.session import SessionOptions
    from appliance.inference.store import ModelStore

    model = ModelStore().open_if_present("xray-anomaly", name, SessionOptions(intra_op_threads=1))
    if model is None:
        return None, ""
    m = model.manifest
    return AnomalyScorer.from_model(model), f"{m.task}/{m.name} v{m.version} from the store"
