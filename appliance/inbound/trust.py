"""Central's public keys and the signature check of inbound messages (see appliance.publish.events)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from appliance import keys
from appliance.errors import ConfigError
from appliance.publish.events import EventError, key_id, verify_event

TrustedKeys = Mapping[str, Ed25519PublicKey]


def load_public_key(path: Path) -> Ed25519PublicKey:
    """An Ed25519 public key from a PEM (SubjectPublicKeyInfo) file or a file of 32 raw bytes."""
    return keys.load_public_key(path, ConfigError)


def load_trusted_keys(paths: Sequence[Path]) -> dict[str, Ed25519PublicKey]:
    """Key id -> key, for ``check_signature``."""
    loaded = [load_public_key(p) for p in paths]
    return {key_id(k): k for k in loaded}


def write_public_key(path: Path, key: Ed25519PublicKey) -> None:
    """PEM of a public key (what central hands to the boxes as a trusted key)."""
    path.write_bytes(keys.public_key_pem(key))


def check_signature(event: Mapping[str, Any], keys: TrustedKeys) -> str | None:
    """Why the event's signature is not acceptable, or None when it is (or no key is configured)."""
    if not keys:
        return None
    if not event.get("sig"):
        return "unsigned (trusted keys are configured, so every message must be signed)"
    kid = event.get("sigkeyid")
    key = keys.get(kid) if isinstance(kid, str) else None
    if key is None:
        return f"signed by key {kid!r}, which is not one of the trusted keys"
    try:
        verify_event(event, key)
    except (EventError, ValueError, TypeError) as exc:
        return str(exc)
    return None
