"""Lane actuators end to end with real protocols: a real pymodbus server (appliance/sim/modbus_device.py)
stands in for the barrier, lights and loops, a real Mosquitto carries the fleet link (appliance/sim/fleet.py),
and the store is real SQLite. The SIGKILL case is in test_actuators_restart.py."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from appliance.actuators.setup import LaneActuators, build_lane_actuators
from appliance.config import AppConfig, parse_config
from appliance.lanes.crossing import Crossing, FieldResult
from appliance.lanes.pipeline import LanePipeline
from appliance.publish.decision_events import DecisionEventBuilder
from appliance.sim.fleet import SimFleet
from appliance.sim.modbus_device import SimModbusDevice
from appliance.store.db import Store
from appliance.store.decisions import DecisionRequest, record
from appliance.verdicts.manifest import Manifest, ManifestIndex
from appliance.verdicts.rules import Reason, Verdict
from tests.integration.mosquitto import Broker, free_port, wait_until

GATE, LANE = "VNLCA", "igv1"
BOX1, BOX2 = "MWCU6059784", "CSQU3054383"
ROOT = Path(__file__).resolve().parents[2]


def lane_config(tmp: Path, modbus_port: int, broker_port: int | None = None, *, loops: bool = True,
                ack_timeout_s: float = 2.0, pass_timeout_s: float = 5.0, fleet_ack_s: float = 3.0,
                signal_port: int | None = None) -> AppConfig:
    device = {"host": "127.0.0.1", "port": modbus_port, "timeout_s": 0.5}
    actuators: dict[str, Any] = {
        "barrier": {"type": "modbus", "device": device, "ack_timeout_s": ack_timeout_s},
        "signal": {"type": "modbus", "device": {**device, "port": signal_port or modbus_port}},
        "pass_timeout_s": pass_timeout_s,
        "approval_poll_s": 0.05,
    }
    if loops:
        actuators["loops"] = {"type": "modbus", "device": device, "poll_s": 0.02}
    if broker_port is not None:
        actuators["mqtt"] = {"host": "127.0.0.1", "port": broker_port}
        actuators["fleet"] = {"ack_timeout_s": fleet_ack_s}
        actuators["board"] = {"type": "mqtt"}
    (tmp / "drop").mkdir(exist_ok=True)
    data = {"site": {"gate": GATE, "box_id": "box1"},
            "lanes": [{"id": LANE, "sources": [{"id": "kiosk", "role": "kiosk", "type": "folder",
                                                "path": str(tmp / "drop")}], "actuators": actuators}],
            "storage": {"path": str(tmp / "a.db"), "evidence_dir": str(tmp / "ev")}}
    return parse_config(yaml.safe_dump(data), base=tmp)


def crossing(cid: str, ended_at: float, containers: tuple[str, ...] = (), plate: str | None = "24C-123.45",
             fleet_id: str | None = None) -> Crossing:
    return Crossing(cid, LANE, ended_at - 5, ended_at,
                    tractor_plate=FieldResult(plate, 0.95, 3) if plate else None,
                    fleet_id=FieldResult(fleet_id, 0.9, 3) if fleet_id else None,
                    containers=tuple(FieldResult(c, 0.95, 3) for c in containers))


def verdict(decision: str) -> Verdict:
    reasons = () if decision == "CLEAR" else (Reason("seal_unread", "REVIEW" if decision == "REVIEW" else "HOLD"),)
    return Verdict(decision, reasons, "100000000001")  # type: ignore[arg-type]


@pytest.fixture
def device() -> Iterator[SimModbusDevice]:
    dev = SimModbusDevice(free_port(), travel_s=0.05).start()
    yield dev
    dev.stop()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "a.db", tmp_path / "ev")
    yield s
    s.close()


def started(cfg: AppConfig, store: Store) -> LaneActuators:
    lane = build_lane_actuators(cfg, cfg.lanes[0], store)
    lane.start()
    return lane


def audit(store: Store, record_kind: str | None = None) -> list[dict[str, Any]]:
    rows = store.query("SELECT * FROM actuator_log ORDER BY id")
    return [dict(r) for r in rows if record_kind is None or r["record"] == record_kind]


def alarms(store: Store) -> list[str]:
    return [r["code"] for r in audit(store, "alarm")]


SCHEMAS = {f"vn.smartgate.actuator.{kind}.v1": json.loads((ROOT / f"docs/schemas/actuator-{kind}-event.v1.json")
                                                          .read_text()) for kind in ("command", "alarm")}


def outbox_types(store: Store) -> list[str]:
    """The outbox's event types; every actuator event checked against its JSON schema on the way."""
    import jsonschema

    events = [json.loads(r["payload"]) for r in store.query("SELECT payload FROM outbox ORDER BY id")]
    for event in events:
        jsonschema.validate(event, SCHEMAS[event["type"]], format_checker=jsonschema.FormatChecker())
    return [e["type"] for e in events]


