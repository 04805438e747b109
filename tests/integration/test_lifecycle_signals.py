"""SIGHUP reload and SIGTERM drain, on the real appliance (subprocess) replaying a simulated lane in real time.

`assembly.close_after_idle_s` is set longer than the video, so the crossing stays open until something
closes it: only the SIGTERM drain can have stored it before the video ends. Without the drain the
process would die with the crossing in memory and the store would be empty.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from appliance.sim import simulate
from tests.integration.test_watchdog import NotifyListener

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _config(lane_dir: Path, tmp_path: Path, verdicts: str = "") -> str:
    text = (lane_dir / "lane.yaml").read_text(encoding="utf-8")
    text = text.replace("path: ", f"path: {lane_dir}/")
    text = text.replace("file: manifest.json", f"file: {lane_dir}/manifest.json")
    text = text.replace("realtime: false", "realtime: true")
    text = text.replace("  sources:", "  assembly: {close_after_idle_s: 60}\n  sources:")
    return text + (f"storage: {{path: {tmp_path / 'gate.db'}, evidence_dir: {tmp_path / 'evidence'}}}\n"
                   f"health: {{lane_stall_s: 30}}\n{verdicts}")


def _wait_log(log: Path, text: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in log.read_text(encoding="utf-8", errors="replace"):
            return
        time.sleep(0.1)
    raise AssertionError(f"{text!r} not in the log within {timeout} s:\n{log.read_text(errors='replace')[-3000:]}")


def test_sighup_reloads_and_sigterm_drains_the_open_crossing(tmp_path: Path) -> None:
    lane_dir = tmp_path / "sim"
    simulate(lane_dir, 3, seed=5, width=640, height=360, gap_s=6.0, night_share=0.0, mismatch_share=0.0)
    config = tmp_path / "lane.yaml"
    config.write_text(_config(lane_dir, tmp_path), encoding="utf-8")
    listener = NotifyListener(tmp_path / "notify.sock")
    log = tmp_path / "appliance.log"
    env = {**os.environ, "ORT_DISABLE_TELEMETRY": "1", "YOLO_OFFLINE": "1", "NOTIFY_SOCKET": str(listener.path)}
    proc = subprocess.Popen([sys.executable, "-m", "appliance", "run", "--config", str(config), "--no-web"],
                            cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    try:
        listener.wait_for("READY=1", timeout=90)
        ready_at = time.monotonic()
        # A broken config is refused, with the line, and the appliance keeps running on the old one.
        config.write_text(_config(lane_dir, tmp_path, "verdicts: {plate_mismatch: MAYBE}\n"), encoding="utf-8")
        proc.send_signal(signal.SIGHUP)
        _wait_log(log, "config reload refused, the running config stays", 20)
        assert "verdicts.plate_mismatch" in log.read_text(errors="replace")
        # A valid change is applied while the crossing is open.
        config.write_text(_config(lane_dir, tmp_path, "verdicts: {plate_mismatch: REVIEW}\n"), encoding="utf-8")
        proc.send_signal(signal.SIGHUP)
        _wait_log(log, "applied verdicts", 20)
        assert proc.poll() is None
        time.sleep(max(0.0, ready_at + 6.0 - time.monotonic()))  # the first vehicle has passed (t = 1-3 s)
        conn = sqlite3.connect(tmp_path / "gate.db")
        before = conn.execute("SELECT COUNT(*) FROM crossings").fetchone()[0]
        conn.close()
        assert before == 0, "the crossing must still be open when SIGTERM comes"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        listener.close()
    drained_at = time.monotonic()
    conn = sqlite3.connect(tmp_path / "gate.db")
    rows = conn.execute("SELECT id, started_at, ended_at FROM crossings").fetchall()
    outbox = conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
    conn.close()
    assert len(rows) == 1, rows  # the open crossing was closed and stored by the drain
    assert outbox == 1  # its verdict event waits in the outbox, written in the crossing's transaction
    _, started, ended = rows[0]
    truth = json.loads((lane_dir / "truth.json").read_text(encoding="utf-8"))
    assert started < truth["vehicles"][0]["t_exit"]  # it holds the first vehicle
    assert ended < truth["start_time"] + truth["frames"] / truth["fps"] - 2, "stored by the drain, not the video's end"
    assert drained_at - ready_at < 40
    assert "SIGTERM: draining the lanes" in log.read_text(errors="replace")
