"""``appliance train xray-anomaly``: fit the X-ray anomaly model on simulated normal scans, export ONNX.

Reproducible from the project's own data: the simulator (appliance/sim/xray.py) renders normal
scans of every goods class; each is calibrated with the virtual scanner's own dark and air frames
exactly as a real scan would be (appliance/xray/calibration.py); the features inside the containers
are collected; the normal model is fitted per class (``anomaly_fit``); the alarm threshold is set
on a separate set of clean validation scans for at most ``alarms_per_100`` alarms per 100 clean
scans. The package (model.onnx + manifest.yaml) needs no torch: the graph is built with onnx.helper.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np

from appliance.training.packages import next_version, sign_if_key, write_manifest
from appliance.xray.anomaly_fit import BANK_SIZE, FeatureExtractor, NormalModel, fit_normal_model, region_cells
from appliance.xray.anomaly_graph import Head
from appliance.xray.calibration import XrayCalibration, build_calibration
from appliance.xray.regions import cargo_interior, find_containers
from appliance.xray.scan import ScanMeta, XrayScan

log = logging.getLogger(__name__)

TRAIN_SCALE = 0.5  # the model's pixel pitch: half the scanner's native resolution (6 x 8 mm cells of 8 px)
EVAL_SET = "sim-xray-v1"


@dataclass
class SimScan:
    high: np.ndarray  # attenuation after calibration
    low: np.ndarray
    truth: dict[str, Any]


class SimScanner:
    """Renders simulated scans and calibrates them with the virtual scanner's own dark/air frames."""

    def __init__(self, scale: float = TRAIN_SCALE):
        self.scale = scale
        self._calibrations: dict[int, XrayCalibration] = {}

    def calibration(self, scanner: Any) -> XrayCalibration:
        from appliance.sim.xray import calibration_frames

        cal = self._calibrations.get(scanner.rows)
        if cal is None:
            frames = calibration_frames(scanner, seed=1)
            cal = build_calibration(scanner.scanner_id, dark=frames["dark"], air=frames["air"])
            self._calibrations[scanner.rows] = cal
        return cal

    def scan(self, spec: Any, seed: int) -> SimScan:
        from appliance.sim.xray import render_scan

        r = render_scan(spec, seed, scale=self.scale)
        scan = XrayScan("sim", r.high, ScanMeta(r.scanner.scanner_id if r.scanner else "SIM", 0.0), low=r.low)
        att = self.calibration(r.scanner).attenuation(scan)
        assert att.low is not None
        return SimScan(att.high, att.low, r.truth)


def container_boxes(truth: dict[str, Any]) -> list[tuple[int, int, int, int]]:
    return [(int(c["bbox"][0]), int(c["bbox"][1]), int(c["bbox"][2]), int(c["bbox"][3]))
            for c in truth["vehicle"]["containers"]]