def test_clear_opens_then_closes_the_barrier_in_order(tmp_path: Path, device: SimModbusDevice, store: Store) -> None:
    lane = started(lane_config(tmp_path, device.port), store)
    try:
        lane.controller.on_crossing(crossing("c1", 100.0), verdict("CLEAR"))
        wait_until(lambda: device.position == "open", 5, "the barrier to open")
        wait_until(lambda: device.lights == (True, False), 5, "green")
        device.vehicle_passes()
        wait_until(lambda: device.position == "closed", 5, "the barrier to close after the vehicle passed")
        assert lane.controller.wait_idle(5)
    finally:
        lane.stop()
    # startup close, then open (acknowledged by the limit switch) before close, close after the exit loop
    assert device.events("command:") == ["command:close", "command:open", "command:close"]
    events = device.events("command:") + device.events("position:")
    assert events.count("position:open") == 1
    opened, closed = device.first("position:open"), [e for e in device.history if e.what.startswith("position:")][-1]
    assert opened is not None and closed.what == "position:closed" and closed.ts > opened
    assert device.lights == (False, True)
    assert alarms(store) == []
    cmds = [(r["actuator"], r["action"]) for r in audit(store, "command") if r["crossing_id"] == "c1"]
    assert cmds == [("barrier", "open"), ("signal", "green"), ("barrier", "close"), ("signal", "red")]
    acks = [(r["actuator"], r["action"]) for r in audit(store, "ack") if r["crossing_id"] == "c1"]
    assert acks == cmds
    seqs = [r["seq"] for r in audit(store, "command")]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert outbox_types(store).count("vn.smartgate.actuator.command.v1") == len(audit(store)) - len(alarms(store))
    assert store.query("SELECT state FROM actuator_state")[0]["state"] == "idle"


def test_review_and_hold_never_open_the_barrier(tmp_path: Path, device: SimModbusDevice, store: Store) -> None:
    lane = started(lane_config(tmp_path, device.port), store)
    try:
        lane.controller.on_crossing(crossing("r1", 100.0), verdict("REVIEW"))
        lane.controller.on_crossing(crossing("h1", 110.0), verdict("HOLD"))
        assert lane.controller.wait_idle(5)
        time.sleep(0.2)
    finally:
        lane.stop()
    assert "command:open" not in device.events("command:")
    assert device.position == "closed" and device.lights == (False, True)
    assert [r["action"] for r in audit(store, "command") if r["actuator"] == "barrier" and r["crossing_id"]] == \
        ["close", "close"]
    assert alarms(store) == []


def test_inspector_approval_opens_only_the_held_crossing(tmp_path: Path, device: SimModbusDevice, store: Store) -> None:
    lane = started(lane_config(tmp_path, device.port), store)
    events = DecisionEventBuilder(GATE)
    try:
        for cid, ended in (("h1", 100.0), ("h2", 110.0)):
            c, v = crossing(cid, ended), verdict("HOLD")
            store.save_crossing(c, v)
            lane.controller.on_crossing(c, v)
        assert lane.controller.wait_idle(5)
        # h1 is no longer the vehicle at the barrier (h2 is): approving it must not open
        record(store, "h1", "insp", "inspector", DecisionRequest("approve", "documents checked"), events)
        time.sleep(0.3)
        assert "command:open" not in device.events("command:")
        record(store, "h2", "insp", "inspector", DecisionRequest("approve", "seal verified by hand"), events)
        wait_until(lambda: device.position == "open", 5, "the barrier to open on the approval")
        device.vehicle_passes()
        wait_until(lambda: device.position == "closed", 5, "the barrier to close")
    finally:
        lane.stop()
    notes = {(r["action"], r["crossing_id"], r["code"]) for r in audit(store, "note")}
    assert ("approval_ignored", "h1", "not_latest_crossing") in notes and ("approval", "h2", "approve") in notes
    assert alarms(store) == []


