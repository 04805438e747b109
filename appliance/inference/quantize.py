"""Int8 builds of float models: ONNX Runtime static quantization, calibrated on simulator frames.

``appliance models quantize text-detection/ppocrv4-det`` renders a short simulated lane (a fixed seed that
no evaluation uses), feeds its frames to the detector the way the lane does, quantizes the model
(QDQ format, int8 per-channel weights, uint8 activations, min/max calibration) and writes it into
the store as ``models/text-detection/ppocrv4-det-int8/<next version>/`` with a manifest that names the float
model it came from, the calibration set, and how closely it agrees with the float model on a
second, held-out simulated lane. Same data, same ONNX Runtime: the same file.

Only the text detector can be quantized. Measured (docs/EVALUATION.md): the int8 detector runs
about 1.6x faster per frame and its text/no-text map differs from the float one on under 0.1 %
of pixels, but it finds small text (seal serials) about 10 % less often, which cost the simulated
gate a point of verdict accuracy (96 % against 97 %), so the lane keeps the float detector by
default (`analyzers.ocr_detector`). An int8 recogniser changed about one line in five that the
float one read, so it is not offered.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import yaml

from appliance.errors import ModelError
from appliance.inference.manifest import ModelManifest, load_manifest
from appliance.inference.session import OnnxModel, SessionOptions, sha256_file
from appliance.inference.store import ModelRef, ModelStore

log = logging.getLogger(__name__)

CALIBRATION_SEED = 7  # never an evaluation seed (those are 2026 and the bench's)
HELD_OUT_SEED = 8
QUANTIZABLE = {"text-detection"}  # tasks with a measured int8 build (see the module doc)


@dataclass(frozen=True)
class QuantizeResult:
    ref: ModelRef
    calibration_inputs: int
    held_out_inputs: int
    agreement: float  # share of pixels on the same side of the binarisation threshold
    float_ms: float
    int8_ms: float


def detector_inputs(
    video: Path, every: int, max_side: int, mean: float = 0.5, std: float = 0.5
) -> Iterator[np.ndarray]:
    """Whole frames of ``video`` as the text detector sees them (NCHW float32), one in ``every``."""
    cap = cv2.VideoCapture(str(video))
    if not cap.isOpened():
        raise ModelError(f"{video}: calibration video cannot be opened")
    try:
        index = 0
        while True:
            ok, image = cap.read()
            if not ok:
                return
            index += 1
            if index % every:
                continue
            h, w = image.shape[:2]
            ratio = min(1.0, max_side / max(h, w))
            rh, rw = max(32, round(h * ratio / 32) * 32), max(32, round(w * ratio / 32) * 32)
            x = (cv2.resize(image, (rw, rh)).astype(np.float32) / 255.0 - mean) / std
            yield x.transpose(2, 0, 1)[None]
    finally:
        cap.release()


def _simulated_inputs(seed: int, vehicles: int, every: int, max_side: int, work: Path) -> list[np.ndarray]:
    from appliance.sim import simulate

    result = simulate(work / f"seed{seed}", vehicles, seed, gap_s=1.0)
    inputs: list[np.ndarray] = []
    for video in sorted(result.videos.values()):
        inputs.extend(detector_inputs(video, every, max_side))
    return inputs


def _quantize_file(source: Path, target: Path, inputs: list[np.ndarray], input_name: str, work: Path) -> None:
    import onnx
    from onnx import version_converter
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._items = iter(inputs)

        def get_next(self) -> dict[str, np.ndarray] | None:
            item = next(self._items, None)
            return None if item is None else {input_name: item}

    # Per-channel DequantizeLinear needs opset 13; the PaddleOCR exports are opset 12.
    upgraded = work / "opset13.onnx"
    onnx.save(version_converter.convert_version(onnx.load(str(source)), 13), str(upgraded))
    prepared = work / "prepared.onnx"
    quant_pre_process(str(upgraded), str(prepared), skip_symbolic_shape=True)
    quantize_static(
        str(prepared), str(target), _Reader(),
        quant_format=QuantFormat.QDQ, per_channel=True,
        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
        calibrate_method=CalibrationMethod.MinMax,
    )
    onnx.checker.check_model(str(target))


def _agreement(float_model: OnnxModel, int8_model: OnnxModel, inputs: list[np.ndarray],
               threshold: float) -> tuple[float, float, float]:
    """(share of pixels binarised alike, float ms per input, int8 ms per input)."""
    same = total = 0
    t_float = t_int8 = 0.0
    name_f, name_q = float_model.input_names[0], int8_model.input_names[0]
    for x in inputs:
        started = time.perf_counter()
        a = float_model.run({name_f: x})[0] > threshold
        t_float += time.perf_counter() - started
        started = time.perf_counter()
        b = int8_model.run({name_q: x})[0] > threshold
        t_int8 += time.perf_counter() - started
        same += int((a == b).sum())
        total += a.size
    n = max(1, len(inputs))
    return same / max(1, total), 1000 * t_float / n, 1000 * t_int8 / n


def _next_version(store: ModelStore, task_folder: str, name: str) -> str:
    base = store.root / task_folder / name
    numbers = [int(p.name) for p in base.iterdir() if p.name.isdigit()] if base.is_dir() else []
    return str(max(numbers, default=0) + 1)


def _write_manifest(path: Path, manifest: ModelManifest, header: str) -> None:
    data = manifest.model_dump(exclude_none=True, exclude_defaults=False)
    body = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)
    path.write_text(header + body, encoding="utf-8")


def quantize(
    store: ModelStore,
    task_folder: str,
    name: str,
    *,
    vehicles: int = 12,
    every: int = 9,
    max_side: int = 960,
    progress: Callable[[str], None] = print,
) -> QuantizeResult:
    """Write the int8 build of ``task_folder/name`` (its newest version) into the store."""
    source = store.get(task_folder, name)
    if source.manifest.task not in QUANTIZABLE:
        raise ModelError(
            f"{source.folder}: quantizing {source.manifest.task} models is not supported "
            f"(measured too lossy or not tried); supported: {sorted(QUANTIZABLE)}"
        )
    source_file = store.prepare(source)
    out_name = f"{name}-int8"
    with tempfile.TemporaryDirectory(prefix="quantize-") as tmp:
        work = Path(tmp)
        progress(f"rendering calibration lane (seed {CALIBRATION_SEED}, {vehicles} vehicles)")
        calibration = _simulated_inputs(CALIBRATION_SEED, vehicles, every, max_side, work)
        progress(f"rendering held-out lane (seed {HELD_OUT_SEED}, {max(2, vehicles // 2)} vehicles)")
        held_out = _simulated_inputs(HELD_OUT_SEED, max(2, vehicles // 2), every, max_side, work)
        if not calibration or not held_out:
            raise ModelError("the simulated calibration lane gave no frames; is the simulator working?")
        progress(f"quantizing {task_folder}/{name} v{source.version} on {len(calibration)} frames")
        staged = work / "model.onnx"
        _quantize_file(source_file, staged, calibration, source.manifest.inputs[0].name, work)

        options = SessionOptions(intra_op_threads=1)
        float_model = OnnxModel(source_file, source.manifest, options)
        int8_manifest = source.manifest.model_copy(update={
            "name": out_name,
            "sha256": sha256_file(staged),
            "source": None,
        })
        int8_model = OnnxModel(staged, int8_manifest, options)
        threshold = float(source.manifest.thresholds.get("binarize", 0.3))
        agreement, float_ms, int8_ms = _agreement(float_model, int8_model, held_out, threshold)
        progress(f"held-out agreement {agreement:.5f}, {float_ms:.1f} ms float vs {int8_ms:.1f} ms int8 per frame")

        import onnxruntime

        version = _next_version(store, task_folder, out_name)
        final = int8_manifest.model_copy(update={
            "version": version,
            "metrics": {
                "held_out_binarized_agreement": round(agreement, 6),
                "held_out_float_ms_per_frame": round(float_ms, 1),
                "held_out_int8_ms_per_frame": round(int8_ms, 1),
            },
            "training": {
                "command": f"appliance models quantize {task_folder}/{name}",
                "derived_from": f"{task_folder}/{name} v{source.version}",
                "derived_from_sha256": source.manifest.sha256,
                "method": "onnxruntime static quantization: QDQ, int8 per-channel weights, "
                          "uint8 activations, MinMax calibration, opset 13",
                "calibration": f"simulator seed {CALIBRATION_SEED}, {vehicles} vehicles, "
                               f"{len(calibration)} whole frames at {max_side} px",
                "held_out": f"simulator seed {HELD_OUT_SEED}, {len(held_out)} frames",
                "onnxruntime": onnxruntime.__version__,
            },
        })
        folder = store.root / task_folder / out_name / version
        folder.mkdir(parents=True)
        try:
            shutil.copyfile(staged, folder / final.file)
            header = (f"# {out_name}: int8 build of {task_folder}/{name} v{source.version}, made by "
                      f"`appliance models quantize {task_folder}/{name}`.\n")
            _write_manifest(folder / "manifest.yaml", final, header)
            load_manifest(folder / "manifest.yaml")
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
    ref = store.get(task_folder, out_name, version)
    return QuantizeResult(ref, len(calibration), len(held_out), agreement, float_ms, int8_ms)
