"""The ONNX layer with real ONNX Runtime sessions on the packaged PP-OCR models."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from appliance.cli import main
from appliance.errors import ModelError
from appliance.inference.manifest import load_manifest
from appliance.inference.session import OnnxModel
from appliance.inference.store import DEFAULT_ROOT, ModelStore, package_file

PACKAGED = ("text-detection/ppocrv4-det", "text-recognition/ppocrv4-rec")


def copy_packaged_manifests(root: Path) -> None:
    """The manifests of the models that ship in a wheel, without their files (not yet prepared)."""
    for rel in PACKAGED:
        shutil.copytree(DEFAULT_ROOT / rel, root / rel, ignore=shutil.ignore_patterns("*.onnx"))


@pytest.fixture()
def store(tmp_path: Path) -> ModelStore:
    copy_packaged_manifests(tmp_path)
    return ModelStore(tmp_path)


def test_prepare_copies_the_packaged_model_and_it_runs(store: ModelStore) -> None:
    ref = store.get("text-detection", "ppocrv4-det")
    assert not ref.file.exists()
    path = store.prepare(ref)
    assert path == ref.file and path.is_file()
    model = store.open("text-detection", "ppocrv4-det")
    assert model.providers[0] == "CPUExecutionProvider"
    out = model.run({"x": np.zeros((1, 3, 64, 64), np.float32)})
    assert out[0].shape == (1, 1, 64, 64)


def test_missing_model_file_is_a_clear_error(store: ModelStore, tmp_path: Path) -> None:
    ref = store.get("text-detection", "ppocrv4-det")
    with pytest.raises(ModelError, match=r"not found.*models prepare"):
        OnnxModel(tmp_path / "nothing.onnx", ref.manifest)


def test_non_onnx_file_is_refused(store: ModelStore, tmp_path: Path) -> None:
    ref = store.get("text-detection", "ppocrv4-det")
    bogus = tmp_path / "bogus.onnx"
    bogus.write_bytes(b"this is not a model")
    manifest = ref.manifest.model_copy(update={"sha256": __import__("hashlib").sha256(bogus.read_bytes()).hexdigest()})
    with pytest.raises(ModelError, match="cannot load this file as an ONNX model"):
        OnnxModel(bogus, manifest)


def test_corrupt_model_fails_the_hash_check(store: ModelStore) -> None:
    ref = store.get("text-detection", "ppocrv4-det")
    path = store.prepare(ref)
    data = bytearray(path.read_bytes())
    data[1000] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="does not match the manifest"):
        store.open("text-detection", "ppocrv4-det")


def test_manifest_that_lies_about_inputs_is_refused(store: ModelStore) -> None:
    ref = store.get("text-recognition", "ppocrv4-rec")
    src = package_file(ref)
    assert src is not None
    wrong = ref.manifest.model_copy(update={"inputs": [ref.manifest.inputs[0].model_copy(update={"name": "image"})]})
    with pytest.raises(ModelError, match="input names"):
        OnnxModel(src, wrong)


def test_bad_manifests(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text("name: x\ntask: y\n")
    with pytest.raises(ModelError, match="invalid manifest"):
        load_manifest(tmp_path / "m.yaml")
    (tmp_path / "n.yaml").write_text("[1, 2")
    with pytest.raises(ModelError, match="not valid YAML"):
        load_manifest(tmp_path / "n.yaml")
    with pytest.raises(ModelError, match="not found"):
        load_manifest(tmp_path / "none.yaml")


def test_unknown_model_and_version(store: ModelStore) -> None:
    with pytest.raises(ModelError, match="no model"):
        store.get("text-detection", "nope")
    with pytest.raises(ModelError, match="version 7"):
        store.get("text-detection", "ppocrv4-det", "7")


def test_models_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    copy_packaged_manifests(tmp_path)
    assert main(["models", "list", "--root", str(tmp_path)]) == 0
    assert "not prepared" in capsys.readouterr().out
    assert main(["models", "prepare", "--root", str(tmp_path)]) == 0
    assert main(["models", "list", "--root", str(tmp_path)]) == 0
    assert "(prepared)" in capsys.readouterr().out


def test_open_if_present_opens_the_installed_model_and_says_none_otherwise(tmp_path: Path) -> None:
    from appliance.inference.store import ModelStore

    store = ModelStore()
    model = store.open_if_present("xray-consistency", "sim-consistency")
    assert model is not None and model.manifest.name == "sim-consistency"
    assert store.open_if_present("xray-anomaly", "not-installed") is None
    broken = tmp_path / "xray-anomaly" / "sim-knn" / "1"
    broken.mkdir(parents=True)
    (broken / "manifest.yaml").write_text("name: [", encoding="utf-8")
    with pytest.raises(ModelError):  # a broken package is an error, never silently skipped
        ModelStore(tmp_path).open_if_present("xray-anomaly", "sim-knn")
