"""Model packages are validated on install and on load, with real ONNX Runtime sessions.

Tiny models are built with onnx.helper (a Conv + Sigmoid text detector, a Conv + Softmax
recogniser), given manifests, golden cases and an Ed25519 signature, then broken one way at a
time: each broken package must be refused with a message that names the folder and the check.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import yaml
from onnx import TensorProto, helper, numpy_helper

from appliance.cli import main
from appliance.errors import ModelError
from appliance.inference.contracts import GraphTensor, check_contract
from appliance.inference.golden import make_golden
from appliance.inference.install import install_package
from appliance.inference.manifest import load_manifest
from appliance.inference.session import OnnxModel
from appliance.inference.signing import keygen, sign_package
from appliance.inference.store import ModelStore
from appliance.inference.validation import UNSIGNED_ALLOWED, ValidationPolicy, validate_package
from appliance.keys import key_id, load_public_key

Dims = list[int | str]


# ---------------------------------------------------------------- tiny ONNX models


def _model(nodes: list[Any], inputs: list[Any], outputs: list[Any], inits: list[Any]) -> bytes:
    graph = helper.make_graph(nodes, "tiny", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="tests")
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model.SerializeToString()


def det_model(in_channels: int = 3, out_channels: int = 1, seed: int = 0) -> bytes:
    """Text-detection contract: x (N,C,H,W) -> Conv 3x3 -> Sigmoid -> y (N,1,H,W); N, H, W dynamic."""
    rng = np.random.default_rng(seed)
    w = numpy_helper.from_array(rng.standard_normal((out_channels, in_channels, 3, 3)).astype(np.float32), "w")
    return _model(
        [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Sigmoid", ["c"], ["y"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", in_channels, "H", "W"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", out_channels, "H", "W"])],
        [w],
    )


def rec_model(height: int | str = 48, classes: int = 5) -> bytes:
    """Text-recognition contract: x (N,3,height,W) -> Conv (height x 1) -> squeeze -> (N,W,C) -> Softmax."""
    kernel = 48 if isinstance(height, str) else height
    rng = np.random.default_rng(1)
    w = numpy_helper.from_array(rng.standard_normal((classes, 3, kernel, 1)).astype(np.float32), "w")
    axes = numpy_helper.from_array(np.array([2], np.int64), "axes")
    return _model(
        [
            helper.make_node("Conv", ["x", "w"], ["c"]),
            helper.make_node("Squeeze", ["c", "axes"], ["s"]),
            helper.make_node("Transpose", ["s"], ["t"], perm=[0, 2, 1]),
            helper.make_node("Softmax", ["t"], ["probs"], axis=-1),
        ],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, height, "W"])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", "T", classes])],
        [w, axes],
    )


def write_package(
    folder: Path,
    model: bytes,
    *,
    task: str = "text-detection",
    name: str = "tiny-det",
    version: str = "1",
    inputs: Dims | None = None,
    outputs: Dims | None = None,
    in_name: str = "x",
    out_name: str = "y",
    golden: bool = False,
    **extra: Any,
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.onnx").write_bytes(model)
    manifest = {
        "name": name,
        "task": task,
        "version": version,
        "file": "model.onnx",
        "sha256": hashlib.sha256(model).hexdigest(),
        "licence": "Apache-2.0 (test)",
        "inputs": [{"name": in_name, "dtype": "float32", "shape": inputs or ["batch", 3, "height", "width"]}],
        "outputs": [{"name": out_name, "dtype": "float32", "shape": outputs or ["batch", 1, "height", "width"]}],
        "eval_set": "sim-2026-200",
        "metrics": {"f1": 0.9},
        **extra,
    }
    if golden:
        manifest["golden"] = {"atol": 1e-3, "rtol": 1e-3}
    (folder / "manifest.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False), encoding="utf-8")
    return folder


def det_cases() -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(7)
    return [
        {"x": rng.standard_normal((1, 3, 16, 16)).astype(np.float32)},
        {"x": rng.standard_normal((2, 3, 8, 24)).astype(np.float32)},
    ]


def set_manifest(folder: Path, **changes: Any) -> None:
    path = folder / "manifest.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data.update(changes)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


def replace_model(folder: Path, data: bytes) -> None:
    """Write a new model file and update the manifest's hash, so that the sha256 check passes."""
    (folder / "model.onnx").write_bytes(data)
    set_manifest(folder, sha256=hashlib.sha256(data).hexdigest())


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("keys")
    private, public = keygen(base / "builder")
    other_private, other_public = keygen(base / "stranger")
    return {"private": private, "public": public, "other_private": other_private, "other_public": other_public}


