"""The IGV fleet-management link over MQTT: arrival telemetry in, release/hold commands out, acks back.

Command (appliance -> fleet, QoS 1, on ``command_topic``)::

    {"command_id": "<uuid>", "seq": 17, "action": "release"|"hold", "fleet_id": "IGV-07",
     "crossing_id": "...", "gate": "VNLCA", "lane": "igv1", "issued_at": 1.7e9, "expires_at": 1.7e9}

Acknowledgement (fleet -> appliance, on ``ack_topic``): ``{"command_id": "<uuid>", "status": "ok"|"refused",
"fleet_id": "IGV-07"}``. Only an ack naming a command still waiting counts; a duplicated, late or unknown
ack is reported (``on_stray_ack``) and audited, never taken for another command's.

Arrival telemetry (fleet -> appliance, on ``arrival_topic``): ``Arrival`` below. A message that is not
valid is dead-lettered with the reason (``on_bad``) and logged without its content.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from appliance.actuators.base import FLEET_ACTIONS, Ack, ActuatorFault, Command
from appliance.actuators.config import FleetConfig
from appliance.actuators.mqtt_link import MqttLink
from appliance.analyzers.iso6346 import is_valid as container_is_valid


class Position(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)


class Arrival(BaseModel):
    """An IGV at the lane's stop line: who it is (from the fleet, it has no plate) and what it carries."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    fleet_id: str = Field(pattern=r"^[A-Z0-9][A-Z0-9-]{1,31}$", description="The fleet's vehicle id, e.g. IGV-07.")
    containers: tuple[str, ...] = Field(default=(), max_length=4, description="ISO 6346 numbers it carries.")
    position: Position | None = None
    trip_id: str | None = Field(default=None, max_length=64)
    ts: float = Field(description="Epoch seconds of the telemetry.")

    @field_validator("containers")
    @classmethod
    def _iso6346(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [c for c in value if not container_is_valid(c)]
        if bad:
            raise ValueError(f"{len(bad)} container number(s) fail the ISO 6346 check digit")
        return value


def parse_arrival(payload: bytes) -> Arrival:
    """The arrival, or ValueError saying what is wrong (field names, never the values)."""
    try:
        data = json.loads(payload)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"not valid JSON ({exc.__class__.__name__} at position {getattr(exc, 'pos', '?')})") from exc
    try:
        return Arrival.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in exc.errors())
        raise ValueError(problems) from exc


@dataclass(frozen=True)
class ReceivedArrival:
    arrival: Arrival
    received_at: float  # time.time() on this box
    received_mono: float


class FleetLink:
    name = "fleet"

    def __init__(self, cfg: FleetConfig, link: MqttLink, gate: str, lane: str,
                 on_arrival: Callable[[ReceivedArrival], None],
                 on_bad: Callable[[str, bytes, str], None],
                 on_stray_ack: Callable[[dict[str, Any]], None]):
        self.cfg = cfg
        self.link = link
        self.gate, self.lane = gate, lane
        self.command_topic = cfg.command_topic.format(gate=gate, lane=lane)
        self.ack_topic = cfg.ack_topic.format(gate=gate, lane=lane)
        self.arrival_topic = cfg.arrival_topic.format(gate=gate, lane=lane)
        self._on_arrival, self._on_bad, self._on_stray_ack = on_arrival, on_bad, on_stray_ack
        self._lock = threading.Lock()
        self._waiting: dict[str, tuple[threading.Event, list[dict[str, Any]]]] = {}
        link.subscribe(self.ack_topic, self._ack)
        link.subscribe(self.arrival_topic, self._arrival)

    def command(self, cmd: Command) -> Ack:
        if cmd.action not in FLEET_ACTIONS:
            raise ActuatorFault("rejected", f"fleet: unknown action {cmd.action!r}")
        fleet_id = cmd.args.get("fleet_id")
        if not fleet_id:
            raise ActuatorFault("rejected", f"fleet: {cmd.action} needs the IGV's fleet id")
        now = time.time()
        payload = json.dumps({"command_id": cmd.command_id, "seq": cmd.seq, "action": cmd.action,
                              "fleet_id": fleet_id, "crossing_id": cmd.crossing_id, "gate": self.gate,
                              "lane": self.lane, "issued_at": now, "expires_at": now + self.cfg.ack_timeout_s}).encode()
        done = threading.Event()
        box: list[dict[str, Any]] = []
        with self._lock:
            self._waiting[cmd.command_id] = (done, box)
        try:
            self.link.publish(self.command_topic, payload, self.cfg.ack_timeout_s)
            if not done.wait(self.cfg.ack_timeout_s):
                raise ActuatorFault("no_ack", f"fleet: no acknowledgement of {cmd.action} (seq {cmd.seq}) on "
                                    f"{self.ack_topic} within {self.cfg.ack_timeout_s} s")
        finally:
            with self._lock:
                self._waiting.pop(cmd.command_id, None)
        ack = box[0]
        if ack.get("status") != "ok":
            raise ActuatorFault("rejected", f"fleet refused {cmd.action} (seq {cmd.seq}): status "
                                f"{str(ack.get('status'))[:40]!r}")
        return Ack(self.name, cmd.action, {"status": "ok", "fleet_id": fleet_id})

    def _ack(self, topic: str, payload: bytes) -> None:
        try:
            ack = json.loads(payload)
            command_id = str(ack["command_id"])
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as exc:
            self._on_bad(topic, payload, f"acknowledgement without a command_id ({exc.__class__.__name__})")
            return
        with self._lock:
            waiting = self._waiting.get(command_id)
            if waiting is not None and not waiting[0].is_set():
                waiting[1].append(ack)
                waiting[0].set()
                return
        self._on_stray_ack({"command_id": command_id[:64], "status": str(ack.get("status"))[:40]})

    def _arrival(self, topic: str, payload: bytes) -> None:
        if len(payload) > self.cfg.max_payload_bytes:
            self._on_bad(topic, payload,
                         f"arrival telemetry of {len(payload)} bytes, over {self.cfg.max_payload_bytes}")
            return
        try:
            arrival = parse_arrival(payload)
        except ValueError as exc:
            self._on_bad(topic, payload, f"arrival telemetry rejected: {exc}")
            return
        self._on_arrival(ReceivedArrival(arrival, time.time(), time.monotonic()))

    def close(self) -> None:
        pass