def test_unreachable_barrier_stays_closed_and_alarms(tmp_path: Path, store: Store) -> None:
    port = free_port()
    cfg = lane_config(tmp_path, port, loops=False)  # nothing listens there
    lane = started(cfg, store)
    try:
        lane.controller.on_crossing(crossing("c1", 100.0), verdict("CLEAR"))
        assert lane.controller.wait_idle(5)
    finally:
        lane.stop()
    assert alarms(store) == ["close_failed", "unreachable", "close_failed"]  # start-up close, then the CLEAR
    assert not [r for r in audit(store, "command") if r["action"] == "open"]  # never even tried to open
    assert "vn.smartgate.actuator.alarm.v1" in outbox_types(store)
    assert store.query("SELECT state FROM actuator_state")[0]["state"] == "fault"
    # The device comes back; the next start finds the unconfirmed close, alarms and closes it for sure.
    device = SimModbusDevice(port, travel_s=0.05).start()
    try:
        lane = started(cfg, store)
        lane.stop()
    finally:
        device.stop()
    assert alarms(store)[-1] == "restart_after_fault" and device.events("command:") == ["command:close"]
    assert store.query("SELECT state FROM actuator_state")[0]["state"] == "idle"


def test_unreachable_signal_mid_cycle_closes_the_open_barrier(tmp_path: Path, device: SimModbusDevice,
                                                              store: Store) -> None:
    lane = started(lane_config(tmp_path, device.port, signal_port=free_port()), store)  # lights: nobody there
    try:
        lane.controller.on_crossing(crossing("c1", 100.0), verdict("CLEAR"))
        wait_until(lambda: "unreachable" in alarms(store), 5, "the alarm for the unreachable lights")
        wait_until(lambda: device.position == "closed", 5, "the barrier to close again")
        assert lane.controller.wait_idle(5)
    finally:
        lane.stop()
    assert device.events("command:") == ["command:close", "command:open", "command:close"]
    assert device.first("position:open") is not None  # it had opened: the fault closed it
    assert next((r["actuator"], r["action"], r["code"]) for r in audit(store, "fault") if r["crossing_id"] == "c1") \
        == ("signal", "green", "unreachable")
    assert lane.controller.status["state"] == "idle_after_alarm"


def test_barrier_that_never_acknowledges_open_is_closed_and_alarms(tmp_path: Path, device: SimModbusDevice,
                                                                   store: Store) -> None:
    lane = started(lane_config(tmp_path, device.port, ack_timeout_s=0.3), store)
    try:
        device.jam()  # the limit switch never confirms: the acknowledgement is lost
        lane.controller.on_crossing(crossing("c1", 100.0), verdict("CLEAR"))
        wait_until(lambda: "no_ack" in alarms(store), 5, "the no-acknowledgement alarm")
        device.jam(False)
        assert lane.controller.wait_idle(5)
    finally:
        lane.stop()
    faults = [(r["action"], r["code"]) for r in audit(store, "fault")]
    assert faults[0] == ("open", "no_ack")
    assert device.events("command:")[-1] == "command:close"  # the controller's last word is close
    assert device.lights == (False, True)


def test_lost_fleet_acknowledgement_closes_the_barrier(tmp_path: Path, device: SimModbusDevice, store: Store,
                                                        broker: Broker) -> None:
    fleet = SimFleet("127.0.0.1", broker.port, GATE, LANE, mode="silent").start()
    lane = started(lane_config(tmp_path, device.port, broker.port, fleet_ack_s=0.4), store)
    try:
        lane.controller.on_crossing(crossing("c1", 100.0, (BOX1,), plate=None, fleet_id="IGV-07"), verdict("CLEAR"))
        wait_until(lambda: "no_ack" in alarms(store), 5, "the alarm for the lost fleet acknowledgement")
        wait_until(lambda: device.position == "closed", 5, "the barrier to be closed again")
        assert lane.controller.wait_idle(5)
    finally:
        lane.stop()
        fleet.stop()
    actions = [c.command["action"] for c in fleet.commands]
    assert actions[0] == "release" and actions[-1] == "hold"  # released, no ack: held again
    assert "vn.smartgate.actuator.alarm.v1" in outbox_types(store)
    assert device.events("command:") == ["command:close", "command:open", "command:close"]