@pytest.fixture
def policy(keys: dict[str, Path]) -> ValidationPolicy:
    return ValidationPolicy(trusted_keys=(keys["public"],))


@pytest.fixture
def package(tmp_path: Path, keys: dict[str, Path]) -> Path:
    """A good package outside any store: detector, manifest with golden:, two golden cases, signed."""
    folder = write_package(tmp_path / "build" / "out", det_model(), golden=True)
    manifest = load_manifest(folder / "manifest.yaml")
    make_golden(folder, OnnxModel(folder / "model.onnx", manifest), det_cases())
    sign_package(folder, keys["private"])
    return folder


def refused(folder: Path, policy: ValidationPolicy, check: str, fragment: str) -> str:
    with pytest.raises(ModelError) as info:
        validate_package(folder, policy)
    message = str(info.value)
    assert message.startswith(f"{folder}: {check}: "), message
    assert fragment in message, message
    return message


# ---------------------------------------------------------------- what passes


def test_good_signed_package_validates_and_serves(package: Path, policy: ValidationPolicy,
                                                   keys: dict[str, Path]) -> None:
    validated = validate_package(package, policy)
    assert validated.key_id == key_id(load_public_key(keys["public"]))
    assert validated.manifest.eval_set == "sim-2026-200"
    assert [c.split(":")[0] for c in validated.checks] == [
        "manifest", "layout", "model file", "sha256", "signature", "onnx.checker", "onnxruntime", "contract", "golden",
    ]
    assert f"signature: ed25519, trusted key {validated.key_id}" in validated.checks
    assert "golden: 2 case(s) reproduced within atol 0.001 + rtol 0.001" in validated.checks
    out = validated.model.run({"x": np.zeros((1, 3, 32, 40), np.float32)})
    assert out[0].shape == (1, 1, 32, 40)


def test_install_copies_atomically_and_versions_are_immutable(
    package: Path, policy: ValidationPolicy, tmp_path: Path, keys: dict[str, Path]
) -> None:
    store = ModelStore(tmp_path / "store")
    ref = install_package(package, store, policy)
    dest = store.root / "text-detection" / "tiny-det" / "1"
    assert ref.folder == dest and ref.version == "1"
    src_files = sorted(p.relative_to(package).as_posix() for p in package.rglob("*") if p.is_file())
    assert src_files == ["golden/case-000.npz", "golden/case-001.npz", "manifest.yaml", "model.onnx",
                         "signature.json"]
    for rel in src_files:
        assert (dest / rel).read_bytes() == (package / rel).read_bytes()
    assert sorted(p.name for p in store.root.iterdir()) == ["text-detection"]  # no staging folder left
    assert [(r.task, r.name, r.version) for r in store.list()] == [("text-detection", "tiny-det", "1")]
    # in the store it validates with the strict layout check
    assert "layout: folder matches text-detection/tiny-det/1" in validate_package(dest, policy).checks

    # the same files again: a no-op
    mtime = (dest / "model.onnx").stat().st_mtime_ns
    assert install_package(package, store, policy).folder == dest
    assert (dest / "model.onnx").stat().st_mtime_ns == mtime

    # other files under the same version: refused, the installed one untouched
    set_manifest(package, thresholds={"binarize": 0.4})
    sign_package(package, keys["private"])
    with pytest.raises(ModelError, match=r"version exists with different files \(manifest.yaml, signature.json\).*"
                                         r"bump the version"):
        install_package(package, store, policy)
    assert "binarize" not in (dest / "manifest.yaml").read_text()

    # bumped: installed beside it
    set_manifest(package, version="2")
    sign_package(package, keys["private"])
    assert install_package(package, store, policy).folder == store.root / "text-detection" / "tiny-det" / "2"
    assert store.get("text-detection", "tiny-det").version == "2"


