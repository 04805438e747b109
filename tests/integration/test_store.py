from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from appliance.errors import StoreError
from appliance.lanes.crossing import Crossing, FieldResult, SealState
from appliance.reads import BBox, Observation, PlateRead
from appliance.store.db import MIGRATIONS, Store
from appliance.verdicts.rules import Reason, Verdict


def crossing(cid: str, ts: float, evidence: str | None = None) -> Crossing:
    obs = Observation("front", ts, PlateRead("12C-123.45", "VN", "one_line", "yellow", 0.9, BBox(1, 2, 3, 4)), evidence)
    return Crossing(id=cid, lane_id="l1", started_at=ts, ended_at=ts + 2,
                    tractor_plate=FieldResult("12C-123.45", 0.9, 1, evidence), seal=SealState(None, None),
                    observations=(obs,))


def test_crossing_verdict_and_observations_round_trip(tmp_path: Path) -> None:
    store = Store(tmp_path / "a.db", tmp_path / "ev")
    sha = store.put_evidence(b"\xff\xd8fake-jpeg")
    assert store.evidence_path(sha) is not None and store.evidence_path(sha).read_bytes() == b"\xff\xd8fake-jpeg"
    verdict = Verdict("REVIEW", (Reason("seal_unread", "REVIEW", "seal"),), "301234567890")
    store.save_crossing(crossing("c1", 10.0, sha), verdict)
    store.save_crossing(crossing("c2", 20.0), Verdict("CLEAR", (), None))
    rows = store.list_crossings()
    assert [r.id for r in rows] == ["c2", "c1"]
    c1 = store.get_crossing("c1")
    assert c1 is not None and c1.decision == "REVIEW" and c1.reasons[0]["code"] == "seal_unread"
    assert c1.summary["tractor_plate"]["evidence"] == sha
    obs = store.observations("c1")
    assert obs[0]["value"] == "12C-123.45" and obs[0]["evidence_sha256"] == sha
    assert store.counts() == {"REVIEW": 1, "CLEAR": 1}
    assert [r.id for r in store.list_crossings("CLEAR")] == ["c2"]
    assert store.integrity_check() == "ok"
    store.close()


def test_wal_mode_and_schema_version(tmp_path: Path) -> None:
    store = Store(tmp_path / "a.db", tmp_path / "ev")
    assert store.schema_version() == len(MIGRATIONS)
    store.close()
    conn = sqlite3.connect(tmp_path / "a.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    Store(tmp_path / "a.db", tmp_path / "ev").close()  # re-open: no migration re-run


def test_failed_write_leaves_nothing_behind(tmp_path: Path) -> None:
    store = Store(tmp_path / "a.db", tmp_path / "ev")
    store.save_crossing(crossing("c1", 1.0), Verdict("CLEAR", (), None))
    with pytest.raises(sqlite3.IntegrityError):  # same id again: the whole transaction rolls back
        store.save_crossing(crossing("c1", 1.0), Verdict("HOLD", (), None))
    assert store.counts() == {"CLEAR": 1}
    assert len(store.observations("c1")) == 1


def test_store_from_the_future_is_refused(tmp_path: Path) -> None:
    Store(tmp_path / "a.db", tmp_path / "ev").close()
    conn = sqlite3.connect(tmp_path / "a.db")
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(StoreError, match="newer"):
        Store(tmp_path / "a.db", tmp_path / "ev")
