"""``appliance train detector`` end to end on a tiny synthetic dataset: real ultralytics training on CPU,
ONNX export, golden cases, validation and install into a temporary store, with the network blocked.

Until ``appliance training export`` lands, ``make_dataset`` writes the same layout: DIR/data.yaml,
DIR/images/{train,val}/*.jpg, DIR/labels/{train,val}/*.txt and DIR/../manifest.json.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import yaml

from appliance.errors import ModelError
from appliance.inference.contracts import GraphTensor, check_contract
from appliance.inference.manifest import load_manifest
from appliance.inference.session import OnnxModel
from appliance.inference.signing import keygen
from appliance.inference.store import ModelStore
from appliance.inference.validation import ValidationPolicy, validate_package
from appliance.training.train_cli import add_train_parsers
from appliance.training.train_detector import letterbox, load_dataset, offline_environment, train_detector


@pytest.fixture
def train_extra() -> None:
    """Training needs the train extra (scripts/setup.sh installs it): without it these tests fail, never skip.
    (Not importorskip: importing ultralytics before offline_environment() would fix its settings folder.)"""
    if importlib.util.find_spec("ultralytics") is None:
        pytest.fail("the train extra is not installed: run scripts/setup.sh (pip install -e '.[dev,train]')")


needs_train_extra = pytest.mark.usefixtures("train_extra")

NAMES = {0: "plate", 1: "container_number", 2: "seal", 3: "fleet_id"}
IMGSZ = 160


def _draw(rng: np.random.Generator, w: int, h: int) -> tuple[np.ndarray, list[tuple[int, float, float, float, float]]]:
    """A dark noisy frame with 1-3 bright objects: white plates (class 0) and yellow number panels (class 1)."""
    image = rng.integers(10, 70, size=(h, w, 3), dtype=np.uint8)
    boxes: list[tuple[int, float, float, float, float]] = []
    taken: list[tuple[int, int, int, int]] = []
    for _ in range(int(rng.integers(1, 4))):
        cls = int(rng.integers(0, 2))
        bw = int(rng.integers(w // 5, w // 2))
        bh = int(bw * (0.35 if cls == 0 else 0.6))
        for _try in range(20):
            x0, y0 = int(rng.integers(0, w - bw)), int(rng.integers(0, h - bh))
            if all(x0 + bw < a or a + c < x0 or y0 + bh < b or b + d < y0 for a, b, c, d in taken):
                break
        else:
            continue
        taken.append((x0, y0, bw, bh))
        colour = (235, 235, 235) if cls == 0 else (30, 210, 240)  # BGR: white / yellow
        cv2.rectangle(image, (x0, y0), (x0 + bw, y0 + bh), colour, thickness=-1)
        for k in range(3):  # dark "characters"
            cx = x0 + (k + 1) * bw // 4
            cv2.rectangle(image, (cx - bw // 16, y0 + bh // 4), (cx + bw // 16, y0 + 3 * bh // 4), (20, 20, 20), -1)
        boxes.append((cls, (x0 + bw / 2) / w, (y0 + bh / 2) / h, bw / w, bh / h))
    return image, boxes


def make_dataset(root: Path, train: int = 24, val: int = 8, seed: int = 5) -> Path:
    """The layout of ``appliance training export``; returns DIR/data.yaml (DIR = root/dataset)."""
    rng = np.random.default_rng(seed)
    data = root / "dataset"
    for split, count in (("train", train), ("val", val)):
        (data / "images" / split).mkdir(parents=True)
        (data / "labels" / split).mkdir(parents=True)
        for i in range(count):
            w, h = int(rng.choice([160, 224, 320])), int(rng.choice([160, 192, 240]))
            image, boxes = _draw(rng, w, h)
            cv2.imwrite(str(data / "images" / split / f"{split}-{i:03d}.jpg"), image)
            (data / "labels" / split / f"{split}-{i:03d}.txt").write_text(
                "".join(f"{c} {x:.6f} {y:.6f} {bw:.6f} {bh:.6f}\n" for c, x, y, bw, bh in boxes), encoding="utf-8"
            )
    (data / "data.yaml").write_text(
        yaml.safe_dump({"path": str(data), "train": "images/train", "val": "images/val", "names": NAMES},
                       sort_keys=False),
        encoding="utf-8",
    )
    (root / "manifest.json").write_text(json.dumps({  # the shape of `appliance training export`'s manifest
        "format": "gate-appliance training export v1",
        "created_at": "2026-11-23T00:00:00+00:00",
        "command": "tests/integration/test_train_detector.py make_dataset",
        "classes": list(NAMES.values()),
        "split": {"rule": "by unit", "val_share": val / (train + val), "seed": seed,
                  "units": {"train": train, "val": val},
                  "unit_lists": {"train": [f"t{i}" for i in range(train)], "val": [f"v{i}" for i in range(val)]}},
        "detector": {"data_yaml": "dataset/data.yaml", "counts": {"train": {"images": train}, "val": {"images": val}}},
        "recognizer": {"counts": {"train": {"crops": 0}, "val": {"crops": 0}}},
    }), encoding="utf-8")
    return data / "data.yaml"


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every outbound connection attempt or name lookup fails and is recorded."""
    attempts: list[str] = []

    def refuse(what: str) -> Any:
        def blocked(*args: Any, **kwargs: Any) -> Any:
            attempts.append(f"{what}{args[1:] if what.startswith('socket') else args}")
            raise OSError(f"network access blocked by the test: {what}")
        return blocked

    monkeypatch.setattr(socket.socket, "connect", refuse("socket.connect"))
    monkeypatch.setattr(socket.socket, "connect_ex", refuse("socket.connect_ex"))
    monkeypatch.setattr(socket, "getaddrinfo", refuse("getaddrinfo"))
    monkeypatch.setattr(socket, "create_connection", refuse("create_connection"))
    yield attempts


