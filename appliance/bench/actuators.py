"""``appliance bench lane --actuators``: how fast the lane acts on its verdicts, over real protocols.

Everything runs on this machine: a private mosquitto, the simulated IGV fleet (appliance/sim/fleet.py)
and the simulated barrier/loops PLC behind a real pymodbus server (appliance/sim/modbus_device.py).
Two figures, each with its target and a baseline measured in the same run on the same devices:

1. verdict -> barrier command: from the start of the pipeline's crossing finish (join + rules + the
   store's crossing transaction + the controller's callback) to the Modbus write of the barrier's
   command coil arriving at the device. Each CLEAR opens the barrier; the simulated vehicle then
   crosses the exit loop and the barrier closes before the next one.
2. IGV arrival -> release: from the fleet's publish of an IGV's arrival telemetry (with a matching
   pre-arrival manifest entry and the cameras reading its container) to the fleet receiving the release
   command: MQTT in, join, verdict, store, barrier open acknowledged by its limit switch, green, board,
   then the release. The simulated barrier takes ``travel_s`` to open (a real one takes 1-6 s: add it).

Baseline: a naive polling controller, the way a PLC script or SCADA tag poll would do it: every
``poll_s`` it reads the crossings table for new CLEAR verdicts and writes the coil / publishes the
release, with no audit, no acknowledgement and no fail-safe.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from appliance.actuators.config import FleetConfig, ModbusDevice
from appliance.actuators.fleet import FleetLink
from appliance.actuators.join import IgvJoin
from appliance.actuators.modbus import ModbusLink
from appliance.actuators.mqtt_link import MqttLink
from appliance.actuators.setup import build_lane_actuators
from appliance.config import AppConfig, parse_config
from appliance.errors import ApplianceError
from appliance.lanes.crossing import Crossing, FieldResult
from appliance.lanes.pipeline import LanePipeline
from appliance.sim.fleet import SimFleet
from appliance.sim.modbus_device import BARRIER_COIL, SimModbusDevice
from appliance.store.db import Store
from appliance.verdicts.manifest import Manifest, ManifestIndex

GATE, LANE = "VNLCA", "igv1"
TARGET_COMMAND_MS, TARGET_RELEASE_MS = 200.0, 2000.0
# Valid ISO 6346 numbers, one per simulated IGV trip (the owner code varies, the check digit holds).
_CONTAINERS = ("MWCU6059784", "CSQU3054383", "TGHU1234567", "MSCU1234566", "TCLU1234568", "OOLU1234567")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pcts(values: list[float]) -> tuple[float, float]:
    if not values:
        return float("nan"), float("nan")
    ordered = sorted(values)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


@dataclass
class ActuatorBench:
    trials: int
    poll_s: float
    travel_s: float
    command_ms: list[float]
    release_ms: list[float]
    baseline_command_ms: list[float]
    baseline_release_ms: list[float]
    alarms: int


def _config(tmp: Path, modbus_port: int, broker_port: int) -> AppConfig:
    device = {"host": "127.0.0.1", "port": modbus_port}
    (tmp / "drop").mkdir(exist_ok=True)
    data = {"site": {"gate": GATE, "box_id": "bench"},
            "lanes": [{"id": LANE, "sources": [{"id": "kiosk", "role": "kiosk", "type": "folder",
                                                "path": str(tmp / "drop")}],
                       "actuators": {"barrier": {"type": "modbus", "device": device},
                                     "signal": {"type": "modbus", "device": device},
                                     "loops": {"type": "modbus", "device": device, "poll_s": 0.02},
                                     "board": {"type": "mqtt"}, "fleet": {},
                                     "mqtt": {"host": "127.0.0.1", "port": broker_port}}}],
            "storage": {"path": str(tmp / "bench.db"), "evidence_dir": str(tmp / "evidence")}}
    return parse_config(yaml.safe_dump(data), base=tmp)


def _manifest(trials: int) -> ManifestIndex:
    entries = [{"declaration": f"1{i:011d}", "fleet_id": f"IGV-{i:03d}",
                "containers": [{"number": _CONTAINERS[i % len(_CONTAINERS)]}]} for i in range(trials)]
    entries += [{"declaration": f"2{i:011d}", "tractor_plate": f"24C-{i:03d}.11"} for i in range(trials)]
    return ManifestIndex(Manifest.model_validate({"entries": entries}))


def _truck(i: int, phase: str) -> Crossing:
    now = time.time()
    return Crossing(f"{phase}-truck-{i}", LANE, now - 5, now, tractor_plate=FieldResult(f"24C-{i:03d}.11", 0.97, 4),
                    declarations=(f"2{i:011d}",))


def _igv(i: int, phase: str) -> Crossing:
    now = time.time()
    return Crossing(f"{phase}-igv-{i}", LANE, now - 5, now,
                    containers=(FieldResult(_CONTAINERS[i % len(_CONTAINERS)], 0.97, 4),))


def _wait(cond: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError(f"bench lane --actuators: timed out waiting for {what}")
        time.sleep(0.002)


def _run_trials(trials: int, device: SimModbusDevice, fleet: SimFleet, join: IgvJoin,
                finish: Callable[[Crossing], Any], after_pass: Callable[[], None], phase: str,
                ) -> tuple[list[float], list[float]]:
    command_ms, release_ms = [], []
    for i in range(trials):
        t0 = time.monotonic()
        finish(_truck(i, phase))
        _wait(lambda: device.first_after("command:open", t0) is not None, 10, "the open command")  # noqa: B023
        command_ms.append((device.first_after("command:open", t0) or t0) * 1000 - t0 * 1000)
        _wait(lambda: device.position == "open", 10, "the barrier open")
        device.vehicle_passes(0.05)
        after_pass()
        _wait(lambda: device.position == "closed", 10, "the barrier closed")
    for i in range(trials):
        seen = len(fleet.commands)
        fleet_id = f"IGV-{i:03d}"
        t0 = fleet.arrive(fleet_id, [_CONTAINERS[i % len(_CONTAINERS)]], trip_id=f"{phase}-{i}")
        if not join.wait_for(fleet_id, 10):
            raise TimeoutError("bench lane --actuators: the arrival telemetry never reached the lane")
        finish(_igv(i, phase))
        got = fleet.wait_commands(seen + 1, 10)
        if len(got) <= seen or got[seen].command["action"] != "release":
            raise TimeoutError(f"bench lane --actuators: no release for {fleet_id} ({phase})")
        release_ms.append((got[seen].ts - t0) * 1000)
        _wait(lambda: device.position == "open", 10, "the barrier open")
        device.vehicle_passes(0.05)
        after_pass()
        _wait(lambda: device.position == "closed", 10, "the barrier closed")
    return command_ms, release_ms


class _NaivePoller:
    """The baseline: polls the crossings table, writes the coil, publishes the release; nothing else."""

    def __init__(self, store: Store, link: ModbusLink, mqtt: MqttLink, command_topic: str, poll_s: float):
        self.store, self.link, self.mqtt, self.topic, self.poll_s = store, link, mqtt, command_topic, poll_s
        self._stop = threading.Event()
        rows = store.query("SELECT COALESCE(MAX(rowid), 0) AS n FROM crossings")
        self._last = int(rows[0]["n"])
        self._thread = threading.Thread(target=self._run, name="naive-poller", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            for r in self.store.query("SELECT rowid, decision, summary_json FROM crossings WHERE rowid > ? "
                                      "ORDER BY rowid", (self._last,)):
                self._last = int(r["rowid"])
                if r["decision"] != "CLEAR":
                    continue
                self.link.write_coil(BARRIER_COIL, True)
                fleet = (json.loads(r["summary_json"]).get("fleet_id") or {}).get("value")
                if fleet:
                    self.mqtt.publish(self.topic, json.dumps({"command_id": f"naive-{self._last}", "action": "release",
                                                              "fleet_id": fleet}).encode(), 2.0)


def bench_actuators(trials: int = 30, poll_s: float = 0.5, travel_s: float = 0.05) -> ActuatorBench:
    from appliance.bench.outbox import _local_broker

    with tempfile.TemporaryDirectory(prefix="bench-actuators-") as tmpdir:
        tmp = Path(tmpdir)
        with _local_broker(tmp) as broker_port:
            device = SimModbusDevice(_free_port(), travel_s=travel_s).start()
            fleet = SimFleet("127.0.0.1", broker_port, GATE, LANE).start()
            cfg = _config(tmp, device.port, broker_port)
            store = Store(cfg.storage.path, cfg.storage.evidence_dir)
            manifest = _manifest(trials)
            try:
                base_cmd, base_rel = _baseline(cfg, store, manifest, device, fleet, trials, poll_s, broker_port)
                lane = build_lane_actuators(cfg, cfg.lanes[0], store)
                lane.start()
                assert lane.join is not None
                pipeline = LanePipeline(cfg.lanes[0], None, manifest, cfg.verdicts, store,  # type: ignore[arg-type]
                                        on_crossing=lane.chain(None), join=lane.join)
                try:
                    cmd, rel = _run_trials(trials, device, fleet, lane.join, pipeline._finish, lambda: None, "ctl")
                finally:
                    pipeline.pool.shutdown()
                    lane.stop()
                alarms = len(store.query("SELECT 1 FROM actuator_log WHERE record = 'alarm'"))
            finally:
                store.close()
                fleet.stop()
                device.stop()
    return ActuatorBench(trials, poll_s, travel_s, cmd, rel, base_cmd, base_rel, alarms)


def _baseline(cfg: AppConfig, store: Store, manifest: ManifestIndex, device: SimModbusDevice, fleet: SimFleet,
              trials: int, poll_s: float, broker_port: int) -> tuple[list[float], list[float]]:
    from appliance.actuators.config import ActuatorMqttConfig

    link = ModbusLink(ModbusDevice(host="127.0.0.1", port=device.port))
    mqtt = MqttLink(ActuatorMqttConfig(host="127.0.0.1", port=broker_port), "bench-naive")
    join = IgvJoin(300.0)
    def bad(topic: str, payload: bytes, reason: str) -> None:
        raise ApplianceError(f"bench lane --actuators: the simulated fleet sent bad telemetry: {reason}")

    FleetLink(FleetConfig(), mqtt, GATE, LANE, on_arrival=join.add, on_bad=bad, on_stray_ack=lambda a: None)
    if not mqtt.start():
        raise TimeoutError("bench lane --actuators: the baseline could not reach the broker")
    poller = _NaivePoller(store, link, mqtt, f"fleet/{GATE}/{LANE}/commands", poll_s)
    poller.start()
    # The same pipeline code path (join + rules + store), without the controller.
    pipeline = LanePipeline(cfg.lanes[0], None, manifest, cfg.verdicts, store, join=join)  # type: ignore[arg-type]
    try:
        return _run_trials(trials, device, fleet, join, pipeline._finish,
                           lambda: link.write_coil(BARRIER_COIL, False), "naive")
    finally:
        pipeline.pool.shutdown()
        poller.stop()
        mqtt.stop()
        link.close()


def format_actuator_bench(r: ActuatorBench) -> str:
    rows = [
        ("verdict -> barrier command", TARGET_COMMAND_MS, r.command_ms, r.baseline_command_ms),
        ("IGV arrival -> release", TARGET_RELEASE_MS, r.release_ms, r.baseline_release_ms),
    ]
    out = [f"appliance bench lane --actuators: {r.trials} trucks + {r.trials} IGVs per controller, real pymodbus "
           f"device (barrier travel {r.travel_s * 1000:.0f} ms) and mosquitto on this machine",
           f"baseline: naive polling controller (every {r.poll_s * 1000:.0f} ms, no audit, no ack, no fail-safe), "
           "measured in the same run",
           "",
           f"{'measure':28} {'target p95':>11} {'p50 ms':>8} {'p95 ms':>8} {'baseline p50':>13} {'baseline p95':>13} "
           f"{'p95 vs baseline':>16} {'meets':>6}"]
    for name, target, values, base in rows:
        p50, p95 = _pcts(values)
        b50, b95 = _pcts(base)
        out.append(f"{name:28} {'< ' + format(target, '.0f'):>11} {p50:8.1f} {p95:8.1f} {b50:13.1f} {b95:13.1f} "
                   f"{(p95 / b95 if b95 else float('nan')):15.2f}x {'yes' if p95 < target else 'NO':>6}")
    out.append(f"alarms raised during the controller's run: {r.alarms} (expected 0)")
    return "\n".join(out)

