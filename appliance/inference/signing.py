"""Ed25519 signatures of model packages.

A signed package holds ``signature.json`` beside its ``manifest.yaml`` and model file::

    {"algorithm": "ed25519", "key_id": "3f2a...", "manifest_sha256": "...", "model_sha256": "...",
     "signature": "<base64url, no padding>"}

The signature is over the canonical bytes::

    b"gate-appliance model signature v1\\n" + manifest_sha256 + b"\\n" + model_sha256 + b"\\n"

(hex digests, ASCII). The manifest carries the model's sha256, its I/O, thresholds and golden
tolerances, so signing the manifest's bytes signs all of them; the model's hash is signed too so a
verifier that checks only the signature still pins the model file. Golden cases are not covered:
they only make a check stricter, never make a model load.

Keys are the same Ed25519 key files as the verdict events' (``appliance.keys``); the key id is the
first 16 hex digits of the sha256 of the raw public key.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from appliance import keys
from appliance.errors import ModelError
from appliance.inference.manifest import load_manifest
from appliance.inference.session import sha256_file

ALGORITHM = "ed25519"
SIGNATURE_FILE = "signature.json"
MANIFEST_FILE = "manifest.yaml"
PRIVATE_KEY_FILE = "model-signing.key.pem"
PUBLIC_KEY_FILE = "model-signing.pub.pem"
_CONTEXT = b"gate-appliance model signature v1\n"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_KEY_ID = re.compile(r"^[0-9a-f]{16}$")


def signed_message(manifest_sha256: str, model_sha256: str) -> bytes:
    """The canonical bytes a model signature covers."""
    return _CONTEXT + manifest_sha256.encode("ascii") + b"\n" + model_sha256.encode("ascii") + b"\n"


def is_signed(folder: Path) -> bool:
    return (folder / SIGNATURE_FILE).exists()


def keygen(out_dir: Path) -> tuple[Path, Path]:
    """Write a new model-signing key pair into ``out_dir``: (private PEM, mode 0600; public PEM).

    Refuses to overwrite either file. The private key stays with whoever builds models; the public
    key goes to the boxes (``models.trusted_keys``).
    """
    private = out_dir / PRIVATE_KEY_FILE
    public = out_dir / PUBLIC_KEY_FILE
    for path in (private, public):
        if path.exists():
            raise ModelError(f"{path}: already exists; refusing to overwrite a signing key (choose another --out)")
    try:
        public_key = keys.write_signing_key(private)
    except FileExistsError as exc:
        raise ModelError(f"{private}: already exists; refusing to overwrite a signing key") from exc
    except OSError as exc:
        raise ModelError(f"{private}: cannot write the signing key: {exc}") from exc
    try:
        fd = os.open(public, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError as exc:
        raise ModelError(f"{public}: already exists; refusing to overwrite a public key") from exc
    with os.fdopen(fd, "wb") as fh:
        fh.write(keys.public_key_pem(public_key))
    return private, public


def _model_path(folder: Path) -> Path:
    manifest = load_manifest(folder / MANIFEST_FILE)
    if Path(manifest.file).name != manifest.file or manifest.file in {"", ".", ".."}:
        raise ModelError(f"{folder}: manifest file {manifest.file!r} must be a plain file name inside the folder")
    return folder / manifest.file


def sign_package(folder: Path, private_key_path: Path) -> Path:
    """Sign ``folder``'s manifest.yaml and model file; write and return ``folder/signature.json``.

    The model file must match the manifest's sha256 (nothing inconsistent gets signed). An
    existing signature is replaced.
    """
    key = keys.load_signing_key(private_key_path, ModelError)
    manifest_path = folder / MANIFEST_FILE
    manifest = load_manifest(manifest_path)
    model_path = _model_path(folder)
    if not model_path.is_file():
        raise ModelError(f"{folder}: cannot sign: model file {manifest.file} not found")
    model_sha256 = sha256_file(model_path)
    if model_sha256 != manifest.sha256:
        raise ModelError(
            f"{folder}: cannot sign: {manifest.file} has sha256 {model_sha256[:12]}... but the manifest says "
            f"{manifest.sha256[:12]}...; fix the manifest first"
        )
    manifest_sha256 = sha256_file(manifest_path)
    document = {
        "algorithm": ALGORITHM,
        "key_id": keys.key_id(key.public_key()),
        "manifest_sha256": manifest_sha256,
        "model_sha256": model_sha256,
        "signature": keys.b64url(key.sign(signed_message(manifest_sha256, model_sha256))),
    }
    target = folder / SIGNATURE_FILE
    tmp = folder / (SIGNATURE_FILE + ".tmp")
    tmp.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    tmp.replace(target)
    return target


def _read_signature(folder: Path) -> dict[str, Any]:
    path = folder / SIGNATURE_FILE
    if not path.exists():
        raise ModelError(
            f"{folder}: unsigned: no {SIGNATURE_FILE} (sign it with `appliance models sign {folder} --key KEY`)"
        )
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{folder}: malformed {SIGNATURE_FILE}: not readable JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise ModelError(f"{folder}: malformed {SIGNATURE_FILE}: not a JSON object")
    expected = {"algorithm", "key_id", "manifest_sha256", "model_sha256", "signature"}
    missing = sorted(expected - doc.keys())
    extra = sorted(doc.keys() - expected)
    if missing or extra:
        raise ModelError(f"{folder}: malformed {SIGNATURE_FILE}: missing fields {missing}, unknown fields {extra}")
    if doc["algorithm"] != ALGORITHM:
        raise ModelError(
            f"{folder}: malformed {SIGNATURE_FILE}: algorithm {doc['algorithm']!r}, only {ALGORITHM!r} is accepted"
        )
    for name in ("manifest_sha256", "model_sha256"):
        if not isinstance(doc[name], str) or not _HEX64.match(doc[name]):
            raise ModelError(f"{folder}: malformed {SIGNATURE_FILE}: {name} is not a lower-case hex sha256")
    if not isinstance(doc["key_id"], str) or not _KEY_ID.match(doc["key_id"]):
        raise ModelError(f"{folder}: malformed {SIGNATURE_FILE}: key_id is not 16 hex digits")
    signature = doc["signature"]
    try:
        raw = keys.unb64url(signature) if isinstance(signature, str) else b""
    except ValueError:
        raw = b""
    if len(raw) != 64:
        raise ModelError(f"{folder}: malformed {SIGNATURE_FILE}: signature is not a base64url Ed25519 signature")
    doc["signature"] = raw
    return doc


def load_trusted_keys(paths: Sequence[Path]) -> dict[str, Ed25519PublicKey]:
    """Key id -> public key, from PEM (or 32 raw bytes) files; a bad file is a ModelError naming it."""
    loaded = (keys.load_public_key(p, ModelError) for p in paths)
    return {keys.key_id(k): k for k in loaded}


def verify_package(folder: Path, trusted_public_keys: Sequence[Path]) -> str:
    """Check ``folder``'s signature against the trusted public keys; return the signing key's id.

    Raises ModelError saying which check failed: unsigned, malformed signature file, signed by an
    untrusted key, signature does not verify (signature.json or the manifest changed after
    signing), or the model file differs from the signed one.
    """
    doc = _read_signature(folder)
    trusted = load_trusted_keys(trusted_public_keys)
    kid = doc["key_id"]
    public_key = trusted.get(kid)
    if public_key is None:
        have = ", ".join(sorted(trusted)) or "none configured"
        raise ModelError(f"{folder}: signed by key {kid} which is not in models.trusted_keys (trusted: {have})")
    try:
        public_key.verify(doc["signature"], signed_message(doc["manifest_sha256"], doc["model_sha256"]))
    except InvalidSignature as exc:
        raise ModelError(
            f"{folder}: signature does not verify with key {kid}: {SIGNATURE_FILE} was altered or forged"
        ) from exc
    manifest_path = folder / MANIFEST_FILE
    if not manifest_path.is_file():
        raise ModelError(f"{folder}: signature: {MANIFEST_FILE} not found")
    manifest_sha256 = sha256_file(manifest_path)
    if manifest_sha256 != doc["manifest_sha256"]:
        raise ModelError(
            f"{folder}: signature does not verify: {MANIFEST_FILE} changed after signing "
            f"(sha256 {manifest_sha256[:12]}..., signed {doc['manifest_sha256'][:12]}...)"
        )
    model_path = _model_path(folder)
    if not model_path.is_file():
        raise ModelError(f"{folder}: signature: signed model file {model_path.name} not found")
    model_sha256 = sha256_file(model_path)
    if model_sha256 != doc["model_sha256"]:
        raise ModelError(
            f"{folder}: model file {model_path.name} differs from the signed one "
            f"(sha256 {model_sha256[:12]}..., signed {doc['model_sha256'][:12]}...)"
        )
    return str(kid)

