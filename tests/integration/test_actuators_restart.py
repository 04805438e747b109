"""A SIGKILL of the appliance mid-crossing: the barrier is open (on a real pymodbus device) when the process
dies; the next start drives it closed and raises the restart_mid_crossing alarm, audited and in the outbox.

The appliance side runs in a real subprocess (this file run as a script), killed with a real SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _worker(config_path: str, mode: str) -> None:
    """Run one lane's actuators from the config; ``open``: act on a CLEAR verdict for crossing c1."""
    sys.path.insert(0, str(ROOT))
    from appliance.actuators.setup import build_lane_actuators
    from appliance.config import load_config
    from appliance.store.db import Store
    from tests.integration.test_actuators import crossing, verdict

    cfg = load_config(Path(config_path))
    store = Store(cfg.storage.path, cfg.storage.evidence_dir)
    lane = build_lane_actuators(cfg, cfg.lanes[0], store)
    lane.start()
    if mode == "open":
        lane.controller.on_crossing(crossing("c1", 100.0), verdict("CLEAR"))
    signal.signal(signal.SIGTERM, lambda *_: (lane.stop(), store.close(), sys.exit(0)))
    print("ready", flush=True)
    while True:
        time.sleep(1)


def _state(db: Path) -> str | None:
    """The lane's cycle state as the running appliance wrote it (None before its store exists)."""
    if not db.exists():
        return None
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            row = conn.execute("SELECT state FROM actuator_state").fetchone()
    except sqlite3.OperationalError:  # still migrating
        return None
    return None if row is None else str(row[0])


def test_sigkill_mid_crossing_leaves_the_barrier_closed_and_alarms(tmp_path: Path) -> None:
    from appliance.sim.modbus_device import SimModbusDevice
    from appliance.store.db import Store
    from tests.integration.mosquitto import free_port, wait_until
    from tests.integration.test_actuators import lane_config

    device = SimModbusDevice(free_port(), travel_s=0.05).start()
    cfg = lane_config(tmp_path, device.port, loops=False, pass_timeout_s=120)
    path = tmp_path / "lane.yaml"
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs: list[subprocess.Popen[bytes]] = []

    def spawn(mode: str) -> subprocess.Popen[bytes]:
        p = subprocess.Popen([sys.executable, __file__, str(path), mode], env=env, cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        procs.append(p)
        return p

    try:
        first = spawn("open")
        wait_until(lambda: device.position == "open" and _state(cfg.storage.path) == "open", 20,
                   "the first run to open the barrier")
        first.send_signal(signal.SIGKILL)
        assert first.wait(10) == -signal.SIGKILL
        time.sleep(0.2)
        assert device.position == "open"  # killed mid-crossing: nothing closed it
        second = spawn("restart")
        wait_until(lambda: device.position == "closed", 20, "the restarted appliance to close the barrier")
        assert second.stdout is not None and second.stdout.readline().strip() == b"ready"
        second.send_signal(signal.SIGTERM)
        assert second.wait(10) == 0
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(5)
        device.stop()
    assert device.events("command:") == ["command:close", "command:open", "command:close"]
    store = Store(cfg.storage.path, cfg.storage.evidence_dir)
    try:
        alarms = store.query("SELECT crossing_id, code, detail_json FROM actuator_log WHERE record = 'alarm'")
        assert [(a["crossing_id"], a["code"]) for a in alarms] == [("c1", "restart_mid_crossing")]
        assert json.loads(alarms[0]["detail_json"]) == {"state_found": "open"}
        assert store.query("SELECT state FROM actuator_state")[0]["state"] == "idle"
        events = [json.loads(r["payload"]) for r in store.query("SELECT payload FROM outbox ORDER BY id")]
        alarm_events = [e for e in events if e["type"] == "vn.smartgate.actuator.alarm.v1"]
        assert [(e["subject"], e["data"]["code"]) for e in alarm_events] == [("c1", "restart_mid_crossing")]
    finally:
        store.close()


if __name__ == "__main__":
    _worker(sys.argv[1], sys.argv[2])
