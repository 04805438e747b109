"""A crash in the middle of a write (SIGKILL of a real writer process) leaves the store consistent:
integrity check ok, every crossing whole (all its observations) with its outbox event, nothing half-written."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OBSERVATIONS = 300  # per crossing: a long transaction, so the kill lands inside one

WRITER = f"""
import sys
from pathlib import Path
from appliance.lanes.crossing import Crossing
from appliance.reads import BBox, Observation, PlateRead
from appliance.store.db import Store
from appliance.verdicts.rules import Verdict

store = Store(Path(sys.argv[1]), Path(sys.argv[2]), event_builder=lambda c, v: {{"id": "ev-" + c.id, "type": "v"}})
plate = PlateRead("29C-123.45", "VN", "one_line", "yellow", 0.9, BBox(1, 1, 50, 20))
i = 0
while True:
    obs = tuple(Observation("front", 1000.0 + i + k / 1000, plate) for k in range({OBSERVATIONS}))
    store.save_crossing(Crossing(id=f"c-{{i}}", lane_id="cargo-1", started_at=1000.0 + i, ended_at=1001.0 + i,
                                 observations=obs), Verdict("CLEAR", (), None))
    i += 1
"""


def test_sigkill_during_writes_leaves_the_store_consistent(tmp_path: Path) -> None:
    db = tmp_path / "gate.db"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(db), str(tmp_path / "evidence")], cwd=ROOT)
    try:
        deadline = time.monotonic() + 60
        count = 0
        while time.monotonic() < deadline and count < 20 and proc.poll() is None:
            time.sleep(0.1)
            try:
                conn = sqlite3.connect(db, timeout=5)
                count = conn.execute("SELECT COUNT(*) FROM crossings").fetchone()[0]
                conn.close()
            except sqlite3.OperationalError:
                count = 0  # not created yet
        assert count >= 20, "the writer did not get going"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    crossings = conn.execute("SELECT COUNT(*) FROM crossings").fetchone()[0]
    assert crossings >= 20
    partial = conn.execute("SELECT c.id, COUNT(o.id) FROM crossings c LEFT JOIN observations o ON o.crossing_id = c.id "
                           "GROUP BY c.id HAVING COUNT(o.id) <> ?", (OBSERVATIONS,)).fetchall()
    assert partial == [], "a crossing was stored without all of its observations"
    orphans = conn.execute("SELECT COUNT(*) FROM observations WHERE crossing_id NOT IN (SELECT id FROM crossings)")
    assert orphans.fetchone()[0] == 0
    outbox = conn.execute("SELECT COUNT(*), COUNT(DISTINCT crossing_id) FROM outbox").fetchone()
    assert tuple(outbox) == (crossings, crossings), "every stored verdict has exactly one outbox event"
    assert conn.execute("SELECT COUNT(*) FROM outbox WHERE crossing_id NOT IN (SELECT id FROM crossings)"
                        ).fetchone()[0] == 0
    conn.close()
