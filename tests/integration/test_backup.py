"""Online backup while the store is being written, restore, and the refusals that lose nothing.

Real SQLite files, the real `appliance store backup|restore` commands, a real writer thread on its own
connection while the backup runs.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from appliance.cli import main
from appliance.errors import StoreError
from appliance.lanes.crossing import Crossing
from appliance.lifecycle.backup import backup_store, restore_store
from appliance.lifecycle.runlock import RunLock
from appliance.store.db import Store
from appliance.verdicts.rules import Verdict


def crossing(i: int) -> Crossing:
    return Crossing(id=f"cargo-1-{i}", lane_id="cargo-1", started_at=1000.0 + i, ended_at=1001.0 + i)


def events(c: Crossing, v: Verdict) -> dict[str, str]:
    return {"id": f"ev-{c.id}", "type": "verdict"}


def config(tmp_path: Path) -> Path:
    path = tmp_path / "lane.yaml"
    path.write_text("site: {gate: VNHNG, box_id: b}\nlanes:\n  - id: cargo-1\n    sources:\n"
                    "      - {id: front, type: video_file, role: front, path: front.avi}\n"
                    f"storage: {{path: {tmp_path / 'gate.db'}, evidence_dir: {tmp_path / 'evidence'}}}\n")
    return path


def test_backup_while_writing_then_restore(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = Store(tmp_path / "gate.db", tmp_path / "evidence", event_builder=events)
    for i in range(50):
        store.save_crossing(crossing(i), Verdict("CLEAR", (), None))
    stop = threading.Event()
    written = [50]

    def writer() -> None:  # the lanes keep writing while the backup runs
        while not stop.is_set():
            store.save_crossing(crossing(written[0]), Verdict("CLEAR", (), None))
            written[0] += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert main(["store", "backup", "--config", str(config(tmp_path)), "--out", str(tmp_path / "b.db")]) == 0
    finally:
        stop.set()
        thread.join()
    out = capsys.readouterr().out
    assert "outbox events" in out and "rsync" in out
    backup = sqlite3.connect(tmp_path / "b.db")
    assert backup.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    n = backup.execute("SELECT COUNT(*) FROM crossings").fetchone()[0]
    assert 50 <= n <= written[0]
    assert backup.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == n  # each verdict with its event
    assert backup.execute("PRAGMA journal_mode").fetchone()[0] == "delete"  # one self-contained file
    backup.close()
    assert written[0] > n or written[0] == n  # the writer was not blocked from finishing
    store.close()

    assert main(["store", "restore", "--config", str(config(tmp_path)), "--from", str(tmp_path / "b.db")]) == 0
    restored = Store(tmp_path / "gate.db", tmp_path / "evidence")
    assert sum(restored.counts().values()) == n and restored.integrity_check() == "ok"
    restored.close()
    aside = sorted(tmp_path.glob("gate.db.before-restore-*"))
    assert aside and aside[0].name.endswith(tuple("0123456789"))  # the replaced database is kept, not deleted
    old = sqlite3.connect(aside[0])
    assert old.execute("SELECT COUNT(*) FROM crossings").fetchone()[0] == written[0]
    old.close()


def test_restore_refuses_a_bad_backup_and_a_running_appliance(tmp_path: Path) -> None:
    db = tmp_path / "gate.db"
    store = Store(db, tmp_path / "evidence")
    store.save_crossing(crossing(1), Verdict("CLEAR", (), None))
    not_sqlite = tmp_path / "junk.db"
    not_sqlite.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match=r"junk\.db: not a readable SQLite database"):
        restore_store(not_sqlite, db)
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.close()
    with pytest.raises(StoreError, match="not an appliance store"):
        restore_store(other, db)
    backup_store(db, tmp_path / "good.db")
    with pytest.raises(StoreError, match="already exists"):
        backup_store(db, tmp_path / "good.db")
    with RunLock(db).acquire("test: a running appliance"), pytest.raises(StoreError, match="the store is in use"):
        restore_store(tmp_path / "good.db", db)
    assert sum(store.counts().values()) == 1 and not list(tmp_path.glob("gate.db.before-restore-*"))
    store.close()