def test_a_refused_package_is_not_installed(package: Path, tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "store")
    with pytest.raises(ModelError, match="signature: signed by key"):
        install_package(package, store, ValidationPolicy())
    assert not (store.root / "text-detection").exists()


def test_unsigned_package_allowed_by_policy(package: Path, keys: dict[str, Path]) -> None:
    (package / "signature.json").unlink()
    validated = validate_package(package, ValidationPolicy(allow_unsigned=True))
    assert validated.key_id is None
    assert UNSIGNED_ALLOWED in validated.checks
    assert UNSIGNED_ALLOWED == "unsigned: allowed by config (development)"


def test_a_signature_must_verify_even_when_unsigned_is_allowed(package: Path, keys: dict[str, Path]) -> None:
    lax = ValidationPolicy(trusted_keys=(keys["public"],), allow_unsigned=True)
    set_manifest(package, thresholds={"binarize": 0.9})
    refused(package, lax, "signature", "manifest.yaml changed after signing")


# ---------------------------------------------------------------- what is refused


def test_corrupt_model_file_is_refused_even_when_its_hash_matches(
    package: Path, policy: ValidationPolicy, keys: dict[str, Path]
) -> None:
    data = bytearray((package / "model.onnx").read_bytes())
    for i in range(4, 12):
        data[i] ^= 0xFF
    replace_model(package, bytes(data))
    sign_package(package, keys["private"])  # a trusted builder signed a bad model
    refused(package, policy, "onnx.checker", "model.onnx is not an ONNX model: it cannot be parsed")


def test_flipped_weights_are_caught_by_the_golden_outputs(
    package: Path, policy: ValidationPolicy, keys: dict[str, Path]
) -> None:
    """Bytes flipped inside the weights still parse and load: only the golden outputs notice."""
    data = bytearray((package / "model.onnx").read_bytes())
    weights = numpy_helper.from_array(
        np.random.default_rng(0).standard_normal((1, 3, 3, 3)).astype(np.float32), "w"
    ).raw_data
    at = bytes(data).index(weights)
    data[at + 3] ^= 0x40  # the exponent of the first weight
    replace_model(package, bytes(data))
    sign_package(package, keys["private"])  # even a signed package: signing does not prove the model works
    refused(package, policy, "golden", "golden case case-000: output 'y' differs by up to")


def test_non_onnx_file_is_refused(package: Path, policy: ValidationPolicy, keys: dict[str, Path]) -> None:
    replace_model(package, b"PK\x03\x04 this is a zip, not a model" + bytes(64))
    sign_package(package, keys["private"])  # a trusted builder signed a bad model
    refused(package, policy, "onnx.checker", "model.onnx is not an ONNX model")


def test_invalid_graph_fails_the_onnx_checker(package: Path, policy: ValidationPolicy, keys: dict[str, Path]) -> None:
    graph = helper.make_graph(
        [helper.make_node("Sigmoid", ["nowhere"], ["y"])], "broken",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1, "H", "W"])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    replace_model(package, model.SerializeToString())
    sign_package(package, keys["private"])  # a trusted builder signed a bad model
    refused(package, policy, "onnx.checker", "model.onnx fails the ONNX checker (full check)")


def test_wrong_hash_is_refused(package: Path, policy: ValidationPolicy) -> None:
    set_manifest(package, sha256="0" * 64)
    refused(package, policy, "sha256", "but the manifest says 000000000000...; the file is corrupt")


def test_missing_model_file_is_refused(package: Path, policy: ValidationPolicy) -> None:
    (package / "model.onnx").unlink()
    refused(package, policy, "model file", "model.onnx not found")


