"""Model slots on tiny real ONNX models (y = x * k): frame-scoped pins, swaps between frames, threads,
and the regression gate's arithmetic."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from appliance.errors import ModelError
from appliance.inference.manifest import ModelManifest, TensorSpec
from appliance.inference.registry import metric_direction, regression_problems
from appliance.inference.session import OnnxModel, sha256_file
from appliance.inference.slots import ModelSlot, ModelSlots, ShadowStats, agreement, greedy_decode

TASK = "text-detection"


def scale_model(tmp: Path, version: str, k: float, task: str = TASK) -> OnnxModel:
    """A real ONNX Runtime session of y = x * k, with its manifest."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 1, "h", "w"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 1, "h", "w"])
    k_init = helper.make_tensor("k", TensorProto.FLOAT, [], [k])
    graph = helper.make_graph([helper.make_node("Mul", ["x", "k"], ["y"])], "scale", [x], [y], [k_init])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    proto.ir_version = 8
    path = tmp / f"scale-{task}-{version}.onnx"
    onnx.save_model(proto, str(path))
    spec = ["batch", 1, "h", "w"]
    manifest = ModelManifest(name="scale", task=task, version=version, sha256=sha256_file(path), licence="test",
                             inputs=[TensorSpec(name="x", dtype="float32", shape=spec)],
                             outputs=[TensorSpec(name="y", dtype="float32", shape=spec)])
    return OnnxModel(path, manifest)


def ones() -> dict[str, np.ndarray]:
    return {"x": np.ones((1, 1, 4, 4), np.float32)}


def test_a_frame_keeps_its_model_across_a_swap(tmp_path: Path) -> None:
    v1, v2 = scale_model(tmp_path, "1", 1.0), scale_model(tmp_path, "2", 2.0)
    slot = ModelSlot(TASK, v1)
    slots = ModelSlots([slot])
    with slots.frame() as used:
        assert slot.run(ones())[0].max() == 1.0
        assert slot.swap(v2) is v1
        assert slot.run(ones())[0].max() == 1.0  # still the frame's model
        assert slot.manifest.version == "1" and slot.label == "scale@2"
        with slots.frame() as inner:  # nested: the same frame
            assert slot.run(ones())[0].max() == 1.0 and inner is used
    assert used == {TASK: "scale@1"}
    with slots.frame() as used:
        assert slot.run(ones())[0].max() == 2.0
    assert used == {TASK: "scale@2"}
    assert slot.run(ones())[0].max() == 2.0  # outside a frame: the active model
    with slots.frame() as used:
        pass
    assert used == {}  # a frame that used no model records none


def test_frames_on_threads_pin_independently(tmp_path: Path) -> None:
    models = [scale_model(tmp_path, str(v), float(v)) for v in range(1, 4)]
    slot = ModelSlot(TASK, models[0])
    slots = ModelSlots([slot])
    mismatches: list[str] = []
    done = threading.Event()

    def worker() -> None:
        while not done.is_set():
            with slots.frame() as used:
                outs = [float(slot.run(ones())[0].max()) for _ in range(5)]
            if len(set(outs)) != 1 or used[TASK] != f"scale@{int(outs[0])}":
                mismatches.append(f"{outs} {used}")

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for i in range(60):
        slot.swap(models[i % 3])
    done.set()
    for t in threads:
        t.join()
    assert mismatches == [] and slot.swaps == 60


def test_slot_refuses_a_model_of_another_task(tmp_path: Path) -> None:
    slot = ModelSlot(TASK, scale_model(tmp_path, "1", 1.0))
    with pytest.raises(ModelError, match="text-recognition"):
        slot.swap(scale_model(tmp_path, "2", 1.0, task="text-recognition"))
    with pytest.raises(ModelError, match="two model slots"):
        ModelSlots([slot, ModelSlot(TASK, scale_model(tmp_path, "3", 1.0))])