@pytest.mark.parametrize("mode", ["stale", "duplicate"])
def test_out_of_order_and_duplicate_fleet_acks(tmp_path: Path, device: SimModbusDevice, store: Store,
                                               broker: Broker, mode: str) -> None:
    fleet = SimFleet("127.0.0.1", broker.port, GATE, LANE, mode=mode).start()
    # stale: the release must time out (short); duplicate: it must not, even on a busy machine
    lane = started(lane_config(tmp_path, device.port, broker.port, fleet_ack_s=0.4 if mode == "stale" else 3.0), store)
    try:
        lane.controller.on_crossing(crossing("c1", 100.0, (BOX1,), plate=None, fleet_id="IGV-07"), verdict("CLEAR"))
        if mode == "duplicate":
            wait_until(lambda: device.position == "open", 5, "the barrier to open")
            device.vehicle_passes()
        wait_until(lambda: device.position == "closed" and len(audit(store)) > 8, 5, "the cycle to end")
        assert lane.controller.wait_idle(5)
        wait_until(lambda: mode == "stale" or any(r["code"] == "stray_ack" for r in audit(store, "note")), 5,
                   "the duplicate acknowledgement to be audited")
    finally:
        lane.stop()
        fleet.stop()
    if mode == "stale":  # the ack names another command: it does not count, the release times out
        assert "no_ack" in alarms(store)
    else:  # the first ack counts, the second is audited and changes nothing
        assert alarms(store) == []
    assert device.position == "closed"


def test_duplicated_out_of_order_and_conflicting_verdicts(tmp_path: Path, device: SimModbusDevice,
                                                          store: Store) -> None:
    lane = started(lane_config(tmp_path, device.port), store)
    c = lane.controller
    try:
        c.on_crossing(crossing("c2", 200.0), verdict("CLEAR"))
        wait_until(lambda: device.position == "open", 5, "open")
        c.on_crossing(crossing("c2", 200.0), verdict("CLEAR"))  # duplicated while open: closes
        wait_until(lambda: "duplicate_command" in alarms(store), 5, "duplicate alarm")
        wait_until(lambda: device.position == "closed", 5, "closed after the duplicate")
        c.on_crossing(crossing("c1", 150.0), verdict("CLEAR"))  # older than c2: out of order
        wait_until(lambda: "out_of_order_command" in alarms(store), 5, "out-of-order alarm")
        c.on_crossing(crossing("c3", 300.0), verdict("CLEAR"))
        wait_until(lambda: device.position == "open", 5, "open for c3")
        c.on_crossing(crossing("c4", 310.0), verdict("CLEAR"))  # a second vehicle while c3 is under the barrier
        wait_until(lambda: "conflicting_command" in alarms(store), 5, "conflict alarm")
        wait_until(lambda: device.position == "closed", 5, "closed after the conflict")
        assert c.wait_idle(5)
    finally:
        lane.stop()
    assert alarms(store) == ["duplicate_command", "out_of_order_command", "conflicting_command"]
    assert outbox_types(store).count("vn.smartgate.actuator.alarm.v1") == 3
    assert device.events("command:").count("command:open") == 2  # c2 and c3 only
    assert device.events("command:")[-1] == "command:close"


def _pipeline(cfg: AppConfig, lane: LaneActuators, store: Store, manifest: ManifestIndex) -> LanePipeline:
    """The lane's real pipeline (kiosk-only sources: no readers needed), with the actuators' hook."""
    return LanePipeline(cfg.lanes[0], None, manifest, cfg.verdicts, store,  # type: ignore[arg-type]
                        on_crossing=lane.chain(None), join=lane.join)


def _manifest() -> ManifestIndex:
    return ManifestIndex(Manifest.model_validate({"entries": [
        {"declaration": "100000000001", "fleet_id": "IGV-07", "containers": [{"number": BOX1}]}]}))