def fit_from_simulation(head: Head, scans_per_class: int, seed: int, bank_size: int = BANK_SIZE,
                        scale: float = TRAIN_SCALE, alarms_per_100: float = 2.0) -> tuple[NormalModel, float, dict]:
    """(normal model, alarm threshold, report) from simulated scans: per class ``scans_per_class`` to fit,
    half as many to scale the distances, and as many again (all classes) to set the threshold."""
    from appliance.sim.xray import GOODS_CLASSES, random_spec
    started = time.perf_counter()
    sim = SimScanner(scale)
    features = FeatureExtractor()
    rng = np.random.default_rng([seed, 404])
    fit_cells: dict[str, list[np.ndarray]] = {g: [] for g in GOODS_CLASSES}
    hold_cells: dict[str, list[np.ndarray]] = {g: [] for g in GOODS_CLASSES}
    hold_n = max(1, scans_per_class // 2)
    k = 0
    for goods in GOODS_CLASSES:
        for i in range(scans_per_class + hold_n):
            k += 1
            s = sim.scan(random_spec(rng, goods=goods), seed * 100_000 + k)
            feats = features(s.high, s.low)
            # The regions the appliance will score: what the container finder finds (cargo, walls, the deck).
            cells = [region_cells(feats, cargo_interior(box)) for box in find_containers(s.high)]
            (fit_cells if i < scans_per_class else hold_cells)[goods].extend(c for c in cells if len(c))
    model = fit_normal_model(head, GOODS_CLASSES, fit_cells, hold_cells, bank_size, seed)
    # The alarm threshold: clean validation scans scored exactly as the appliance scores them.
    scorer = scorer_for(model, 1.0, threshold=float("inf"))
    clean = []
    for goods in GOODS_CLASSES:
        for _ in range(hold_n):
            k += 1
            s = sim.scan(random_spec(rng, goods=goods), seed * 100_000 + k)
            clean.append(scorer.score(s.high, s.low, goods).score)
    threshold = float(np.percentile(clean, 100 - alarms_per_100)) if clean else 1.5
    report = {"fit_scans": scans_per_class * len(GOODS_CLASSES), "scale_scans": hold_n * len(GOODS_CLASSES),
              "threshold_scans": len(clean), "seconds": round(time.perf_counter() - started, 1)}
    return model, max(threshold, 1.0), report


def scorer_for(model: NormalModel, scale: float, threshold: float) -> Any:
    """An AnomalyScorer on an in-memory fitted model (no package yet)."""
    import onnxruntime as ort

    from appliance.xray.anomaly import AnomalyScorer

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(model.onnx_bytes(), options, providers=["CPUExecutionProvider"])
    return AnomalyScorer(lambda feeds: list(session.run(None, feeds)), model.labels, scale, threshold)


def write_package(folder: Path, blob: bytes, labels: tuple[str, ...], threshold: float, report: dict, command: str,
                  name: str, version: str, metrics: dict[str, float] | None = None, scale: float = TRAIN_SCALE,
                  training: dict[str, Any] | None = None) -> Path:
    """Write model.onnx and manifest.yaml into ``folder`` (created); returns the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.onnx").write_bytes(blob)
    manifest = {
        "name": name,
        "task": "xray-anomaly",
        "version": version,
        "file": "model.onnx",
        "sha256": hashlib.sha256(blob).hexdigest(),
        "licence": "Apache-2.0 (this project; fitted on its own simulated scans)",
        "inputs": [{"name": "high", "dtype": "float32", "shape": [1, 1, "H", "W"]},
                   {"name": "low", "dtype": "float32", "shape": [1, 1, "H", "W"]},
                   {"name": "goods", "dtype": "int64", "shape": [1]}],
        "outputs": [{"name": "heatmap", "dtype": "float32", "shape": [1, 1, "h", "w"]}],
        "preprocess": {"scale": scale, "input": "attenuation -ln(I') after dark/air calibration"},
        "thresholds": {"alarm": round(threshold, 4)},
        "labels": list(labels),
        "metrics": metrics or {},
        "eval_set": EVAL_SET if metrics else None,
        "training": {"command": command, **(training or {}), **report},
    }
    header = ("# X-ray anomaly model (docs/XRAY.md): heat map per 8 px cell at the model's scale, 1.0 = the goods "
              "class's\n# normal 99th percentile. Made by the command under training.command.\n")
    write_manifest(folder, manifest, header)
    return folder


def train_xray_anomaly(head: str, scans_per_class: int, seed: int, name: str, root: Path, key: Path | None,
                       eval_per_class: int, steps: int = 0) -> tuple[Path, dict[str, float]]:
    """Fit (``knn``/``gaussian``) or train (``cnn``, needs torch), measure on the held-out simulated set,
    write the package as the next version in ``root``, sign it."""
    from appliance.eval.xray_sim import evaluate_sim_xray

    command = (f"appliance train xray-anomaly --head {head} --scans-per-class {scans_per_class} --seed {seed} "
               f"--name {name}")
    if head == "cnn":
        from appliance.training.xray_cnn import CnnSettings, fit_cnn_from_simulation, onnx_scorer

        settings = CnnSettings(steps=steps or CnnSettings.steps, seed=seed)
        command += f" --steps {settings.steps}"
        blob, labels, threshold, report = fit_cnn_from_simulation(scans_per_class, seed, settings, TRAIN_SCALE)
        scorer = onnx_scorer(blob, labels, 1.0, threshold)
        training: dict[str, Any] = {"head": "cnn", "seed": seed}
    else:
        model, threshold, report = fit_from_simulation(cast(Head, head), scans_per_class, seed)
        blob, labels = model.onnx_bytes(), model.labels
        scorer = scorer_for(model, 1.0, threshold)
        training = {"head": model.head, "seed": seed,
                    "bank_size": int(model.banks.shape[1]) if model.head == "knn" else 0}
    metrics: dict[str, float] = {}
    if eval_per_class > 0:
        result = evaluate_sim_xray(scorer, per_class=eval_per_class)
        metrics = {f"sim_auroc_{k}": round(v, 4) for k, v in result.auroc.items()}
        metrics["sim_alarms_per_100_clean"] = round(result.alarms_per_100_clean, 2)
    target, version = next_version(root, "xray-anomaly", name)
    folder = write_package(target, blob, labels, threshold, report, command, name, version, metrics,
                           training=training)
    sign_if_key(folder, key)
    return folder, metrics
