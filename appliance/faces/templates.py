"""Encrypted face templates and face crops: their own SQLite file (WAL), sealed with the face key.

Two tables, both holding ciphertext only (``appliance.faces.crypto.FaceKey``, AES-256-GCM):

* ``face_templates``: 128-d face descriptors (float32, little-endian) of enrolled people, ``kind``
  'reference' (the 1:1 reference of a document holder) or 'watchlist' (1:N screening). A person is
  named by ``person_ref``, an opaque token (``FaceKey.person_ref(document_number)``), never a name
  or a document number. The AAD binds each blob to its row id, kind and person_ref, so neither a
  blob moved to another row nor a row re-labelled to another person decrypts.
* ``face_crops``: JPEG face crops named by the sha256 of the plaintext, tied to a crossing, with a
  ``legal_hold`` flag that keeps them past their expiry (an open case).

Every row expires (``expires_at``); ``purge`` really deletes expired rows (legal holds excepted)
with ``PRAGMA secure_delete=ON`` so freed pages are zeroed, then checkpoints the WAL so no copy of the
deleted ciphertext stays there either. Nothing here logs a person_ref, a descriptor or a crop: only
counts. Schema changes are numbered migrations (``PRAGMA user_version``), as in the main store.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import re
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import numpy as np

from appliance.errors import ApplianceError, StoreError
from appliance.faces.crypto import FaceDecryptError, FaceKey

log = logging.getLogger(__name__)

DESCRIPTOR_DIM = 128
_WIRE = np.dtype("<f4")  # how a descriptor is sealed: 128 little-endian float32, 512 bytes
TemplateKind = Literal["reference", "watchlist"]
KINDS: tuple[str, ...] = ("reference", "watchlist")
_PERSON_REF = re.compile(r"^[A-Za-z0-9_.:-]{8,128}$")  # opaque tokens only: no spaces, so no names
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class DescriptorError(ApplianceError, ValueError):
    """A face descriptor is not 128 finite floats (or a batch of them)."""


class FaceDataError(ApplianceError):
    """Sealed face data is missing, expired, or does not open (altered, moved, or another key)."""


MIGRATIONS: list[str] = [
    # 1: sealed templates and crops
    """
    CREATE TABLE face_templates (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        person_ref TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('reference', 'watchlist')),
        key_id TEXT NOT NULL,
        ciphertext BLOB NOT NULL,
        created_at REAL NOT NULL,
        expires_at REAL NOT NULL
    );
    CREATE INDEX face_templates_by_person ON face_templates (person_ref, kind, id);
    CREATE INDEX face_templates_by_kind ON face_templates (kind, expires_at);
    CREATE INDEX face_templates_by_expiry ON face_templates (expires_at);
    CREATE TABLE face_crops (
        sha256 TEXT PRIMARY KEY,
        key_id TEXT NOT NULL,
        ciphertext BLOB NOT NULL,
        created_at REAL NOT NULL,
        expires_at REAL NOT NULL,
        crossing_id TEXT,
        legal_hold INTEGER NOT NULL DEFAULT 0 CHECK (legal_hold IN (0, 1))
    );
    CREATE INDEX face_crops_by_crossing ON face_crops (crossing_id);
    CREATE INDEX face_crops_by_expiry ON face_crops (legal_hold, expires_at);
    """,
]


def as_descriptor(value: Any, what: str = "descriptor") -> np.ndarray:
    """``value`` as a (128,) float32 array of finite numbers; DescriptorError otherwise."""
    arr = np.asarray(value)
    if arr.shape != (DESCRIPTOR_DIM,):
        raise DescriptorError(f"{what}: expected shape ({DESCRIPTOR_DIM},), got {arr.shape}")
    return _as_float32(arr, what)


def as_descriptors(value: Any, what: str = "descriptors") -> np.ndarray:
    """``value`` as an (N, 128) C-contiguous float32 array of finite numbers (N may be 0)."""
    arr = np.asarray(value)
    if arr.ndim != 2 or arr.shape[1] != DESCRIPTOR_DIM:
        raise DescriptorError(f"{what}: expected shape (N, {DESCRIPTOR_DIM}), got {arr.shape}")
    return _as_float32(arr, what)


def _as_float32(arr: np.ndarray, what: str) -> np.ndarray:
    if arr.dtype.kind != "f":
        raise DescriptorError(f"{what}: expected floating-point values, got dtype {arr.dtype}")
    with np.errstate(over="ignore"):  # beyond float32 becomes inf, refused just below
        out = np.ascontiguousarray(arr, dtype=np.float32)
    if not np.isfinite(out).all():
        raise DescriptorError(f"{what}: holds NaN or infinite values (or values beyond float32)")
    return out


def _check_ttl(ttl_s: float) -> float:
    if not (isinstance(ttl_s, int | float) and math.isfinite(ttl_s) and ttl_s > 0):
        raise ValueError(f"ttl_s must be a positive number of seconds, got {ttl_s!r}")
    return float(ttl_s)


def _check_person_ref(person_ref: str) -> str:
    if not isinstance(person_ref, str) or not _PERSON_REF.match(person_ref):
        raise ValueError(
            "person_ref must be an opaque token of 8-128 characters [A-Za-z0-9_.:-] "
            "(e.g. FaceKey.person_ref(document_number)), never a name"
        )
    return person_ref


def _template_aad(template_id: int, kind: str, person_ref: str) -> bytes:
    return f"face-template:v1:{template_id}:{kind}:{person_ref}".encode()


def _crop_aad(sha: str, crossing_id: str | None) -> bytes:
    return f"face-crop:v1:{sha}:{crossing_id or ''}".encode()


def _statements(script: str) -> Iterator[str]:
    pending = ""
    for part in script.split(";"):
        pending += part + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \t\n;"):
                yield pending
            pending = ""


class TemplateStore:
    """Sealed templates and crops in one SQLite file; thread-safe (one connection, serialised by a lock)."""

    def __init__(self, path: Path, key: FaceKey):
        self.path = path
        self.key = key
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.exists():  # owner-only from the start; SQLite gives -wal/-shm the same mode
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
            self._conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30)
            self._conn.row_factory = sqlite3.Row
            self._conn.execute("PRAGMA secure_delete=ON")
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            if self._conn.execute("PRAGMA secure_delete").fetchone()[0] != 1:
                raise StoreError(f"{path}: this SQLite build cannot zero deleted face data (secure_delete)")
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"{path}: cannot open the face store: {exc}") from exc
        self._lock = threading.RLock()
        self._migrate()

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> TemplateStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def schema_version(self) -> int:
        with self._lock:
            return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self) -> None:
        current = self.schema_version()
        if current > len(MIGRATIONS):
            raise StoreError(
                f"{self.path}: face store schema v{current} is newer than this appliance (v{len(MIGRATIONS)}); "
                "upgrade the appliance or restore a matching backup"
            )
        for version in range(current + 1, len(MIGRATIONS) + 1):
            with self._transaction() as conn:
                for statement in _statements(MIGRATIONS[version - 1]):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {version}")
            log.info("face store %s migrated to schema v%d", self.path, version)

    # --- templates ---------------------------------------------------------------------------------

    def enroll(self, person_ref: str, descriptor: np.ndarray, kind: TemplateKind, ttl_s: float,
               now: float | None = None) -> int:
        """Seal and store one descriptor; returns the template id (ids are never reused)."""
        _check_person_ref(person_ref)
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
        plaintext = as_descriptor(descriptor).astype(_WIRE, copy=False).tobytes()
        ts = time.time() if now is None else now
        expires = ts + _check_ttl(ttl_s)
        with self._transaction() as conn:
            # The id is part of the AAD: insert, learn the id, seal, fill in (one transaction).
            cur = conn.execute(
                "INSERT INTO face_templates (person_ref, kind, key_id, ciphertext, created_at, expires_at) "
                "VALUES (?, ?, ?, x'', ?, ?)",
                (person_ref, kind, self.key.key_id, ts, expires),
            )
            template_id = int(cur.lastrowid or 0)
            blob = self.key.encrypt(plaintext, _template_aad(template_id, kind, person_ref))
            conn.execute("UPDATE face_templates SET ciphertext = ? WHERE id = ?", (blob, template_id))
        return template_id

    def _open_template(self, row: sqlite3.Row) -> np.ndarray:
        where = f"{self.path}: face template {row['id']}"
        if row["key_id"] != self.key.key_id:
            raise FaceDataError(
                f"{where} was sealed with key {row['key_id']}, the loaded face key is {self.key.key_id}: "
                "load the key it was sealed with, or re-enrol"
            )
        try:
            plaintext = self.key.decrypt(row["ciphertext"], _template_aad(row["id"], row["kind"], row["person_ref"]))
        except FaceDecryptError as exc:
            raise FaceDataError(f"{where}: {exc}") from None
        if len(plaintext) != DESCRIPTOR_DIM * _WIRE.itemsize:
            raise FaceDataError(f"{where}: holds {len(plaintext)} bytes, not a {DESCRIPTOR_DIM}-d descriptor")
        return np.frombuffer(plaintext, dtype=_WIRE).astype(np.float32)

    def reference(self, person_ref: str, now: float | None = None) -> np.ndarray | None:
        """The newest unexpired reference descriptor of ``person_ref`` (float32, (128,)), or None."""
        ts = time.time() if now is None else now
        with self._lock:
            row = self._conn.execute(
                "SELECT id, person_ref, kind, key_id, ciphertext FROM face_templates "
                "WHERE person_ref = ? AND kind = 'reference' AND expires_at > ? ORDER BY id DESC LIMIT 1",
                (person_ref, ts),
            ).fetchone()
        return None if row is None else self._open_template(row)

    def watchlist(self, now: float | None = None) -> tuple[list[str], np.ndarray]:
        """Every unexpired watchlist template, opened in memory: (person_refs, (N, 128) float32), in id order.

        A person with several templates appears once per template.
        """
        ts = time.time() if now is None else now
        with self._lock:
            rows = self._conn.execute(
                "SELECT id, person_ref, kind, key_id, ciphertext FROM face_templates "
                "WHERE kind = 'watchlist' AND expires_at > ? ORDER BY id",
                (ts,),
            ).fetchall()
        matrix = np.empty((len(rows), DESCRIPTOR_DIM), dtype=np.float32)
        for i, row in enumerate(rows):
            matrix[i] = self._open_template(row)
        return [str(r["person_ref"]) for r in rows], matrix

    def forget(self, person_ref: str) -> int:
        """Delete every template of ``person_ref`` now (an erasure request); returns how many."""
        with self._transaction() as conn:
            n = conn.execute("DELETE FROM face_templates WHERE person_ref = ?", (person_ref,)).rowcount
        self._checkpoint()
        return int(n)

    # --- crops -------------------------------------------------------------------------------------

    def put_crop(self, jpeg: bytes, crossing_id: str | None, ttl_s: float, now: float | None = None) -> str:
        """Seal and store a JPEG face crop; returns its name (sha256 of the JPEG).

        The same JPEG stored twice stays one row, tied to its first crossing; its expiry becomes the later one.
        """
        data = bytes(jpeg)
        if not data.startswith(b"\xff\xd8\xff"):
            raise ValueError("a face crop must be JPEG bytes")
        sha = hashlib.sha256(data).hexdigest()
        ts = time.time() if now is None else now
        expires = ts + _check_ttl(ttl_s)
        with self._transaction() as conn:
            row = conn.execute("SELECT expires_at FROM face_crops WHERE sha256 = ?", (sha,)).fetchone()
            if row is not None:
                conn.execute("UPDATE face_crops SET expires_at = max(expires_at, ?) WHERE sha256 = ?", (expires, sha))
                return sha
            blob = self.key.encrypt(data, _crop_aad(sha, crossing_id))
            conn.execute(
                "INSERT INTO face_crops (sha256, key_id, ciphertext, created_at, expires_at, crossing_id) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (sha, self.key.key_id, blob, ts, expires, crossing_id),
            )
        return sha

    def get_crop(self, sha: str, now: float | None = None) -> bytes:
        """The JPEG of a stored crop; FaceDataError when it is unknown, expired (and not held) or does not open."""
        if not isinstance(sha, str) or not _SHA256.match(sha):
            raise ValueError("a face crop is named by the 64 lower-case hex digits of its sha256")
        ts = time.time() if now is None else now
        with self._lock:
            row = self._conn.execute(
                "SELECT sha256, key_id, ciphertext, expires_at, crossing_id, legal_hold FROM face_crops "
                "WHERE sha256 = ?", (sha,),
            ).fetchone()
        where = f"{self.path}: face crop {sha}"
        if row is None:
            raise FaceDataError(f"{where}: not stored (never, or purged)")
        if row["expires_at"] <= ts and not row["legal_hold"]:
            raise FaceDataError(f"{where}: expired (retention), awaiting purge")
        if row["key_id"] != self.key.key_id:
            raise FaceDataError(f"{where} was sealed with key {row['key_id']}, the loaded face key is "
                                f"{self.key.key_id}")
        try:
            data = self.key.decrypt(row["ciphertext"], _crop_aad(sha, row["crossing_id"]))
        except FaceDecryptError as exc:
            raise FaceDataError(f"{where}: {exc}") from None
        if hashlib.sha256(data).hexdigest() != sha:  # cannot happen unless the AAD scheme is broken
            raise FaceDataError(f"{where}: content does not match its name")
        return data

    def hold(self, crossing_id: str, on: bool) -> int:
        """Put the crops of a crossing on legal hold (kept past expiry) or release them; returns how many."""
        with self._transaction() as conn:
            n = conn.execute("UPDATE face_crops SET legal_hold = ? WHERE crossing_id = ?",
                             (1 if on else 0, crossing_id)).rowcount
        return int(n)

    # --- retention ---------------------------------------------------------------------------------

    def purge(self, now: float | None = None) -> dict[str, int]:
        """Delete expired templates and crops (crops on legal hold stay); returns counts per table.

        Rows are deleted (no VACUUM); ``secure_delete`` zeroes the freed pages and the WAL is
        checkpointed and truncated so no old page image of the deleted ciphertext stays there.
        """
        ts = time.time() if now is None else now
        with self._transaction() as conn:
            templates = conn.execute("DELETE FROM face_templates WHERE expires_at <= ?", (ts,)).rowcount
            crops = conn.execute("DELETE FROM face_crops WHERE legal_hold = 0 AND expires_at <= ?", (ts,)).rowcount
        self._checkpoint()
        counts = {"templates": int(templates), "crops": int(crops)}
        if templates or crops:
            log.info("face store: purged %d expired templates and %d expired crops", templates, crops)
        return counts

    def _checkpoint(self) -> None:
        with self._lock:
            try:
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error as exc:  # a reader holds the WAL: the next checkpoint finishes it
                log.warning("face store %s: WAL checkpoint after delete did not finish: %s", self.path, exc)

    def counts(self, now: float | None = None) -> dict[str, int]:
        """Stored rows: templates per kind, crops, crops on hold, rows already expired (for status pages)."""
        ts = time.time() if now is None else now
        with self._lock:
            t = self._conn.execute(
                "SELECT sum(kind = 'reference'), sum(kind = 'watchlist'), sum(expires_at <= ?) FROM face_templates",
                (ts,),
            ).fetchone()
            c = self._conn.execute(
                "SELECT count(*), sum(legal_hold), sum(legal_hold = 0 AND expires_at <= ?) FROM face_crops", (ts,)
            ).fetchone()
        return {
            "reference": int(t[0] or 0), "watchlist": int(t[1] or 0), "expired_templates": int(t[2] or 0),
            "crops": int(c[0] or 0), "crops_on_hold": int(c[1] or 0), "expired_crops": int(c[2] or 0),
        }
