"""The face key: loading, permissions, AES-GCM round trips and every way a ciphertext must fail to open."""

from __future__ import annotations

import base64
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from appliance.errors import ApplianceError
from appliance.faces.crypto import (
    NONCE_BYTES,
    FaceDecryptError,
    FaceKey,
    FaceKeyError,
    face_key_path,
)

SECRET = bytes(range(1, 33))  # a recognisable key, so tests can check it is never echoed


def _key_file(path: Path, content: bytes, mode: int = 0o600) -> Path:
    path.write_bytes(content)
    path.chmod(mode)
    return path


def test_generate_writes_a_0600_key_that_loads_back(tmp_path: Path) -> None:
    path = tmp_path / "gate" / "face.key"
    key = FaceKey.generate(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(base64.b64decode(path.read_bytes().strip())) == 32
    loaded = FaceKey.load(path)
    assert loaded.key_id == key.key_id and len(key.key_id) == 8
    assert loaded.decrypt(key.encrypt(b"abc", b"template:1"), b"template:1") == b"abc"


def test_generate_never_overwrites(tmp_path: Path) -> None:
    path = _key_file(tmp_path / "face.key", SECRET)
    with pytest.raises(FaceKeyError, match="already exists"):
        FaceKey.generate(path)
    assert path.read_bytes() == SECRET


@pytest.mark.parametrize("encode", [lambda b: b, base64.b64encode, lambda b: base64.b64encode(b) + b"\n",
                                    base64.urlsafe_b64encode])
def test_raw_and_base64_keys_load_to_the_same_key(tmp_path: Path, encode: Callable[[bytes], bytes]) -> None:
    key = FaceKey.load(_key_file(tmp_path / "face.key", encode(SECRET)))
    assert key.key_id == FaceKey(SECRET).key_id


@pytest.mark.parametrize("content", [b"", SECRET[:31], SECRET + b"x", base64.b64encode(SECRET[:16]),
                                     b"not a key at all, just some text!!!!!!!!!!", b"\x00" * 32])
def test_bad_key_content_is_refused_naming_the_file_not_the_content(tmp_path: Path, content: bytes) -> None:
    path = _key_file(tmp_path / "face.key", content)
    with pytest.raises(FaceKeyError) as info:
        FaceKey.load(path)
    message = str(info.value)
    assert str(path) in message
    if len(content) > 4:
        assert content.decode("latin-1") not in message
        assert base64.b64encode(content).decode() not in message


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660])
def test_a_key_readable_by_group_or_others_is_refused(tmp_path: Path, mode: int) -> None:
    path = _key_file(tmp_path / "face.key", SECRET, mode)
    with pytest.raises(FaceKeyError, match=r"readable by group or others.*chmod 600"):
        FaceKey.load(path)


def test_owner_read_only_key_loads(tmp_path: Path) -> None:
    assert FaceKey.load(_key_file(tmp_path / "face.key", SECRET, 0o400)).key_id == FaceKey(SECRET).key_id


def test_missing_key_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FaceKeyError, match="cannot read the face key"):
        FaceKey.load(tmp_path / "nope.key")


def test_repr_never_shows_the_key() -> None:
    key = FaceKey(SECRET, source="/etc/gate/face.key")
    text = repr(key) + str(key)
    assert key.key_id in text and SECRET.hex() not in text and base64.b64encode(SECRET).decode() not in text


def test_face_key_path_prefers_the_systemd_credential(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    configured = tmp_path / "face.key"
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    assert face_key_path(configured) == configured
    with pytest.raises(FaceKeyError, match="LoadCredential=face-key"):
        face_key_path(None)
    creds = tmp_path / "creds"
    creds.mkdir()
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    assert face_key_path(configured) == configured  # the unit loads other credentials only
    assert face_key_path(None) == creds / "face-key"
    _key_file(creds / "face-key", SECRET, 0o400)
    assert face_key_path(configured) == creds / "face-key"
    assert FaceKey.load(face_key_path(configured)).key_id == FaceKey(SECRET).key_id


def test_round_trip_and_fresh_nonces() -> None:
    key = FaceKey(SECRET)
    a, b = key.encrypt(b"descriptor", b"template:7"), key.encrypt(b"descriptor", b"template:7")
    assert a != b and a[:NONCE_BYTES] != b[:NONCE_BYTES]
    assert b"descriptor" not in a
    assert key.decrypt(a, b"template:7") == key.decrypt(b, b"template:7") == b"descriptor"


def test_tampered_ciphertext_fails_clearly() -> None:
    key = FaceKey(SECRET)
    blob = bytearray(key.encrypt(b"x" * 100, b"template:1"))
    for pos in (0, NONCE_BYTES + 5, len(blob) - 1):  # nonce, body, tag
        bad = bytearray(blob)
        bad[pos] ^= 0x01
        with pytest.raises(FaceDecryptError, match="altered, belongs to another record, or was sealed with another"):
            key.decrypt(bytes(bad), b"template:1")
    with pytest.raises(FaceDecryptError, match="truncated"):
        key.decrypt(bytes(blob[:20]), b"template:1")


def test_wrong_key_fails_clearly() -> None:
    blob = FaceKey(SECRET).encrypt(b"face", b"crop:1")
    other = FaceKey(bytes(range(100, 132)))
    with pytest.raises(FaceDecryptError, match=f"with key {other.key_id}"):
        other.decrypt(blob, b"crop:1")


def test_swapped_aad_fails_clearly() -> None:
    key = FaceKey(SECRET)
    blob = key.encrypt(b"face", b"template:1")
    with pytest.raises(FaceDecryptError):
        key.decrypt(blob, b"template:2")
    with pytest.raises(ValueError, match="associated data"):
        key.encrypt(b"face", b"")


def test_errors_belong_to_the_appliance_hierarchy() -> None:
    assert issubclass(FaceKeyError, ApplianceError) and issubclass(FaceDecryptError, ApplianceError)


def test_person_ref_is_opaque_stable_and_keyed() -> None:
    key = FaceKey(SECRET)
    ref = key.person_ref("001 099 012 345")
    assert ref == key.person_ref("001099012345") and len(ref) == 32 and "012345" not in ref
    assert ref != FaceKey(bytes(range(100, 132))).person_ref("001099012345")
    assert ref != key.person_ref("001099012346")


def test_key_file_not_regular_is_refused(tmp_path: Path) -> None:
    d = tmp_path / "dir.key"
    d.mkdir()
    os.chmod(d, 0o700)
    with pytest.raises(FaceKeyError, match="regular file"):
        FaceKey.load(d)
