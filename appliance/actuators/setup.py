"""Builds each lane's actuator controller from the config (``lanes[].actuators``)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from appliance.actuators.audit import ActuatorAudit, ActuatorEventBuilder, dead_letter
from appliance.actuators.base import Actuator, ActuatorFault, Barrier
from appliance.actuators.board import MqttBoard
from appliance.actuators.config import ModbusBarrierConfig, ModbusDevice
from appliance.actuators.controller import LaneController
from appliance.actuators.fleet import FleetLink
from appliance.actuators.join import IgvJoin
from appliance.actuators.modbus import ModbusBarrier, ModbusLink, ModbusLoops, ModbusSignal
from appliance.actuators.mqtt_link import MqttLink
from appliance.config import AppConfig, LaneConfig
from appliance.errors import ConfigError
from appliance.lanes.crossing import Crossing
from appliance.store.db import Store
from appliance.verdicts.rules import Verdict

log = logging.getLogger(__name__)

# How long a stop (end of the sources, SIGTERM) waits for the barrier cycle in progress; well inside systemd's
# TimeoutStopSec (systemd/gate-appliance.service).
DRAIN_S = 15.0


@dataclass
class LaneActuators:
    controller: LaneController
    join: IgvJoin | None
    mqtt: MqttLink | None = None
    links: list[ModbusLink] = field(default_factory=list)

    def start(self) -> None:
        if self.mqtt is not None and not self.mqtt.start():
            log.warning("lane %s: fleet/board broker %s not reachable yet: every release is refused until it is",
                        self.controller.lane_id, self.mqtt.where)
        self.controller.start()

    def chain(self, then: Callable[[Crossing, Verdict], None] | None) -> Callable[[Crossing, Verdict], None]:
        """The pipeline's ``on_crossing``: the controller first (it only enqueues), then ``then``."""
        def on_crossing(crossing: Crossing, verdict: Verdict) -> None:
            self.controller.on_crossing(crossing, verdict)
            if then is not None:
                then(crossing, verdict)

        return on_crossing

    def stop(self, drain_s: float = DRAIN_S) -> None:
        """Let the verdicts already queued and the cycle in progress finish (the vehicle through, the barrier
        closed) for up to ``drain_s``, then stop. A cycle still open after that is left to the next start,
        which drives the barrier closed and raises ``restart_mid_crossing``."""
        if not self.controller.wait_idle(drain_s):
            log.warning("lane %s: actuators stopped with a barrier cycle still open (the next start closes it and "
                        "raises an alarm)", self.controller.lane_id)
        self.controller.stop()
        if self.mqtt is not None:
            self.mqtt.stop()


def build_lane_actuators(config: AppConfig, lane: LaneConfig, store: Store) -> LaneActuators:
    cfg = lane.actuators
    if cfg is None:
        raise ConfigError(f"lane {lane.id}: no actuators: section")
    links: dict[ModbusDevice, ModbusLink] = {}

    def link(device: ModbusDevice) -> ModbusLink:
        if device not in links:
            links[device] = ModbusLink(device)
        return links[device]

    barrier: Barrier
    if isinstance(cfg.barrier, ModbusBarrierConfig):
        barrier = ModbusBarrier(cfg.barrier, link(cfg.barrier.device))
    else:
        from appliance.actuators.gpio import GpioBarrier

        try:
            barrier = GpioBarrier(cfg.barrier)
        except ActuatorFault as exc:
            raise ConfigError(f"lanes.{lane.id}.actuators.barrier: {exc}") from exc
    signal = ModbusSignal(cfg.signal, link(cfg.signal.device)) if cfg.signal is not None else None
    loops = ModbusLoops(cfg.loops, link(cfg.loops.device)) if cfg.loops is not None else None
    audit = ActuatorAudit(store, lane.id, ActuatorEventBuilder.like(store.event_builder, config.site.gate))
    mqtt = None
    if cfg.mqtt is not None:
        mqtt = MqttLink(cfg.mqtt, f"smartgate-{config.site.gate}-{config.site.box_id}-{lane.id}-act")
    board: Actuator | None = None
    if cfg.board is not None and mqtt is not None:
        board = MqttBoard(cfg.board, mqtt, config.site.gate, lane.id)
    join = IgvJoin(cfg.fleet.arrival_window_s) if cfg.fleet is not None else None
    controller = LaneController(lane.id, cfg, audit, barrier, signal=signal, board=board, loops=loops, join=join)
    if cfg.fleet is not None and mqtt is not None:
        def on_bad(topic: str, payload: bytes, reason: str) -> None:
            log.warning("lane %s: fleet message on %s dead-lettered: %s", lane.id, topic, reason)
            dead_letter(store, topic, payload, reason)

        controller.fleet = FleetLink(cfg.fleet, mqtt, config.site.gate, lane.id, on_arrival=controller.on_arrival,
                                     on_bad=on_bad, on_stray_ack=controller.on_stray_ack)
    return LaneActuators(controller, join, mqtt, list(links.values()))


def start_actuators(config: AppConfig, store: Store, status: dict[str, object]) -> dict[str, LaneActuators]:
    """Build and start every lane's actuators (each drives its barrier closed first); lane id -> actuators."""
    started: dict[str, LaneActuators] = {}
    lanes_status: dict[str, object] = {}
    for lane in config.lanes:
        if lane.actuators is None:
            continue
        if lane.kind != "cargo":
            raise ConfigError(f"lane {lane.id}: actuators: is supported on cargo lanes only (kind: cargo)")
        built = build_lane_actuators(config, lane, store)
        built.start()
        started[lane.id] = built
        lanes_status[lane.id] = built.controller.status
    if started:
        status["actuators"] = lanes_status
    return started