def test_wrong_input_channels_break_the_contract(
    package: Path, policy: ValidationPolicy, keys: dict[str, Path]
) -> None:
    replace_model(package, det_model(in_channels=4))
    set_manifest(package, inputs=[{"name": "x", "dtype": "float32", "shape": ["batch", 4, "height", "width"]}])
    sign_package(package, keys["private"])  # a trusted builder signed a bad model
    refused(package, policy, "contract",
            "model.onnx: input 'x' (image batch) dim 1 is 4 in the ONNX graph [N, 4, H, W]; "
            "the text-detection contract needs 3 (N,3,H,W)")


def test_manifest_dim_that_the_graph_contradicts_is_a_wrong_input_shape(
    tmp_path: Path, policy: ValidationPolicy, keys: dict[str, Path]
) -> None:
    folder = write_package(tmp_path / "rec", rec_model(height=32), task="text-recognition", name="tiny-rec",
                           inputs=["batch", 3, 48, "width"], outputs=["batch", "steps", 5], out_name="probs",
                           preprocess={"height": 48})
    sign_package(folder, keys["private"])
    refused(folder, policy, "contract", "wrong input shape: input 'x' dim 2 is 32 in the ONNX graph [N, 3, 32, W] "
                                        "but 48 in the manifest [batch, 3, 48, width]")


def test_recogniser_height_must_match_its_preprocess(tmp_path: Path, policy: ValidationPolicy,
                                                      keys: dict[str, Path]) -> None:
    folder = write_package(tmp_path / "rec", rec_model(height=32), task="text-recognition", name="tiny-rec",
                           inputs=["batch", 3, 32, "width"], outputs=["batch", "steps", 5], out_name="probs")
    sign_package(folder, keys["private"])
    refused(folder, policy, "contract", "dim 2 is 32 in the ONNX graph [N, 3, 32, W]; the text-recognition "
                                        "contract needs 48 (N,3,preprocess.height,W)")
    # the same model, declared for 32-pixel crops, honours the contract
    set_manifest(folder, preprocess={"height": 32})
    sign_package(folder, keys["private"])
    validated = validate_package(folder, policy)
    assert validated.model.run({"x": np.zeros((2, 3, 32, 20), np.float32)})[0].shape == (2, 20, 5)


def test_recogniser_with_a_free_height_is_accepted(tmp_path: Path, policy: ValidationPolicy,
                                                   keys: dict[str, Path]) -> None:
    folder = write_package(tmp_path / "rec", rec_model(height="H"), task="text-recognition", name="tiny-rec",
                           inputs=["batch", 3, 48, "width"], outputs=["batch", "steps", 5], out_name="probs")
    sign_package(folder, keys["private"])
    assert "contract: text-recognition" in validate_package(folder, policy).checks[7]


def test_model_outside_the_contract_is_refused(package: Path, policy: ValidationPolicy, keys: dict[str, Path]) -> None:
    """A detector with a 2-channel map is a valid model that the OCR analyzer cannot use."""
    replace_model(package, det_model(out_channels=2))
    set_manifest(package, outputs=[{"name": "y", "dtype": "float32", "shape": ["batch", 2, "height", "width"]}])
    sign_package(package, keys["private"])  # a trusted builder signed a bad model
    refused(package, policy, "contract", "output 'y' (text probability map) dim 1 is 2")


def test_unknown_task_lists_the_known_ones(package: Path, policy: ValidationPolicy, keys: dict[str, Path]) -> None:
    set_manifest(package, task="tea-leaf-reading")
    sign_package(package, keys["private"])  # a trusted builder signed a bad model
    refused(package, policy, "contract",
            "no I/O contract for task 'tea-leaf-reading'; "
            "known tasks: face-embedding, object-detection, text-detection, text-recognition, xray-anomaly, "
            "xray-consistency")