@pytest.mark.slow
@needs_train_extra
def test_train_detector_installs_a_validated_candidate(tmp_path: Path, no_network: list[str],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    offline_environment()
    from ultralytics.engine.model import Model

    data_yaml = make_dataset(tmp_path)
    store = ModelStore(tmp_path / "store")

    # What ultralytics itself reports from its validation run (spied, not recomputed).
    reported: list[dict[str, float]] = []
    validated_boxes: list[int] = []
    real_val = Model.val

    def spy_val(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = real_val(self, *args, **kwargs)
        reported.append(dict(result.results_dict))
        validated_boxes.append(int(result.nt_per_class.sum()))
        return result

    monkeypatch.setattr(Model, "val", spy_val)
    lines: list[str] = []
    started = time.perf_counter()
    ref = train_detector(data_yaml, store, name="lane-objects", epochs=2, imgsz=IMGSZ, batch=8, seed=0,
                         progress=lines.append)
    wall = time.perf_counter() - started

    assert no_network == []
    assert (ref.task, ref.name, ref.version) == ("object-detection", "lane-objects", "1")
    assert ref.folder == store.root / "object-detection" / "lane-objects" / "1"
    assert [line.split(":")[0] for line in lines if not line.startswith(("train: done", "export: "))] == [
        "train", "validate", "validate", "golden", "install"]

    manifest = load_manifest(ref.folder / "manifest.yaml")
    assert manifest.labels == list(NAMES.values())
    assert manifest.licence.startswith("AGPL-3.0")
    assert len(reported) == 1
    ultra = reported[0]
    # From scratch, 2 epochs on 24 images score about 0: what matters is that these are ultralytics'
    # numbers for this val split (its box count), not what they are.
    assert validated_boxes == [sum(manifest.training["dataset"]["boxes"]["val"].values())] and validated_boxes[0] > 0
    assert manifest.metrics == {
        "mAP50": ultra["metrics/mAP50(B)"], "mAP50-95": ultra["metrics/mAP50-95(B)"],
        "precision": ultra["metrics/precision(B)"], "recall": ultra["metrics/recall(B)"],
    }
    assert manifest.eval_set is not None and manifest.eval_set.startswith(f"{tmp_path.name}:val@")
    training = manifest.training
    assert training["epochs"] == 2 and training["imgsz"] == IMGSZ and training["seed"] == 0
    assert training["ultralytics"] and training["torch"] and training["architecture"] == "yolov8n.yaml"
    assert training["dataset"]["train_images"] == 24 and training["dataset"]["val_images"] == 8
    export = training["dataset"]["export"]
    assert export["detector"]["counts"]["val"]["images"] == 8 and export["split"]["units"] == {"train": 24, "val": 8}
    assert "recognizer" not in export and "unit_lists" not in export["split"]
    assert training["wall_time_s"] > 0
    assert manifest.preprocess["imgsz"] == IMGSZ and manifest.preprocess["channel_order"] == "RGB"

    golden = sorted((ref.folder / "golden").glob("case-*.npz"))
    assert len(golden) == 2
    validated = validate_package(ref.folder, ValidationPolicy(allow_unsigned=True), store_root=store.root)
    assert any(check.startswith("golden: 2 case(s)") for check in validated.checks)
    assert any(check.startswith("contract: object-detection") for check in validated.checks)

    model_file = ref.folder / manifest.file
    assert model_file.stat().st_size < 20_000_000
    (out_spec,) = manifest.outputs
    assert out_spec.shape[1] == 4 + len(NAMES)
    val_image = cv2.imread(str(sorted((data_yaml.parent / "images" / "val").glob("*.jpg"))[-1]))
    x, _, _ = letterbox(val_image, IMGSZ)
    assert x.shape == (1, 3, IMGSZ, IMGSZ)
    (out,) = OnnxModel(model_file, manifest).run({manifest.inputs[0].name: x})
    assert list(out.shape) == out_spec.shape and out.dtype == np.float32
    assert np.isfinite(out).all()

    # A second run is the next version, never a change to the first.
    assert not (store.root / "object-detection" / "lane-objects" / "2").exists()
    assert wall < 90, f"training took {wall:.0f} s"


def test_dataset_errors_name_the_file(tmp_path: Path) -> None:
    data_yaml = make_dataset(tmp_path, train=2, val=1)
    dataset = load_dataset(data_yaml)
    assert dataset.names == list(NAMES.values()) and dataset.train_images == 2
    assert dataset.export["classes"] == list(NAMES.values()) and dataset.name == tmp_path.name
    bad = data_yaml.parent / "labels" / "train" / "train-000.txt"
    bad.write_text("7 0.5 0.5 0.1 0.1\n", encoding="utf-8")
    with pytest.raises(ModelError, match=r"train-000.txt:1: expected 'class cx cy w h'"):
        load_dataset(data_yaml)
    with pytest.raises(ModelError, match="dataset file not found"):
        load_dataset(tmp_path / "nope" / "data.yaml")


def test_a_missing_checkpoint_is_refused_not_downloaded(tmp_path: Path, no_network: list[str]) -> None:
    data_yaml = make_dataset(tmp_path, train=2, val=1)
    with pytest.raises(ModelError, match="nothing is downloaded"):
        train_detector(data_yaml, ModelStore(tmp_path / "store"), model_yaml="yolov8n.pt", epochs=1,
                       progress=lambda _: None)
    assert no_network == []


@pytest.mark.slow
@needs_train_extra
def test_cli_signs_and_installs_the_next_version(tmp_path: Path, no_network: list[str],
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    data_yaml = make_dataset(tmp_path, train=8, val=2)
    store = tmp_path / "store"
    (store / "object-detection" / "gate-objects" / "1").mkdir(parents=True)  # an older version's number
    private, public = keygen(tmp_path / "keys")
    parser = argparse.ArgumentParser()
    add_train_parsers(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["train", "detector", "--data", str(data_yaml), "--name", "gate-objects",
                              "--epochs", "1", "--imgsz", "64", "--batch", "4", "--seed", "3", "--key", str(private),
                              "--root", str(store), "--work", str(tmp_path / "work")])
    assert args.func(args) == 0
    assert no_network == []
    folder = store / "object-detection" / "gate-objects" / "2"
    out = capsys.readouterr().out
    assert f"installed object-detection/gate-objects v2  {folder}" in out
    for phase in ("train:", "validate:", "export:", "golden:", "install:"):
        assert f"\n{phase}" in "\n" + out, phase
    assert (folder / "signature.json").is_file()
    # Signed: a box that trusts the key loads it; one that does not refuses it, unsigned allowed or not.
    validate_package(folder, ValidationPolicy(trusted_keys=(public,)), store_root=store)
    with pytest.raises(ModelError, match="signature: signed by key"):
        validate_package(folder, ValidationPolicy(allow_unsigned=True), store_root=store)
    manifest = load_manifest(folder / "manifest.yaml")
    assert manifest.training["seed"] == 3 and "--name gate-objects" in manifest.training["command"]
    assert manifest.inputs[0].shape == [1, 3, 64, 64]
    assert (tmp_path / "work" / "runs" / "train" / "weights" / "best.pt").is_file()  # --work keeps the run


def test_the_runtime_never_imports_torch() -> None:
    code = ("import sys; import appliance.cli, appliance.app, appliance.training.train_cli, "
            "appliance.training.train_detector; "
            "bad = sorted(m for m in ('torch', 'torchvision', 'ultralytics') if m in sys.modules); "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_object_detection_contract(tmp_path: Path) -> None:
    """One image batch in; (N, 4 + classes, anchors) out, classes as many as the manifest's labels."""
    doc = {"name": "d", "task": "object-detection", "version": "1", "sha256": "0" * 64, "licence": "test",
           "inputs": [{"name": "images", "dtype": "float32", "shape": [1, 3, 320, 320]}],
           "outputs": [{"name": "output0", "dtype": "float32", "shape": [1, 8, 2100]}],
           "labels": list(NAMES.values())}
    path = tmp_path / "manifest.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    manifest = load_manifest(path)
    images = [GraphTensor("images", "float32", (1, 3, 320, 320))]
    assert check_contract(manifest, images, [GraphTensor("output0", "float32", (1, 8, 2100))], "m").task == \
        "object-detection"
    free = manifest.outputs[0].model_copy(update={"shape": ["batch", "channels", "anchors"]})
    check_contract(manifest.model_copy(update={"outputs": [free]}), images,
                   [GraphTensor("output0", "float32", ("batch", None, "anchors"))], "m")  # free dims: checked at run
    with pytest.raises(ModelError, match=r"output 'output0' \(box and class scores\) dim 1 is 7"):
        check_contract(manifest.model_copy(update={"outputs": [manifest.outputs[0].model_copy(
            update={"shape": [1, 7, 2100]})]}), images, [GraphTensor("output0", "float32", (1, 7, 2100))], "m")
    with pytest.raises(ModelError, match="must list its class names in labels"):
        check_contract(manifest.model_copy(update={"labels": []}), images,
                       [GraphTensor("output0", "float32", (1, 8, 2100))], "m")
    with pytest.raises(ModelError, match=r"input 'images' .* dim 1 is 1"):
        check_contract(manifest.model_copy(update={"inputs": [manifest.inputs[0].model_copy(
            update={"shape": [1, 1, 320, 320]})]}), [GraphTensor("images", "float32", (1, 1, 320, 320))],
            [GraphTensor("output0", "float32", (1, 8, 2100))], "m")


def test_what_the_install_would_refuse_is_refused_before_training(tmp_path: Path) -> None:
    data_yaml = make_dataset(tmp_path, train=2, val=1)
    store = ModelStore(tmp_path / "store")
    _, public = keygen(tmp_path / "keys")
    other_private, _ = keygen(tmp_path / "other")
    strict = ValidationPolicy(trusted_keys=(public,), allow_unsigned=False)
    with pytest.raises(ModelError, match="refuses unsigned models"):
        train_detector(data_yaml, store, policy=strict, epochs=1, progress=lambda _: None)
    with pytest.raises(ModelError, match=r"is not in the config's models\.trusted_keys"):
        train_detector(data_yaml, store, policy=strict, key=other_private, epochs=1, progress=lambda _: None)
    with pytest.raises(ModelError, match="cannot read the signing key"):
        train_detector(data_yaml, store, key=tmp_path / "missing.pem", epochs=1, progress=lambda _: None)
    assert not store.root.exists()


@pytest.mark.slow
@needs_train_extra
def test_from_simulator_export_to_a_registered_candidate(tmp_path: Path, no_network: list[str]) -> None:
    """The loop a model engineer runs: simulate, `training export`, `train detector`, a candidate in the store."""
    from appliance.sim import simulate
    from appliance.training.export import export_training_data

    simulate(tmp_path / "sim", 3, seed=23, width=960, height=540, gap_s=1.0)
    export_training_data(tmp_path / "export", [tmp_path / "sim"], every=4, val_share=0.34)
    data_yaml = tmp_path / "export" / "detector" / "data.yaml"
    store = ModelStore(tmp_path / "store")
    ref = train_detector(data_yaml, store, name="lane-objects", epochs=1, imgsz=IMGSZ, batch=8,
                         progress=lambda _line: None)
    assert (ref.task, ref.name, ref.version) == ("object-detection", "lane-objects", "1")
    assert ref.manifest.labels == list(NAMES.values())
    assert ref.manifest.eval_set and ":val@" in ref.manifest.eval_set
    assert ref.manifest.training["dataset"]  # the export's provenance travels into the model's manifest
    validated = validate_package(ref.folder, ValidationPolicy(allow_unsigned=True), store_root=store.root)
    assert any(check.startswith("golden:") and "case" in check for check in validated.checks)
    assert no_network == []
