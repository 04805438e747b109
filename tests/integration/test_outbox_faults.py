"""The outbox under faults: 5,000 crossings while the broker restarts and the appliance is SIGKILLed.

A child process (tests/integration/outbox_worker.py) writes the crossings and runs the real
publisher against a real Mosquitto; this test kills it with SIGKILL at random (seeded) moments,
starts it again, and stops/starts the broker. A persistent-session QoS 1 subscriber verifies the
signature of every event. At the end every event must have arrived at least once, every
duplicate must be byte-identical to the first copy, and nothing may be marked delivered that the
subscriber never got.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives import serialization

from appliance.publish.events import EventError, decode_event, event_id, verify_event
from appliance.store.db import Store
from tests.integration.mosquitto import Broker, wait_until
from tests.integration.outbox_worker import BOX, GATE
from tests.integration.test_outbox import KEY, Central, check_delivery

REPO = Path(__file__).resolve().parents[2]
N = 5000
SEED = int(os.environ.get("OUTBOX_FAULT_SEED", "6346"))


class Collector(Central):
    """``Central`` that records a bad signature instead of raising in paho's thread."""

    def __init__(self, port: int):
        self.rejected: list[str] = []
        super().__init__(port)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        if msg.topic.endswith("/status"):
            self.status[msg.topic] = json.loads(msg.payload)
            return
        try:
            event = decode_event(bytes(msg.payload))
            verify_event(event, KEY.public_key())
        except EventError as exc:
            self.rejected.append(str(exc))
            return
        with self.lock:
            self.received.append((event["id"], bytes(msg.payload)))


class Worker:
    """The appliance process: started, SIGKILLed and started again."""

    def __init__(self, workdir: Path, port: int):
        key = workdir / "signing.pem"
        key.write_bytes(KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
        self.db = workdir / "appliance" / "store.db"
        self.log = workdir / "worker.log"
        self.cmd = [sys.executable, "-m", "tests.integration.outbox_worker", "--db", str(self.db), "--key", str(key),
                    "--port", str(port), "--crossings", str(N), "--rate", "250"]
        self.proc: subprocess.Popen[bytes] | None = None
        self.kills: list[int] = []  # crossings committed at each kill

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(self.cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)

    def kill(self) -> None:
        assert self.proc is not None
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
            self.kills.append(self.committed())

    def committed(self) -> int:
        try:
            conn = sqlite3.connect(self.db, timeout=5)
            try:
                return int(conn.execute("SELECT COUNT(*) FROM crossings").fetchone()[0])
            finally:
                conn.close()
        except sqlite3.OperationalError:  # not created yet
            return 0

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


def missing_report(db: Path, central: Central) -> str:
    """Which events never arrived, and what the store says about them."""
    got = central.ids()
    conn = sqlite3.connect(db)
    rows = conn.execute("SELECT o.id, o.event_id, d.delivered_at, d.attempts, d.last_error FROM outbox o "
                        "JOIN outbox_delivery d ON d.outbox_id = o.id ORDER BY o.id").fetchall()
    conn.close()
    missing = [r for r in rows if r[1] not in got]
    delivered = [r for r in missing if r[2] is not None]
    return (f"{len(missing)} of {len(rows)} events never reached the subscriber, {len(delivered)} of them marked "
            f"delivered; first missing (outbox id, event id, delivered_at, attempts, error): {missing[:5]}")


def test_5000_crossings_survive_broker_restarts_and_sigkill(tmp_path: Path, broker: Broker) -> None:
    rng = random.Random(SEED)
    central = Collector(broker.port)
    worker = Worker(tmp_path, broker.port)
    started = time.monotonic()
    try:
        wait_until(lambda: central.client.is_connected(), 5, "the subscriber to connect")
        central.client.publish("smartgate/probe/probe/status", b'{"state": "probe"}', qos=1)
        wait_until(lambda: "smartgate/probe/probe/status" in central.status, 5, "the subscription")
        worker.start()
        faults = ["kill"] * 8 + ["broker"] * 4 + ["both"] * 2
        rng.shuffle(faults)
        for fault in faults:
            time.sleep(rng.uniform(0.3, 2.5))
            if fault == "kill":  # the appliance dies at a random point, and comes back
                worker.kill()
                time.sleep(rng.uniform(0.0, 0.5))
                worker.start()
            elif fault == "broker":
                broker.stop()
                time.sleep(rng.uniform(0.2, 1.5))
                broker.start()
            else:  # the appliance dies and restarts while the broker is down
                broker.stop()
                time.sleep(rng.uniform(0.1, 0.5))
                worker.kill()
                worker.start()
                time.sleep(rng.uniform(0.2, 1.0))
                broker.start()
        assert worker.proc is not None
        rc = worker.proc.wait(60)
        assert rc == 0, f"the worker failed:\n{worker.tail()}"
        try:
            wait_until(lambda: len(central.ids()) >= N, 30, f"all {N} events at the subscriber")
        except AssertionError:
            raise AssertionError(missing_report(worker.db, central)) from None
    finally:
        if worker.proc is not None and worker.proc.poll() is None:
            worker.proc.kill()
            worker.proc.wait(10)
        central.close()

    assert central.rejected == []
    assert sum(0 < k < N for k in worker.kills) >= 3, f"too few kills while writing: {worker.kills}"
    store = Store(worker.db, worker.db.parent / "evidence")
    try:
        check_delivery(store, central, N)  # duplicates identical, delivered <= received, integrity ok
        assert central.ids() == {event_id(GATE, BOX, f"c{i:05d}") for i in range(N)}
        conn = sqlite3.connect(worker.db)
        total, distinct = conn.execute("SELECT COUNT(*), COUNT(DISTINCT id) FROM crossings").fetchone()
        conn.close()
        assert total == distinct == N
        assert store.outbox_count() == N and store.outbox_status()[0].backlog == 0
    finally:
        store.close()
    duplicates = len(central.received) - N
    restarts = len(faults) - faults.count("kill")
    print(f"\n{len(worker.kills)} SIGKILLs (crossings committed at each: {worker.kills}), {restarts} broker restarts, "
          f"{duplicates} redeliveries, {time.monotonic() - started:.0f} s")
