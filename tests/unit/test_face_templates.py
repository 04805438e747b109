"""The sealed face store: round trips, record binding, retention with legal hold, no plaintext on disk."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from appliance.errors import StoreError
from appliance.faces.crypto import FaceKey
from appliance.faces.templates import MIGRATIONS, DescriptorError, FaceDataError, TemplateStore

KEY = FaceKey(bytes(range(1, 33)))
OTHER_KEY = FaceKey(bytes(range(100, 132)))
DAY = 86_400.0
T0 = 1_800_000_000.0
REF_A, REF_B = "a" * 32, "b" * 32


def _descriptor(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(128).astype(np.float32) * 0.1


def _jpeg(seed: int) -> bytes:
    return b"\xff\xd8\xff\xe0" + np.random.default_rng(seed).bytes(2000) + b"\xff\xd9"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[TemplateStore]:
    s = TemplateStore(tmp_path / "faces.db", KEY)
    yield s
    s.close()


def _disk_bytes(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists())


def test_schema_and_pragmas(store: TemplateStore, tmp_path: Path) -> None:
    assert store.schema_version() == len(MIGRATIONS)
    assert store._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store._conn.execute("PRAGMA secure_delete").fetchone()[0] == 1
    assert (tmp_path / "faces.db").stat().st_mode & 0o077 == 0


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "faces.db"
    TemplateStore(path, KEY).close()
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    with pytest.raises(StoreError, match="newer than this appliance"):
        TemplateStore(path, KEY)


def test_enroll_and_reference_round_trip(store: TemplateStore) -> None:
    d = _descriptor(1)
    tid = store.enroll(REF_A, d, "reference", ttl_s=DAY, now=T0)
    got = store.reference(REF_A, now=T0 + 1)
    assert tid >= 1 and got is not None and got.dtype == np.float32 and got.shape == (128,)
    np.testing.assert_array_equal(got, d)
    assert store.reference(REF_B, now=T0) is None
    assert store.reference(REF_A, now=T0 + DAY + 1) is None  # expired: not served even before the purge
    newer = _descriptor(2)
    store.enroll(REF_A, newer, "reference", ttl_s=DAY, now=T0 + 10)
    np.testing.assert_array_equal(store.reference(REF_A, now=T0 + 11), newer)


def test_watchlist_round_trip(store: TemplateStore) -> None:
    assert store.watchlist(now=T0)[1].shape == (0, 128)
    store.enroll(REF_A, _descriptor(1), "watchlist", ttl_s=DAY, now=T0)
    store.enroll(REF_B, _descriptor(2), "watchlist", ttl_s=DAY, now=T0)
    store.enroll("c" * 32, _descriptor(3), "reference", ttl_s=DAY, now=T0)
    ids, matrix = store.watchlist(now=T0)
    assert ids == [REF_A, REF_B] and matrix.dtype == np.float32 and matrix.shape == (2, 128)
    np.testing.assert_array_equal(matrix[1], _descriptor(2))


@pytest.mark.parametrize("bad", [np.zeros(127, np.float32), np.zeros((1, 128), np.float32), np.zeros(128, np.int32),
                                 np.full(128, np.nan, np.float32), np.full(128, np.inf), np.full(128, 1e300),
                                 ["a"] * 128])
def test_bad_descriptors_are_refused(store: TemplateStore, bad: object) -> None:
    with pytest.raises(DescriptorError):
        store.enroll(REF_A, bad, "reference", ttl_s=DAY)  # type: ignore[arg-type]
    assert store.counts()["reference"] == 0


def test_float64_descriptor_is_accepted_as_float32(store: TemplateStore) -> None:
    d = _descriptor(4).astype(np.float64)
    store.enroll(REF_A, d, "reference", ttl_s=DAY, now=T0)
    np.testing.assert_array_equal(store.reference(REF_A, now=T0), d.astype(np.float32))


@pytest.mark.parametrize(("person_ref", "kind", "ttl"), [
    ("Nguyen Van An", "reference", DAY), ("short", "reference", DAY), (REF_A, "suspect", DAY),
    (REF_A, "reference", 0), (REF_A, "reference", float("inf")),
])
def test_bad_enrol_arguments_are_refused(store: TemplateStore, person_ref: str, kind: str, ttl: float) -> None:
    with pytest.raises(ValueError):
        store.enroll(person_ref, _descriptor(1), kind, ttl_s=ttl)  # type: ignore[arg-type]


def test_a_blob_moved_to_another_record_does_not_open(store: TemplateStore) -> None:
    a = store.enroll(REF_A, _descriptor(1), "reference", ttl_s=DAY, now=T0)
    b = store.enroll(REF_B, _descriptor(2), "reference", ttl_s=DAY, now=T0)
    with store._lock:
        blob = store._conn.execute("SELECT ciphertext FROM face_templates WHERE id = ?", (a,)).fetchone()[0]
        store._conn.execute("UPDATE face_templates SET ciphertext = ? WHERE id = ?", (blob, b))
    with pytest.raises(FaceDataError, match=rf"face template {b}: .*belongs to another record"):
        store.reference(REF_B, now=T0)


def test_a_row_relabelled_to_another_person_does_not_open(store: TemplateStore) -> None:
    store.enroll(REF_A, _descriptor(1), "watchlist", ttl_s=DAY, now=T0)
    with store._lock:
        store._conn.execute("UPDATE face_templates SET person_ref = ?", (REF_B,))
    with pytest.raises(FaceDataError):
        store.watchlist(now=T0)
    with store._lock:
        store._conn.execute("UPDATE face_templates SET person_ref = ?, kind = 'reference'", (REF_A,))
    with pytest.raises(FaceDataError):
        store.reference(REF_A, now=T0)


def test_tampered_template_does_not_open(store: TemplateStore) -> None:
    store.enroll(REF_A, _descriptor(1), "reference", ttl_s=DAY, now=T0)
    with store._lock:
        blob = bytearray(store._conn.execute("SELECT ciphertext FROM face_templates").fetchone()[0])
        blob[40] ^= 0xFF
        store._conn.execute("UPDATE face_templates SET ciphertext = ?", (bytes(blob),))
    with pytest.raises(FaceDataError, match="altered"):
        store.reference(REF_A, now=T0)


def test_another_key_is_reported_as_such(tmp_path: Path) -> None:
    path = tmp_path / "faces.db"
    with TemplateStore(path, KEY) as s:
        s.enroll(REF_A, _descriptor(1), "reference", ttl_s=DAY, now=T0)
        sha = s.put_crop(_jpeg(1), "X1", ttl_s=DAY, now=T0)
    with TemplateStore(path, OTHER_KEY) as s:
        with pytest.raises(FaceDataError, match=f"sealed with key {KEY.key_id}.*{OTHER_KEY.key_id}"):
            s.reference(REF_A, now=T0)
        with pytest.raises(FaceDataError, match=f"sealed with key {KEY.key_id}"):
            s.get_crop(sha, now=T0)
        with s._lock:  # even with the key id forged, the wrong key does not open it
            s._conn.execute("UPDATE face_templates SET key_id = ?", (OTHER_KEY.key_id,))
        with pytest.raises(FaceDataError, match="does not open"):
            s.reference(REF_A, now=T0)


def test_crop_round_trip_and_errors(store: TemplateStore) -> None:
    jpeg = _jpeg(1)
    sha = store.put_crop(jpeg, "X1", ttl_s=DAY, now=T0)
    assert sha == hashlib.sha256(jpeg).hexdigest()
    assert store.get_crop(sha, now=T0 + 1) == jpeg
    assert store.put_crop(jpeg, "X2", ttl_s=2 * DAY, now=T0) == sha  # same bytes: one row, later expiry
    assert store.get_crop(sha, now=T0 + 1.5 * DAY) == jpeg
    with pytest.raises(FaceDataError, match="expired"):
        store.get_crop(sha, now=T0 + 3 * DAY)
    with pytest.raises(FaceDataError, match="not stored"):
        store.get_crop("0" * 64, now=T0)
    with pytest.raises(ValueError):
        store.get_crop("../etc/passwd")
    with pytest.raises(ValueError, match="JPEG"):
        store.put_crop(b"GIF89a....", "X1", ttl_s=DAY)


def test_crop_moved_to_another_crossing_does_not_open(store: TemplateStore) -> None:
    sha = store.put_crop(_jpeg(1), "X1", ttl_s=DAY, now=T0)
    with store._lock:
        store._conn.execute("UPDATE face_crops SET crossing_id = 'X2'")
    with pytest.raises(FaceDataError, match="does not open"):
        store.get_crop(sha, now=T0)


def test_purge_deletes_expired_rows_and_keeps_legal_holds(store: TemplateStore) -> None:
    store.enroll(REF_A, _descriptor(1), "reference", ttl_s=DAY, now=T0)
    keep_t = store.enroll(REF_B, _descriptor(2), "watchlist", ttl_s=10 * DAY, now=T0)
    old = store.put_crop(_jpeg(1), "X1", ttl_s=DAY, now=T0)
    held = store.put_crop(_jpeg(2), "X2", ttl_s=DAY, now=T0)
    fresh = store.put_crop(_jpeg(3), "X3", ttl_s=10 * DAY, now=T0)
    assert store.hold("X2", True) == 1
    assert store.purge(now=T0 + 2 * DAY) == {"templates": 1, "crops": 1}
    with store._lock:
        template_ids = [r[0] for r in store._conn.execute("SELECT id FROM face_templates")]
        crops = {r[0] for r in store._conn.execute("SELECT sha256 FROM face_crops")}
    assert template_ids == [keep_t] and crops == {held, fresh}
    assert old not in crops
    assert store.get_crop(held, now=T0 + 2 * DAY) == _jpeg(2)  # expired but held: still served
    assert store.purge(now=T0 + 2 * DAY) == {"templates": 0, "crops": 0}
    assert store.hold("X2", False) == 1
    assert store.purge(now=T0 + 2 * DAY) == {"templates": 0, "crops": 1}
    assert store.counts(now=T0 + 2 * DAY)["crops"] == 1


def test_forget_deletes_every_template_of_a_person(store: TemplateStore) -> None:
    store.enroll(REF_A, _descriptor(1), "reference", ttl_s=DAY, now=T0)
    store.enroll(REF_A, _descriptor(2), "watchlist", ttl_s=DAY, now=T0)
    store.enroll(REF_B, _descriptor(3), "watchlist", ttl_s=DAY, now=T0)
    assert store.forget(REF_A) == 2
    assert store.reference(REF_A, now=T0) is None and store.watchlist(now=T0)[0] == [REF_B]


def test_no_plaintext_on_disk(tmp_path: Path) -> None:
    path = tmp_path / "faces.db"
    d = _descriptor(42)
    jpeg = _jpeg(42)
    purged_d = _descriptor(43)
    with TemplateStore(path, KEY) as s:
        s.enroll(REF_A, d, "reference", ttl_s=DAY, now=T0)
        s.enroll(REF_B, d, "watchlist", ttl_s=DAY, now=T0)
        s.enroll(REF_B, purged_d, "watchlist", ttl_s=1, now=T0)
        sha = s.put_crop(jpeg, "X1", ttl_s=DAY, now=T0)
        with s._lock:
            purged_blob = bytes(s._conn.execute("SELECT ciphertext FROM face_templates ORDER BY id DESC").fetchone()[0])
        live = _disk_bytes(path)  # while open: the db file and its WAL
        assert purged_blob in live  # the probe works: what is stored can be found in these bytes
        s.purge(now=T0 + 10)
        assert s.get_crop(sha, now=T0) == jpeg
        np.testing.assert_array_equal(s.reference(REF_A, now=T0), d)
        live_after_purge = _disk_bytes(path)
    closed = _disk_bytes(path)
    for blob in (live, live_after_purge, closed):
        for plain in (d.astype("<f4").tobytes(), d.astype("<f4").tobytes()[:64], purged_d.astype("<f4").tobytes(),
                      jpeg, jpeg[100:200]):
            assert plain not in blob
    for blob in (live_after_purge, closed):  # deleted ciphertext is zeroed too (secure_delete + checkpoint)
        assert purged_blob not in blob
        assert purged_blob[20:80] not in blob
