"""Ed25519 signatures of model packages: key pairs, the signed bytes, and every way verification fails."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from appliance.errors import ModelError
from appliance.inference.signing import keygen, sign_package, verify_package
from appliance.keys import b64url, key_id, load_public_key, load_signing_key, unb64url
from appliance.publish.events import EventError
from appliance.publish.events import load_signing_key as load_event_signing_key

MODEL = b"model bytes: signing only hashes the file, validation checks that it is ONNX"


def make_package(folder: Path, model: bytes = MODEL) -> Path:
    folder.mkdir(parents=True)
    (folder / "model.onnx").write_bytes(model)
    manifest = {
        "name": "tiny", "task": "text-detection", "version": "1", "file": "model.onnx",
        "sha256": hashlib.sha256(model).hexdigest(), "licence": "test",
        "inputs": [{"name": "x", "dtype": "float32", "shape": ["n", 3, "h", "w"]}],
        "outputs": [{"name": "y", "dtype": "float32", "shape": ["n", 1, "h", "w"]}],
    }
    (folder / "manifest.yaml").write_text(yaml.safe_dump(manifest), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return keygen(tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="module")
def stranger(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return keygen(tmp_path_factory.mktemp("stranger"))


@pytest.fixture
def signed(tmp_path: Path, pair: tuple[Path, Path]) -> Path:
    folder = make_package(tmp_path / "pkg")
    sign_package(folder, pair[0])
    return folder


def rewrite_signature(folder: Path, **changes: object) -> None:
    path = folder / "signature.json"
    doc = json.loads(path.read_text())
    doc.update(changes)
    path.write_text(json.dumps(doc))


def test_keygen_writes_a_private_key_only_its_owner_reads_and_refuses_to_overwrite(tmp_path: Path) -> None:
    private, public = keygen(tmp_path / "k")
    assert private.stat().st_mode & 0o777 == 0o600
    assert private.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert public.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
    assert key_id(load_signing_key(private).public_key()) == key_id(load_public_key(public))
    before = private.read_bytes()
    with pytest.raises(ModelError, match="already exists; refusing to overwrite"):
        keygen(tmp_path / "k")
    assert private.read_bytes() == before


def test_signature_file_covers_the_canonical_bytes(signed: Path, pair: tuple[Path, Path]) -> None:
    doc = json.loads((signed / "signature.json").read_text())
    manifest_sha = hashlib.sha256((signed / "manifest.yaml").read_bytes()).hexdigest()
    model_sha = hashlib.sha256(MODEL).hexdigest()
    public = load_public_key(pair[1])
    assert doc == {
        "algorithm": "ed25519",
        "key_id": key_id(public),
        "manifest_sha256": manifest_sha,
        "model_sha256": model_sha,
        "signature": doc["signature"],
    }
    message = b"gate-appliance model signature v1\n" + manifest_sha.encode() + b"\n" + model_sha.encode() + b"\n"
    public.verify(unb64url(doc["signature"]), message)  # raises InvalidSignature if the format drifted
    assert verify_package(signed, [pair[1]]) == key_id(public)


def test_ed25519_signature_is_deterministic_and_re_signing_replaces_it(signed: Path, pair: tuple[Path, Path]) -> None:
    first = (signed / "signature.json").read_bytes()
    sign_package(signed, pair[0])
    assert (signed / "signature.json").read_bytes() == first
    assert not (signed / "signature.json.tmp").exists()


def test_unsigned(tmp_path: Path, pair: tuple[Path, Path]) -> None:
    folder = make_package(tmp_path / "pkg")
    with pytest.raises(ModelError, match=r"pkg: unsigned: no signature.json \(sign it with `appliance models sign"):
        verify_package(folder, [pair[1]])


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("{not json", "malformed signature.json: not readable JSON"),
        ("[1, 2]", "malformed signature.json: not a JSON object"),
        ('{"algorithm": "ed25519"}', "malformed signature.json: missing fields ['key_id', 'manifest_sha256'"),
    ],
)
def test_malformed_signature_file(signed: Path, pair: tuple[Path, Path], content: str, fragment: str) -> None:
    (signed / "signature.json").write_text(content)
    with pytest.raises(ModelError, match=fragment.replace("[", r"\[")):
        verify_package(signed, [pair[1]])


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"algorithm": "rsa"}, "algorithm 'rsa', only 'ed25519' is accepted"),
        ({"signature": "not*base64"}, "signature is not a base64url Ed25519 signature"),
        ({"signature": b64url(b"short")}, "signature is not a base64url Ed25519 signature"),
        ({"model_sha256": "XYZ"}, "model_sha256 is not a lower-case hex sha256"),
        ({"key_id": 7}, "key_id is not 16 hex digits"),
        ({"comment": "hi"}, "unknown fields ['comment']"),
    ],
)
def test_malformed_fields(signed: Path, pair: tuple[Path, Path], changes: dict[str, object], fragment: str) -> None:
    rewrite_signature(signed, **changes)
    with pytest.raises(ModelError) as info:
        verify_package(signed, [pair[1]])
    assert "malformed signature.json" in str(info.value) and fragment in str(info.value)


def test_signed_by_an_untrusted_key(signed: Path, pair: tuple[Path, Path], stranger: tuple[Path, Path]) -> None:
    signer = key_id(load_public_key(pair[1]))
    other = key_id(load_public_key(stranger[1]))
    with pytest.raises(ModelError, match=rf"signed by key {signer} which is not in models.trusted_keys "
                                         rf"\(trusted: {other}\)"):
        verify_package(signed, [stranger[1]])
    with pytest.raises(ModelError, match=r"\(trusted: none configured\)"):
        verify_package(signed, [])
    assert verify_package(signed, [stranger[1], pair[1]]) == signer


def test_manifest_changed_after_signing(signed: Path, pair: tuple[Path, Path]) -> None:
    path = signed / "manifest.yaml"
    path.write_text(path.read_text() + "thresholds: {binarize: 0.1}\n")
    with pytest.raises(ModelError, match=r"signature does not verify: manifest.yaml changed after signing"):
        verify_package(signed, [pair[1]])


def test_signature_file_edited_to_match_a_new_manifest(signed: Path, pair: tuple[Path, Path]) -> None:
    path = signed / "manifest.yaml"
    path.write_text(path.read_text() + "thresholds: {binarize: 0.1}\n")
    rewrite_signature(signed, manifest_sha256=hashlib.sha256(path.read_bytes()).hexdigest())
    with pytest.raises(ModelError, match=r"does not verify with key .*: signature.json was altered or forged"):
        verify_package(signed, [pair[1]])


def test_signature_made_by_another_key_under_a_trusted_key_id(signed: Path, pair: tuple[Path, Path]) -> None:
    forged = Ed25519PrivateKey.generate().sign(b"anything")
    rewrite_signature(signed, signature=b64url(forged))
    with pytest.raises(ModelError, match="signature does not verify with key"):
        verify_package(signed, [pair[1]])


def test_model_file_differs_from_the_signed_one(signed: Path, pair: tuple[Path, Path]) -> None:
    (signed / "model.onnx").write_bytes(MODEL + b"!")
    with pytest.raises(ModelError, match=r"model file model.onnx differs from the signed one \(sha256 "):
        verify_package(signed, [pair[1]])


def test_sign_refuses_an_inconsistent_package_or_a_bad_key(tmp_path: Path, pair: tuple[Path, Path]) -> None:
    folder = make_package(tmp_path / "pkg")
    (folder / "model.onnx").write_bytes(b"another model")
    with pytest.raises(ModelError, match=r"cannot sign: model.onnx has sha256 .* but the manifest says"):
        sign_package(folder, pair[0])
    assert not (folder / "signature.json").exists()
    (tmp_path / "bad.pem").write_text("nope")
    with pytest.raises(ModelError, match=r"bad.pem: not a PEM Ed25519 private key"):
        sign_package(make_package(tmp_path / "pkg2"), tmp_path / "bad.pem")
    folder3 = make_package(tmp_path / "pkg3")
    sign_package(folder3, pair[0])
    with pytest.raises(ModelError, match=r"bad.pem: not a PEM Ed25519 public key"):
        verify_package(folder3, [tmp_path / "bad.pem"])


def test_event_key_helpers_still_raise_event_errors(tmp_path: Path) -> None:
    (tmp_path / "bad.pem").write_text("nope")
    with pytest.raises(EventError, match="not a PEM"):
        load_event_signing_key(tmp_path / "bad.pem")
