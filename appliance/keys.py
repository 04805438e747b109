"""Ed25519 key files, shared by everything the appliance signs or checks.

Verdict events (``appliance.publish.events``) and model packages (``appliance.inference.signing``)
use the same key format: a private key is a PEM (PKCS#8) file written with mode 0600, or 32 raw
bytes; a public key is a PEM (SubjectPublicKeyInfo) file, or 32 raw bytes. A key's id is the first
16 hex digits of the sha256 of its raw public bytes. Loaders raise the error class their caller
names, so each subsystem keeps its own error type.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from appliance.errors import ApplianceError


def b64url(data: bytes) -> str:
    """URL-safe base64 without padding (how signatures are written)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64url(text: str) -> bytes:
    """Inverse of ``b64url``; raises ValueError (binascii.Error) on bad input."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def key_id(public_key: Ed25519PublicKey) -> str:
    """Short, stable id of a public key: the first 16 hex digits of sha256 of its raw bytes."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def load_signing_key(path: Path, error: type[ApplianceError] = ApplianceError) -> Ed25519PrivateKey:
    """An Ed25519 private key from a PEM (PKCS#8) file or a file of 32 raw bytes."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise error(f"{path}: cannot read the signing key: {exc}") from exc
    if len(data) == 32:
        return Ed25519PrivateKey.from_private_bytes(data)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise error(f"{path}: not a PEM Ed25519 private key (or 32 raw bytes): {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise error(f"{path}: the signing key must be Ed25519, got {type(key).__name__}")
    return key


def write_signing_key(path: Path) -> Ed25519PublicKey:
    """Generate a new key, write it as PEM (mode 0600) and return its public half.

    Refuses (FileExistsError) to overwrite an existing file.
    """
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=False)
    path.write_bytes(pem)
    return key.public_key()


def load_public_key(path: Path, error: type[ApplianceError] = ApplianceError) -> Ed25519PublicKey:
    """An Ed25519 public key from a PEM (SubjectPublicKeyInfo) file or a file of 32 raw bytes."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise error(f"{path}: cannot read the public key: {exc}") from exc
    if len(data) == 32:
        return Ed25519PublicKey.from_public_bytes(data)
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise error(f"{path}: not a PEM Ed25519 public key (or 32 raw bytes): {exc}") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise error(f"{path}: public keys must be Ed25519, got {type(key).__name__}")
    return key


def public_key_pem(key: Ed25519PublicKey) -> bytes:
    """PEM (SubjectPublicKeyInfo) of a public key."""
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
