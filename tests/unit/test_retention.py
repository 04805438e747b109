"""Retention on a real SQLite store and a real evidence folder: budgets, oldest-first eviction, what is never
evicted (legal hold, undecided REVIEW/HOLD, undelivered, still-open crossing), alarms, legal hold CLI."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pytest

from appliance.cli import main
from appliance.config import AppConfig, parse_config
from appliance.errors import ConfigError
from appliance.lanes.crossing import Crossing, FieldResult
from appliance.reads import BBox, Observation, PlateRead
from appliance.retention.evict import evict_store_class
from appliance.retention.holds import HoldError, list_holds, release_hold, set_hold
from appliance.retention.service import RetentionService
from appliance.store.db import Store
from appliance.verdicts.rules import Verdict

KB = 1024


def config(tmp_path: Path, retention: str = "") -> AppConfig:
    text = (f"site: {{gate: VNHNG, box_id: box-1}}\n"
            f"lanes: [{{id: l1, sources: [{{id: front, type: video_file, path: x.mp4, role: front}}]}}]\n"
            f"storage: {{path: {tmp_path / 'a.db'}, evidence_dir: {tmp_path / 'ev'}}}\n"
            f"faces: {{store_path: {tmp_path / 'faces.db'}}}\n" + retention)
    return parse_config(text, where="test.yaml")


def new_store(tmp_path: Path) -> Store:
    store = Store(tmp_path / "a.db", tmp_path / "ev", event_builder=lambda c, v: {"id": f"ev-{c.id}"})
    store.register_sink("central")
    return store


def add_crossing(store: Store, cid: str, decision: str, nbytes: int = 10 * KB, at: float | None = None) -> str:
    """One crossing with one evidence image of ``nbytes``, as a lane writes it (image first, then the row)."""
    sha = store.put_evidence(cid.encode() + b"\xff" * (nbytes - len(cid)))
    if at is not None:  # evidence age, for oldest-first order
        with store.transaction() as conn:
            conn.execute("UPDATE evidence SET created_at = ? WHERE sha256 = ?", (at, sha))
    obs = Observation("front", 1.0, PlateRead("12C-123.45", "VN", "one_line", "yellow", 0.9, BBox(1, 2, 3, 4)), sha)
    store.save_crossing(Crossing(id=cid, lane_id="l1", started_at=1.0, ended_at=2.0,
                                 tractor_plate=FieldResult("12C-123.45", 0.9, 1, sha), observations=(obs,)),
                        Verdict(decision, (), None))
    return sha


def deliver_all(store: Store) -> None:
    store.mark_delivered("central", [r.id for r in store.pending("central", limit=10_000)])


def evicted(store: Store, sha: str) -> bool:
    row = store.query("SELECT evicted_at FROM evidence WHERE sha256 = ?", (sha,))[0]
    path = store.evidence_path(sha)
    assert path is not None
    assert (row["evicted_at"] is not None) == (not path.exists()), "row and file disagree"
    return row["evicted_at"] is not None


def test_oldest_unheld_evidence_goes_first_and_held_evidence_stays(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    now = time.time()
    shas = {cid: add_crossing(store, cid, dec, at=now - 1000 + i)
            for i, (cid, dec) in enumerate([("held", "CLEAR"), ("review", "REVIEW"), ("hold", "HOLD"),
                                            ("old", "CLEAR"), ("mid", "CLEAR"), ("undelivered", "CLEAR"),
                                            ("new", "CLEAR")])}
    deliver_all(store)
    set_hold(store, "held", "case 2026/17", "admin")
    # an event of "undelivered" that is still pending (e.g. an inspector's decision)
    store.enqueue_event({"id": "late-decision"}, "l1", "undelivered")
    # 7 files of 10 KiB; budget 50 KiB, target 80 % = 40 KiB: 3 must go, and only unheld ones may
    report = evict_store_class(store, "evidence", 50 * KB, 0.8, 0.9, 3600, now=now)
    assert report.evicted_files == 3 and report.state == "ok"
    assert {cid for cid, sha in shas.items() if evicted(store, sha)} == {"old", "mid", "new"}
    assert set(report.held) == {"legal_hold", "undecided", "undelivered"}
    row = store.query("SELECT evidence_evicted_at FROM crossings WHERE id = 'old'")[0]
    assert row["evidence_evicted_at"] == pytest.approx(now)
    assert store.query("SELECT evidence_evicted_at FROM crossings WHERE id = 'held'")[0][0] is None
    assert store.counts() == {"CLEAR": 5, "REVIEW": 1, "HOLD": 1}  # every verdict row stays
    assert store.integrity_check() == "ok"
    store.close()


def test_everything_held_is_a_blocked_alarm_and_nothing_is_deleted(tmp_path: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    store = new_store(tmp_path)
    shas = [add_crossing(store, f"r{i}", "REVIEW") for i in range(4)]  # undecided: never evicted
    cfg = config(tmp_path, "retention: {budgets: {evidence: 30KiB}}\n")
    status: dict[str, object] = {}
    with caplog.at_level(logging.WARNING, logger="appliance.retention"):
        RetentionService(cfg, store, status).run_once()
    cls = status["retention"]["classes"]["evidence"]  # type: ignore[index]
    assert cls["state"] == "blocked" and cls["evicted_files"] == 0 and cls["used_bytes"] == 40 * KB
    assert status["retention"]["state"] == "blocked"  # type: ignore[index]
    assert not any(evicted(store, s) for s in shas)
    assert any(r.levelno == logging.ERROR and "cannot free space" in r.getMessage() for r in caplog.records)
    store.close()


def test_alarm_before_the_budget_is_reached(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = new_store(tmp_path)
    for i in range(9):
        add_crossing(store, f"c{i}", "CLEAR")
    deliver_all(store)
    cfg = config(tmp_path, "retention: {budgets: {evidence: 100KiB}, alarm_fraction: 0.85, target_fraction: 0.5}\n")
    status: dict[str, object] = {}
    service = RetentionService(cfg, store, status)
    with caplog.at_level(logging.WARNING, logger="appliance.retention"):
        service.run_once()
    cls = status["retention"]["classes"]["evidence"]  # type: ignore[index]
    assert cls["state"] == "alarm" and cls["fraction"] == pytest.approx(0.9) and cls["evicted_files"] == 0
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "of its budget" in r.getMessage()]
    assert len(warnings) == 1
    service.run_once()  # the same state again soon after: no second warning
    assert len([r for r in caplog.records if "of its budget" in r.getMessage()]) == 1
    add_crossing(store, "c9", "CLEAR")
    add_crossing(store, "c10", "CLEAR")
    deliver_all(store)
    service.run_once()  # 110 KiB > 100 KiB: down to 50 KiB
    cls = status["retention"]["classes"]["evidence"]  # type: ignore[index]
    assert cls["state"] == "ok" and cls["used_bytes"] <= 50 * KB and cls["evicted_files"] == 6
    store.close()


def test_evidence_of_a_still_open_crossing_is_kept_for_the_grace(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    now = time.time()
    young = store.put_evidence(b"young" * 4000)  # no crossing names it yet: the lane is still assembling
    old = store.put_evidence(b"old-orphan" * 2000)
    with store.transaction() as conn:
        conn.execute("UPDATE evidence SET created_at = ? WHERE sha256 = ?", (now - 7200, old))
    report = evict_store_class(store, "evidence", 1000, 0.5, 0.9, 3600, now=now)
    assert evicted(store, old) and not evicted(store, young)
    assert report.state == "blocked" and report.held == {"open_crossing": 20000}
    store.close()


def test_evicted_image_written_again_is_live_again(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    sha = add_crossing(store, "c1", "CLEAR", at=time.time() - 100)
    deliver_all(store)
    evict_store_class(store, "evidence", 1, 0.5, 0.9, 3600)
    assert evicted(store, sha)
    assert store.put_evidence(b"c1" + b"\xff" * (10 * KB - 2)) == sha
    assert not evicted(store, sha)
    store.close()


def test_legal_hold_rules(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    add_crossing(store, "c1", "CLEAR")
    with pytest.raises(HoldError, match="no crossing or passage 'nope'"):
        set_hold(store, "nope", "case 1", "admin")
    with pytest.raises(HoldError, match="needs a reason"):
        set_hold(store, "c1", "  ", "admin")
    set_hold(store, "c1", "case 1", "admin")
    with pytest.raises(HoldError, match="already on legal hold"):
        set_hold(store, "c1", "case 2", "someone")
    assert [h.crossing_id for h in list_holds(store)] == ["c1"]
    release_hold(store, "c1", "case closed", "admin")
    with pytest.raises(HoldError, match="not on legal hold"):
        release_hold(store, "c1", "again", "admin")
    actions = [r["action"] for r in store.query("SELECT action FROM audit_log ORDER BY id")]
    assert actions == ["retention.hold", "retention.release"]
    assert store.verify_audit_chain() is None
    store.close()


def test_retention_cli_hold_status_release(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = new_store(tmp_path)
    add_crossing(store, "c1", "CLEAR")
    store.close()
    cfg_path = tmp_path / "site.yaml"
    cfg_path.write_text(
        f"site: {{gate: VNHNG, box_id: box-1}}\n"
        f"lanes: [{{id: l1, sources: [{{id: front, type: video_file, path: x.mp4, role: front}}]}}]\n"
        f"storage: {{path: {tmp_path / 'a.db'}, evidence_dir: {tmp_path / 'ev'}}}\n"
        f"faces: {{store_path: {tmp_path / 'faces.db'}}}\n"
        "retention: {budgets: {evidence: 1KiB}}\n")
    assert main(["retention", "hold", "--config", str(cfg_path), "--crossing", "c1", "--reason", "case 9",
                 "--actor", "admin"]) == 0
    assert main(["retention", "status", "--config", str(cfg_path), "--json"]) == 0
    out = capsys.readouterr().out
    status = json.loads(out[out.index("{"):])
    assert status["classes"]["evidence"]["state"] == "blocked"  # over budget, status evicts nothing
    assert status["classes"]["evidence"]["used_bytes"] == 10 * KB
    assert [h["crossing_id"] for h in status["holds"]] == ["c1"]
    assert main(["retention", "run", "--config", str(cfg_path)]) == 0
    assert "legal holds: 1" in capsys.readouterr().out
    assert main(["retention", "release", "--config", str(cfg_path), "--crossing", "c2", "--reason", "x"]) == 2
    assert "c2: not on legal hold" in capsys.readouterr().err


def test_retention_config_is_strict(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"test.yaml:6: retention.budgets.evidence: could not interpret byte unit"):
        config(tmp_path, "retention:\n  budgets: {evidence: 5 parsecs}\n")
    with pytest.raises(ConfigError, match=r"target_fraction \(0.95\) must not be above alarm_fraction"):
        config(tmp_path, "retention: {target_fraction: 0.95}\n")
    with pytest.raises(ConfigError, match=r"retention\.budgets\.faces: Input should be greater than 0"):
        config(tmp_path, "retention: {budgets: {faces: 0}}\n")
    with pytest.raises(ConfigError, match=r"retention\.budgets\.frames: unknown key"):
        config(tmp_path, "retention: {budgets: {frames: 1GB}}\n")
    assert config(tmp_path, "retention: {budgets: {xray: 2GiB}}\n").retention.budgets.xray == 2 * 1024 ** 3


def test_face_crops_over_budget_go_oldest_first_but_held_ones_stay(tmp_path: Path) -> None:
    from appliance.faces.crypto import FaceKey
    from appliance.faces.templates import TemplateStore
    from appliance.retention.faces import evict_faces

    store = new_store(tmp_path)
    add_crossing(store, "case", "CLEAR")
    deliver_all(store)
    set_hold(store, "case", "case 3", "admin")
    key = FaceKey.generate(tmp_path / "face.key")
    now = time.time()
    with TemplateStore(tmp_path / "faces.db", key) as faces:
        shas = [faces.put_crop(b"\xff\xd8\xff" + bytes([i]) * 4000, owner, 86400, now=now - 1000 + i)
                for i, owner in enumerate(["case", "p1", "p2", "p3", "p4"])]
        faces.hold("p2", True)  # the face store's own legal hold flag
        report = evict_faces(store, tmp_path / "faces.db", 4 * 4100, 0.75, 0.9, 3600, now=now)
        assert report.held == {"legal_hold": report.held["legal_hold"]} and report.evicted_files == 2
        left = {sha for sha in shas if faces.counts()["crops"] and _crop_exists(faces, sha)}
        assert left == {shas[0], shas[2], shas[4]}  # "case" (main store hold), p2 (face hold), newest p4
        assert faces.get_crop(shas[0]).startswith(b"\xff\xd8\xff")  # still opens
    store.close()


def _crop_exists(faces: object, sha: str) -> bool:
    from appliance.faces.templates import FaceDataError

    try:
        faces.get_crop(sha)  # type: ignore[attr-defined]
    except FaceDataError:
        return False
    return True