def test_shadow_sees_samples_and_never_changes_outputs(tmp_path: Path) -> None:
    slot = ModelSlot(TASK, scale_model(tmp_path, "1", 0.2))
    ModelSlots([slot])
    runner = slot.start_shadow(scale_model(tmp_path, "2", 0.5), every=2, queue_size=16)
    outs = [slot.run(ones())[0] for _ in range(10)]
    assert runner.wait_idle(10)
    assert all(np.array_equal(o, np.full((1, 1, 4, 4), 0.2, np.float32)) for o in outs)
    stats = slot.stop_shadow()
    assert stats is not None and stats["samples"] == 5 and stats["dropped"] == 0
    # 0.2 is below the default binarize threshold (0.3) and 0.5 above it: no pixel agrees.
    assert stats["agreement"] == 0.0 and slot.shadow is None


def test_detection_agreement_and_greedy_decode() -> None:
    m = ModelManifest(name="d", task=TASK, version="1", sha256="0" * 64, licence="x", inputs=[], outputs=[],
                      thresholds={"binarize": 0.5})
    a = np.array([[0.1, 0.6], [0.7, 0.2]], np.float32)
    c = np.array([[0.2, 0.9], [0.4, 0.1]], np.float32)
    assert agreement(TASK, m, [a], m, [c]) == 0.75
    assert agreement(TASK, m, [a], m, [c[:1]]) == 0.0  # other shape: no agreement
    probs = np.eye(4, dtype=np.float32)[[0, 2, 2, 0, 2, 3, 3]]
    assert greedy_decode(probs) == (2, 2, 3)
    assert greedy_decode(probs, ["blank", "a", "b", "c"]) == ("b", "b", "c")
    rec = m.model_copy(update={"task": "text-recognition"})
    other = np.eye(4, dtype=np.float32)[[2, 0, 2, 3, 0, 0, 0]]
    assert agreement("text-recognition", rec, [probs[None]], rec, [other[None]]) == 1.0


def test_shadow_stats_round_trip() -> None:
    stats = ShadowStats("x@2", samples=4, dropped=1, agreement_sum=3.0)
    stats.active_ms.extend([10.0, 20.0, 30.0])
    data = stats.as_dict()
    assert data["agreement"] == 0.75 and data["active_ms"]["p50"] == 20.0
    again = ShadowStats.from_dict("x@2", data)
    assert again.as_dict() == data
    assert ShadowStats.from_dict("x@3", data).samples == 0  # another candidate starts from zero


def manifest(metrics: dict[str, float], eval_set: str | None = "sim-200") -> ModelManifest:
    return ModelManifest(name="m", task=TASK, version="1", sha256="0" * 64, licence="x", inputs=[], outputs=[],
                         metrics=metrics, eval_set=eval_set)


def test_regression_gate() -> None:
    active = manifest({"plate_accuracy": 0.92, "container_accuracy": 0.88, "cer": 0.04, "ms_per_frame": 90})
    assert regression_problems(active, manifest({"plate_accuracy": 0.915, "cer": 0.045}), 0.01) == []
    problems = regression_problems(
        active, manifest({"plate_accuracy": 0.90, "container_accuracy": 0.95, "cer": 0.06, "ms_per_frame": 500}),
        0.01)
    assert len(problems) == 2
    assert problems[0].startswith("cer 0.04 -> 0.06 (+0.02") and "lower is better" in problems[0]
    assert problems[1].startswith("plate_accuracy 0.92 -> 0.9 (-0.02")
    assert regression_problems(active, manifest({"plate_accuracy": 0.5}, eval_set="other"), 0.01) == []
    assert regression_problems(manifest({"a": 0.9}, None), manifest({"a": 0.1}, None), 0.01) == []
    assert regression_problems(active, manifest({"plate_accuracy": 0.90}), 0.05) == []
    assert regression_problems(active, manifest({"plate_accuracy": 0.91}), 0.0) != []
    assert [metric_direction(n) for n in ("accuracy", "wer", "train_loss", "latency_p95", "ms_per_frame",
                                          "held_out_binarized_agreement", "held_out_int8_ms_per_frame")] == [
        "higher", "lower", "lower", None, None, "higher", None]