def test_check_contract_directly() -> None:
    manifest_path = Path(__file__).resolve().parents[2] / "models/text-recognition/ppocrv4-rec/1/manifest.yaml"
    manifest = load_manifest(manifest_path)
    good_in = [GraphTensor("x", "float32", ("b", 3, None, "w"))]
    good_out = [GraphTensor("softmax_11.tmp_0", "float32", ("b", "t", 6625))]
    assert check_contract(manifest, good_in, good_out, "rec").task == "text-recognition"
    with pytest.raises(ModelError, match=r"rec: input 'x' \(line crops\) is float16; the text-recognition contract"):
        check_contract(manifest, [GraphTensor("x", "float16", ("b", 3, None, "w"))], good_out, "rec")
    extra = manifest.outputs[0].model_copy(update={"name": "extra", "shape": ["b"]})
    two_outputs = manifest.model_copy(update={"outputs": [*manifest.outputs, extra]})
    with pytest.raises(ModelError, match=r"the text-recognition contract needs exactly 1 output\(s\).*has 2"):
        check_contract(two_outputs, good_in, [*good_out, GraphTensor("extra", "float32", ("b",))], "rec")
    with pytest.raises(ModelError, match="output 'extra' of the ONNX graph is not in the manifest's outputs"):
        check_contract(manifest, good_in, [*good_out, GraphTensor("extra", "float32", ("b",))], "rec")
    with pytest.raises(ModelError, match=r"input 'x' \(line crops\) has rank 3 \[b, 3, w\]; .* needs rank 4"):
        check_contract(manifest.model_copy(update={"inputs": [manifest.inputs[0].model_copy(
            update={"shape": ["b", 3, "w"]})]}), [GraphTensor("x", "float32", ("b", 3, "w"))], good_out, "rec")
    with pytest.raises(ModelError, match=r"wrong output shape: output 'softmax_11.tmp_0' dim 2 is 97"):
        check_contract(manifest, good_in, [GraphTensor("softmax_11.tmp_0", "float32", ("b", "t", 97))], "rec")


def test_unsigned_package_is_refused_unless_allowed(package: Path, policy: ValidationPolicy) -> None:
    (package / "signature.json").unlink()
    refused(package, policy, "signature", "unsigned: no signature.json")


def test_package_signed_by_an_untrusted_key_is_refused(package: Path, policy: ValidationPolicy,
                                                        keys: dict[str, Path]) -> None:
    sign_package(package, keys["other_private"])
    stranger = key_id(load_public_key(keys["other_public"]))
    trusted = key_id(load_public_key(keys["public"]))
    refused(package, policy, "signature",
            f"signed by key {stranger} which is not in models.trusted_keys (trusted: {trusted})")


def test_manifest_edited_after_signing_is_refused(package: Path, policy: ValidationPolicy) -> None:
    text = (package / "manifest.yaml").read_text()
    (package / "manifest.yaml").write_text(text.replace("f1: 0.9", "f1: 0.99"))
    refused(package, policy, "signature", "signature does not verify: manifest.yaml changed after signing")


def test_model_that_fails_its_golden_outputs_is_refused(package: Path, policy: ValidationPolicy) -> None:
    case = package / "golden" / "case-001.npz"
    with np.load(case) as data:
        arrays = {k: data[k].copy() for k in data.files}
    arrays["output:y"][0, 0, 3, 5] += 0.23
    np.savez(case, **arrays)
    refused(package, policy, "golden",
            "golden case case-001: output 'y' differs by up to 0.23 (allowed atol 0.001 + rtol 0.001·|expected|")


def test_golden_declared_but_missing_or_empty(package: Path, policy: ValidationPolicy) -> None:
    for case in (package / "golden").iterdir():
        case.unlink()
    refused(package, policy, "golden", "holds no golden cases")
    (package / "golden").rmdir()
    refused(package, policy, "golden", "the manifest declares golden: but there is no golden/ folder")


