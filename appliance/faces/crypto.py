"""The key that seals face data at rest: AES-256-GCM, loaded from a credentials file.

Face templates and face crops are biometric data: the face store (``appliance.faces.templates``) only
ever writes them encrypted with a ``FaceKey``. The key lives in its own file, never in the config:

* under systemd, ``LoadCredential=face-key:/etc/gate/face.key`` in the unit makes it readable by the
  service (only) as ``$CREDENTIALS_DIRECTORY/face-key``; ``face_key_path`` prefers that file;
* otherwise ``faces.key_file`` in the config names it.

The file holds 32 random bytes, raw or as base64 (``appliance faces keygen`` writes base64, mode
0600). A file that group or others can read is refused, as is anything that is not exactly a 256-bit
key; error messages name the file, never its content.

Each ciphertext is ``nonce (12 random bytes) || AES-GCM(ciphertext || tag)``, sealed with associated
data (AAD) that names its record (e.g. ``b"face-template:v1:42:..."``), so a blob copied onto another
record does not decrypt. Random 96-bit nonces keep the collision risk negligible below 2**32
encryptions per key (NIST SP 800-38D); a gate seals a few thousand items a day. ``key_id`` (first 8 hex
digits of sha256 of the key) is stored beside each ciphertext so data sealed with another key (after a
rotation, or a restored backup) is recognised and reported as such.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
import stat
import unicodedata
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from appliance.errors import ApplianceError

CREDENTIAL_NAME = "face-key"
KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16


class FaceKeyError(ApplianceError):
    """The face key file is missing, unreadable, too open, or not a 256-bit key."""


class FaceDecryptError(ApplianceError):
    """Sealed face data does not open: altered, bound to another record, or sealed with another key."""


def face_key_path(config_value: Path | None) -> Path:
    """Where the face key is: ``$CREDENTIALS_DIRECTORY/face-key`` when systemd provides it, else the config's path.

    When ``$CREDENTIALS_DIRECTORY`` is set but holds no ``face-key`` (the unit loads other credentials
    only), the configured path is used; with no configured path either, the credentials path is returned
    so that loading it fails with a message naming it.
    """
    creds = os.environ.get("CREDENTIALS_DIRECTORY")
    if creds:
        candidate = Path(creds) / CREDENTIAL_NAME
        if candidate.exists() or config_value is None:
            return candidate
    if config_value is None:
        raise FaceKeyError(
            "no face key: set faces.key_file in the config, or run under systemd with "
            f"LoadCredential={CREDENTIAL_NAME}:/etc/gate/face.key (create one with `appliance faces keygen`)"
        )
    return config_value


def _parse_key(data: bytes, path: Path) -> bytes:
    if len(data) == KEY_BYTES:
        key = data
    else:
        text = data.strip()
        try:
            key = base64.b64decode(text, validate=True) if text else b""
        except (binascii.Error, ValueError):
            try:  # the URL-safe alphabet, as some tools write it
                key = base64.urlsafe_b64decode(text) if text else b""
            except (binascii.Error, ValueError):
                key = b""
        if len(key) != KEY_BYTES:
            raise FaceKeyError(
                f"{path}: not a face key: expected {KEY_BYTES} random bytes, raw or base64 "
                f"(the file has {len(data)} bytes); create one with `appliance faces keygen`"
            )
    if len(set(key)) == 1:
        raise FaceKeyError(f"{path}: the face key is one repeated byte, not a random key; create one with "
                           "`appliance faces keygen`")
    return key


class FaceKey:
    """A 256-bit AES-GCM key for face data. ``repr`` shows the key id and where it came from, never the key."""

    __slots__ = ("_aead", "_ref_key", "key_id", "source")

    def __init__(self, key: bytes, source: str = "<memory>"):
        if not isinstance(key, bytes | bytearray) or len(key) != KEY_BYTES:
            raise FaceKeyError(f"{source}: a face key is {KEY_BYTES} bytes")
        raw = bytes(key)
        self._aead = AESGCM(raw)
        # A separate sub-key for person references, so the AES key is used for one purpose only.
        self._ref_key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                             info=b"gate-appliance face person-ref v1").derive(raw)
        self.key_id = hashlib.sha256(raw).hexdigest()[:8]
        self.source = source

    def __repr__(self) -> str:
        return f"FaceKey(key_id={self.key_id!r}, source={self.source!r})"

    @classmethod
    def load(cls, path: Path) -> FaceKey:
        """The key in ``path`` (32 raw bytes or their base64); refuses a file group or others can read."""
        try:
            st = path.stat()
        except OSError as exc:
            raise FaceKeyError(f"{path}: cannot read the face key: {exc.strerror or exc}") from None
        if not stat.S_ISREG(st.st_mode):
            raise FaceKeyError(f"{path}: the face key must be a regular file")
        if st.st_mode & 0o077:
            raise FaceKeyError(
                f"{path}: the face key is readable by group or others (mode {stat.S_IMODE(st.st_mode):04o}); "
                f"run `chmod 600 {path}` (or load it with systemd LoadCredential=)"
            )
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise FaceKeyError(f"{path}: cannot read the face key: {exc.strerror or exc}") from None
        return cls(_parse_key(data, path), source=str(path))

    @classmethod
    def generate(cls, path: Path) -> FaceKey:
        """Write a new random key to ``path`` (base64, mode 0600) and return it; never overwrites a file."""
        raw = secrets.token_bytes(KEY_BYTES)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise FaceKeyError(
                f"{path}: already exists; a new key makes every sealed template and crop unreadable: "
                "remove the file first if that is what you want"
            ) from None
        except OSError as exc:
            raise FaceKeyError(f"{path}: cannot create the face key: {exc.strerror or exc}") from None
        try:
            os.fchmod(fd, 0o600)  # in case the umask or the filesystem widened it
            os.write(fd, base64.b64encode(raw) + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        return cls(raw, source=str(path))

    def encrypt(self, plaintext: bytes, aad: bytes) -> bytes:
        """``nonce || ciphertext || tag``, bound to ``aad`` (which must name the record; never empty)."""
        if not aad:
            raise ValueError("face data must be sealed with associated data naming its record")
        nonce = secrets.token_bytes(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, bytes(plaintext), bytes(aad))

    def decrypt(self, blob: bytes, aad: bytes) -> bytes:
        """The plaintext of ``encrypt(plaintext, aad)``; FaceDecryptError when it does not open."""
        if len(blob) < NONCE_BYTES + TAG_BYTES:
            raise FaceDecryptError(f"sealed face data is truncated ({len(blob)} bytes)")
        try:
            return self._aead.decrypt(bytes(blob[:NONCE_BYTES]), bytes(blob[NONCE_BYTES:]), bytes(aad))
        except InvalidTag:
            raise FaceDecryptError(
                f"sealed face data does not open with key {self.key_id}: it was altered, belongs to another "
                "record, or was sealed with another key"
            ) from None

    def person_ref(self, document_number: str) -> str:
        """An opaque, stable reference for a document number (keyed HMAC-SHA256, 32 hex digits).

        A plain hash of a 12-digit CCCD number can be reversed by trying every number; a keyed one
        cannot without the key. References change with the key: a key rotation means re-enrolment.
        """
        norm = unicodedata.normalize("NFKC", document_number).upper()
        norm = "".join(ch for ch in norm if ch.isalnum())
        if not norm:
            raise ValueError("empty document number")
        return hmac.new(self._ref_key, norm.encode("utf-8"), hashlib.sha256).hexdigest()[:32]
