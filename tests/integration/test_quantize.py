"""The int8 text detector: the committed build and the command that reproduces it (real ORT)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from appliance.analyzers.ocr import OcrEngine
from appliance.errors import ModelError
from appliance.inference.quantize import quantize
from appliance.inference.store import DEFAULT_ROOT, ModelStore
from appliance.sim import simulate


@pytest.fixture(scope="module")
def lane_frames(tmp_path_factory: pytest.TempPathFactory) -> list[np.ndarray]:
    import cv2

    out = tmp_path_factory.mktemp("int8-lane")
    result = simulate(out, 2, seed=31, gap_s=1.0)
    cap = cv2.VideoCapture(str(result.videos["rear"]))
    frames, index = [], 0
    while True:
        ok, image = cap.read()
        if not ok:
            break
        index += 1
        if index % 2 == 0:
            frames.append(image)
    cap.release()
    return frames


def test_committed_int8_detector_names_its_float_original() -> None:
    store = ModelStore()
    int8 = store.get("text-detection", "ppocrv4-det-int8")
    original = store.get("text-detection", "ppocrv4-det")
    assert int8.manifest.training["derived_from_sha256"] == original.manifest.sha256
    assert int8.manifest.training["command"] == "appliance models quantize text-detection/ppocrv4-det"
    assert int8.file.stat().st_size < 0.5 * store.prepare(original).stat().st_size


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    (ax0, ay0), (ax1, ay1) = a.min(axis=0), a.max(axis=0)
    (bx0, by0), (bx1, by1) = b.min(axis=0), b.max(axis=0)
    w, h = min(ax1, bx1) - max(ax0, bx0), min(ay1, by1) - max(ay0, by0)
    inter = max(0.0, w) * max(0.0, h)
    union = (ax1 - ax0) * (ay1 - ay0) + (bx1 - bx0) * (by1 - by0) - inter
    return float(inter / union) if union > 0 else 0.0


def test_int8_detector_finds_the_same_text_as_the_float_one(lane_frames: list[np.ndarray]) -> None:
    """On frames it was not calibrated on, the int8 detector finds most of the float detector's
    lines. The two do differ (a line split or clipped differently, some small text missed, some
    extra boxes): the lane-level cost is measured by `appliance eval sim`, not here. A broken
    build (wrong scales) finds nearly nothing, or noise everywhere."""
    int8 = OcrEngine.from_store(detector="ppocrv4-det-int8").detector
    float_ = OcrEngine.from_store(detector="ppocrv4-det").detector
    found = matched = extra = 0
    for image in lane_frames:
        want, got = float_.detect(image), int8.detect(image)
        found += len(want)
        matched += sum(any(_iou(w, g) >= 0.5 for g in got) for w in want)
        extra += sum(not any(_iou(w, g) >= 0.5 for w in want) for g in got)
    assert found >= 20, "the test lane should show text"
    assert matched / found >= 0.75
    assert extra / found <= 0.5


def test_quantize_writes_a_new_version_with_provenance(tmp_path: Path) -> None:
    rel = "text-detection/ppocrv4-det"
    shutil.copytree(DEFAULT_ROOT / rel, tmp_path / rel, ignore=shutil.ignore_patterns("*.onnx"))
    store = ModelStore(tmp_path)
    earlier = tmp_path / "text-detection" / "ppocrv4-det-int8" / "1"
    earlier.mkdir(parents=True)
    (earlier / "keep.txt").write_text("an earlier build")
    lines: list[str] = []
    result = quantize(store, "text-detection", "ppocrv4-det", vehicles=2, every=40, progress=lines.append)
    ref = result.ref
    assert (ref.task, ref.name, ref.version) == ("text-detection", "ppocrv4-det-int8", "2")
    assert (earlier / "keep.txt").read_text() == "an earlier build"  # never overwritten
    assert ref.manifest.training["derived_from"] == "text-detection/ppocrv4-det v1"
    assert ref.manifest.metrics["held_out_binarized_agreement"] == pytest.approx(result.agreement)
    assert result.agreement > 0.99
    assert any("held-out agreement" in line for line in lines)
    model = store.open("text-detection", "ppocrv4-det-int8", "2")  # hash and I/O checked against the manifest
    out = model.run({"x": np.zeros((1, 3, 64, 64), np.float32)})
    assert out[0].shape == (1, 1, 64, 64)


def test_quantize_refuses_a_task_without_a_measured_int8_build(tmp_path: Path) -> None:
    rel = "text-recognition/ppocrv4-rec"
    shutil.copytree(DEFAULT_ROOT / rel, tmp_path / rel, ignore=shutil.ignore_patterns("*.onnx"))
    with pytest.raises(ModelError, match="quantizing text-recognition models is not supported"):
        quantize(ModelStore(tmp_path), "text-recognition", "ppocrv4-rec", progress=lambda _: None)