def test_manifest_must_match_its_store_folder(package: Path, policy: ValidationPolicy, tmp_path: Path) -> None:
    wrong = tmp_path / "store" / "text-detection" / "tiny-det" / "2"
    wrong.parent.mkdir(parents=True)
    os.rename(package, wrong)
    refused(wrong, policy, "layout",
            "the folder is text-detection/tiny-det/2 but the manifest says task 'text-detection', name 'tiny-det', "
            "version '1'")
    other_task = tmp_path / "store" / "text-recognition" / "tiny-det" / "1"
    other_task.parent.mkdir(parents=True)
    os.rename(wrong, other_task)
    refused(other_task, policy, "layout", "the folder is text-recognition/tiny-det/1")


def test_invalid_manifest_is_refused(package: Path, policy: ValidationPolicy) -> None:
    set_manifest(package, golden={"atol": 0.1, "tolerance": 3})
    refused(package, policy, "manifest", "golden.tolerance: Extra inputs are not permitted")
    set_manifest(package, golden=None, version="../../etc")
    refused(package, policy, "manifest", "version '../../etc' must be a plain folder/file name")


def test_existing_manifests_still_load() -> None:
    root = Path(__file__).resolve().parents[2] / "models"
    manifests = sorted(root.glob("*/*/*/manifest.yaml"))
    assert len(manifests) >= 2
    for path in manifests:
        manifest = load_manifest(path)
        cases = sorted((path.parent / "golden").glob("case-*.npz"))
        # A package that declares golden tolerances ships its cases (dlib-resnet-v1: dlib's own descriptor).
        assert bool(cases) == (manifest.golden is not None), path


# ---------------------------------------------------------------- the command line


def test_cli_keygen_sign_verify_install(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "keygen", "--out", str(tmp_path / "keys")]) == 0
    out = capsys.readouterr().out
    private = tmp_path / "keys" / "model-signing.key.pem"
    public = tmp_path / "keys" / "model-signing.pub.pem"
    assert str(private) in out and str(public) in out
    assert private.stat().st_mode & 0o777 == 0o600
    kid = key_id(load_public_key(public))
    assert f"key id      {kid}" in out
    assert main(["models", "keygen", "--out", str(tmp_path / "keys")]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err

    folder = write_package(tmp_path / "pkg", det_model())
    assert main(["models", "verify", str(folder), "--trusted", str(public)]) == 2
    assert f"error: {folder}: signature: unsigned: no signature.json" in capsys.readouterr().err
    assert main(["models", "verify", str(folder), "--allow-unsigned"]) == 0
    assert f"ok  {UNSIGNED_ALLOWED}" in capsys.readouterr().out

    assert main(["models", "sign", str(folder), "--key", str(private)]) == 0
    assert f"(key {kid})" in capsys.readouterr().out
    assert main(["models", "verify", str(folder), "--trusted", str(public)]) == 0
    out = capsys.readouterr().out
    assert f"ok  signature: ed25519, trusted key {kid}" in out
    assert "ok  contract: text-detection" in out
    assert f"{folder}: text-detection/tiny-det v1 passed every check" in out

    config = tmp_path / "box.yaml"
    config.write_text(
        "site: {gate: VNHNG, box_id: lane1-box}\n"
        "lanes:\n  - id: cargo-1\n    sources:\n      - {id: kiosk, type: folder, role: kiosk, path: kiosk}\n"
        "models:\n  root: store\n  trusted_keys: [keys/model-signing.pub.pem]\n"
    )
    assert main(["models", "verify", str(folder), "--config", str(config)]) == 0
    capsys.readouterr()
    assert main(["models", "install", str(folder), "--config", str(config)]) == 0
    assert "installed text-detection/tiny-det v1" in capsys.readouterr().out
    assert (tmp_path / "store" / "text-detection" / "tiny-det" / "1" / "signature.json").is_file()

    with pytest.raises(SystemExit) as exit_info:
        main(["models", "sign", str(folder)])
    assert exit_info.value.code == 2
    assert "the following arguments are required: --key" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["models", "verify"])
    assert "the following arguments are required: package" in capsys.readouterr().err
