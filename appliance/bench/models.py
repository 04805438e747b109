"""``appliance bench models``: latency of every model in the store on every execution provider
this box really has.

Each model version is opened once per provider that ONNX Runtime offers here (CPU always; CUDA,
TensorRT, OpenVINO when the installed onnxruntime build has them), pinned to one intra-op
thread on CPU so the figures are per core, and run on an input of the size the lane feeds it
(text detection: a 960x544 frame, i.e. a 1920x1080 camera at the detector's 960 px; text
recognition: one 48x320 line crop). The provider that really ran is printed, so a silent
fall-back shows. The baseline is the first version of the same task listed (the float
original): each other model's ratio is its p50 against that baseline's, measured in the same run.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from appliance.errors import ModelError
from appliance.inference.session import OnnxModel, SessionOptions
from appliance.inference.store import ModelRef, ModelStore

KNOWN_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "OpenVINOExecutionProvider",
                   "CPUExecutionProvider")

# The input each task gets in the lane, by task; symbolic dims are filled from here.
LANE_INPUTS: dict[str, tuple[int, ...]] = {
    "text-detection": (1, 3, 544, 960),
    "text-recognition": (1, 3, 48, 320),
    "face-embedding": (1, 3, 150, 150),
    "xray-anomaly": (1, 1, 750, 2000),  # a 40' scan at the model's half resolution
}


@dataclass(frozen=True)
class ModelTiming:
    task: str
    name: str
    version: str
    requested: str
    provider: str  # what ONNX Runtime really ran it on
    input_shape: tuple[int, ...]
    p50_ms: float
    p95_ms: float
    runs: int


def _inputs_for(ref: ModelRef, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """One input of the size the lane feeds per model input: float32 at LANE_INPUTS (free dims filled from
    it, else 1), integer inputs (e.g. the X-ray goods index) zeros."""
    feeds: dict[str, np.ndarray] = {}
    for spec in ref.manifest.inputs:
        shape = LANE_INPUTS.get(ref.manifest.task)
        if shape is None or len(shape) != len(spec.shape):
            shape = tuple(d if isinstance(d, int) else 1 for d in spec.shape)
        shape = tuple(d if isinstance(d, int) else s for d, s in zip(spec.shape, shape, strict=True))
        if spec.dtype == "float32":
            feeds[spec.name] = rng.uniform(-1, 1, size=shape).astype(np.float32)
        elif spec.dtype in ("int64", "int32"):
            feeds[spec.name] = np.zeros(shape, np.int64 if spec.dtype == "int64" else np.int32)
        else:
            raise ModelError(f"{ref.folder}: bench models feeds float32 and integer inputs; "
                             f"{spec.name} is {spec.dtype}")
    return feeds


def time_model(ref: ModelRef, path: Path, provider: str, runs: int, warmup: int = 3) -> ModelTiming:
    options = SessionOptions(providers=(provider,), intra_op_threads=1, allow_cpu_fallback=True)
    model = OnnxModel(path, ref.manifest, options)
    feeds = _inputs_for(ref, np.random.default_rng(0))
    x = next(iter(feeds.values()))
    for _ in range(warmup):
        model.run(feeds)
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        model.run(feeds)
        samples.append((time.perf_counter() - started) * 1000)
    ordered = sorted(samples)
    return ModelTiming(ref.task, ref.name, ref.version, provider, model.providers[0], tuple(x.shape),
                       statistics.median(samples), ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], runs)


def bench_models(store: ModelStore | None = None, runs: int = 20) -> list[ModelTiming]:
    store = store or ModelStore()
    available = [p for p in KNOWN_PROVIDERS if p in ort.get_available_providers()]
    timings = []
    for ref in store.list():
        path = ref.file if ref.file.is_file() else None
        if path is None:
            from appliance.inference.store import package_file

            path = package_file(ref)
        if path is None or not path.is_file():
            raise ModelError(f"{ref.folder}: model file missing; run `appliance models prepare`")
        for provider in available:
            timings.append(time_model(ref, path, provider, runs))
    return timings


def format_models_bench(timings: list[ModelTiming]) -> str:
    providers = sorted({t.requested for t in timings})
    lines = [
        "model latency: one intra-op thread, inputs of lane size, p50/p95 over "
        f"{timings[0].runs if timings else 0} runs after warm-up",
        f"providers available here: {', '.join(providers) or 'none'} "
        f"(onnxruntime {ort.__version__}: {', '.join(ort.get_available_providers())})",
        "",
        f"{'task':<18} {'model':<20} {'ver':>3} {'requested':<28} {'ran on':<28} {'input':<16}"
        f" {'p50 ms':>8} {'p95 ms':>8} {'vs baseline':>12}",
    ]
    for t in timings:
        first = _first(timings, (t.task, t.requested))
        ratio = "baseline" if first is t else f"{first.p50_ms / t.p50_ms:.2f}x"
        lines.append(
            f"{t.task:<18} {t.name:<20} {t.version:>3} {t.requested:<28} {t.provider:<28} "
            f"{'x'.join(map(str, t.input_shape[1:])):<16} {t.p50_ms:>8.1f} {t.p95_ms:>8.1f} {ratio:>12}"
        )
    lines.append("")
    lines.append("vs baseline: the first model of the same task on the same provider (p50 / this p50; >1 is faster)")
    return "\n".join(lines)


def _first(timings: list[ModelTiming], key: tuple[str, str]) -> ModelTiming:
    return next(t for t in timings if (t.task, t.requested) == key)