@pytest.mark.parametrize(("telemetry", "cameras", "expected"), [
    ((BOX1,), (BOX1,), "CLEAR"),
    ((BOX2,), (BOX1,), "HOLD"),  # the fleet says it carries another box than the cameras read
])
def test_igv_arrival_joins_the_crossing(tmp_path: Path, device: SimModbusDevice, store: Store, broker: Broker,
                                        telemetry: tuple[str, ...], cameras: tuple[str, ...], expected: str) -> None:
    fleet = SimFleet("127.0.0.1", broker.port, GATE, LANE).start()
    cfg = lane_config(tmp_path, device.port, broker.port)
    lane = started(cfg, store)
    pipeline = _pipeline(cfg, lane, store, _manifest())
    try:
        fleet.arrive("IGV-07", list(telemetry), trip_id="t1")
        assert lane.join is not None and lane.join.wait_for("IGV-07", 5)
        _, v = pipeline._finish(crossing("k1", time.time(), cameras, plate=None))
        assert v.decision == expected
        if expected == "CLEAR":
            wait_until(lambda: device.position == "open", 5, "open")
            fleet.wait_commands(1, 5)
            device.vehicle_passes()
        wait_until(lambda: len(fleet.commands) >= 1, 5, "the fleet command")
        assert lane.controller.wait_idle(5)
    finally:
        pipeline.pool.shutdown()
        lane.stop()
        fleet.stop()
    row = store.get_crossing("k1")
    assert row is not None and row.decision == expected and row.summary["fleet_id"]["value"] == "IGV-07"
    action = fleet.commands[0].command
    assert action["fleet_id"] == "IGV-07" and action["action"] == ("release" if expected == "CLEAR" else "hold")
    if expected == "CLEAR":
        released = fleet.commands[0].ts
        opened = device.first("position:open")
        assert opened is not None and opened < released  # the barrier is up before the IGV is told to go
    else:
        assert "command:open" not in device.events("command:")
        assert any(r["code"] == "igv_container_mismatch" for r in row.reasons)
    assert alarms(store) == []


def test_bad_fleet_telemetry_is_dead_lettered(tmp_path: Path, device: SimModbusDevice, store: Store,
                                              broker: Broker) -> None:
    fleet = SimFleet("127.0.0.1", broker.port, GATE, LANE).start()
    lane = started(lane_config(tmp_path, device.port, broker.port), store)
    try:
        fleet.publish_raw(b"{not json")
        fleet.publish_raw(json.dumps({"fleet_id": "IGV-07", "containers": ["MWCU6059785"], "ts": 1}).encode())
        wait_until(lambda: len(store.query("SELECT * FROM dead_letters")) == 2, 5, "two dead letters")
    finally:
        lane.stop()
        fleet.stop()
    reasons = [r["reason"] for r in store.query("SELECT reason FROM dead_letters ORDER BY id")]
    assert "not valid JSON" in reasons[0]
    assert "containers" in reasons[1] and "check digit" in reasons[1] and "MWCU" not in reasons[1]
    assert lane.join is not None and not lane.join.wait_for("IGV-07", 0.1)


def test_start_actuators_closes_every_barrier_and_reports_status(tmp_path: Path, device: SimModbusDevice,
                                                                 store: Store) -> None:
    from appliance.actuators.setup import start_actuators
    from appliance.errors import ConfigError

    device.set_input(1, False)  # the barrier reads "moving" (left half open by hand)
    device.set_input(0, True)
    status: dict[str, object] = {}
    lanes = start_actuators(lane_config(tmp_path, device.port), store, status)
    try:
        assert list(lanes) == [LANE] and device.position == "closed"
        assert status["actuators"] == {LANE: lanes[LANE].controller.status}
        assert lanes[LANE].controller.status["state"] == "idle"
    finally:
        for lane in lanes.values():
            lane.stop()
    cfg = lane_config(tmp_path, device.port)
    passenger = cfg.model_copy(update={"lanes": [cfg.lanes[0].model_copy(update={"kind": "passenger"})]})
    with pytest.raises(ConfigError, match="cargo lanes only"):
        start_actuators(passenger, store, {})
