"""A simulated IGV fleet-management system on a real MQTT broker.

It publishes arrival telemetry (``arrive``) the way a fleet system reports an IGV at a lane's stop line,
and answers the appliance's release/hold commands with acknowledgements (docs/ACTUATORS.md has the
messages). ``mode`` switches the acknowledgements for fault tests: ``ok`` (acknowledge each command
once), ``silent`` (never: a lost acknowledgement), ``refuse``, ``duplicate`` (acknowledge twice),
``stale`` (acknowledge with the previous command's id: out of order).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion


@dataclass(frozen=True)
class ReceivedCommand:
    ts: float  # time.monotonic() on receipt
    command: dict[str, Any]


class SimFleet:
    def __init__(self, host: str, port: int, gate: str, lane: str, mode: str = "ok", ack_delay_s: float = 0.0):
        self.gate, self.lane = gate, lane
        self.command_topic = f"fleet/{gate}/{lane}/commands"
        self.ack_topic = f"fleet/{gate}/{lane}/acks"
        self.arrival_topic = f"fleet/{gate}/{lane}/arrivals"
        self.mode, self.ack_delay_s = mode, ack_delay_s
        self.commands: list[ReceivedCommand] = []
        self._lock = threading.Lock()
        self._received = threading.Condition(self._lock)
        self._subscribed = threading.Event()
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"sim-fleet-{gate}-{lane}-{id(self)}",
                                   clean_session=True, protocol=mqtt.MQTTv311)
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = lambda *a, **k: self._subscribed.set()
        self._client.on_message = self._on_message
        self._host, self._port = host, port

    def start(self, timeout_s: float = 10.0) -> SimFleet:
        self._client.connect(self._host, self._port, keepalive=15)
        self._client.loop_start()
        if not self._subscribed.wait(timeout_s):
            raise RuntimeError(f"simulated fleet: no subscription on {self._host}:{self._port}")
        return self

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def arrive(self, fleet_id: str, containers: list[str], trip_id: str | None = None,
               position: tuple[float, float] = (22.5036, 103.9612)) -> float:
        """Publish an IGV's arrival (QoS 1); returns time.monotonic() just before the publish."""
        payload = {"fleet_id": fleet_id, "containers": containers, "trip_id": trip_id,
                   "position": {"lat": position[0], "lon": position[1]}, "ts": time.time()}
        return self.publish_raw(json.dumps(payload).encode())

    def publish_raw(self, payload: bytes, topic: str | None = None) -> float:
        started = time.monotonic()
        self._client.publish(topic or self.arrival_topic, payload, qos=1).wait_for_publish(5)
        return started

    def wait_commands(self, count: int, timeout_s: float) -> list[ReceivedCommand]:
        with self._received:
            self._received.wait_for(lambda: len(self.commands) >= count, timeout_s)
            return list(self.commands)

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: object, reason: object,
                    properties: object = None) -> None:
        client.subscribe(self.command_topic, qos=1)

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        command = json.loads(msg.payload)
        with self._received:
            previous = self.commands[-1].command if self.commands else None
            self.commands.append(ReceivedCommand(time.monotonic(), command))
            self._received.notify_all()
        if self.mode == "silent":
            return
        if self.ack_delay_s:
            time.sleep(self.ack_delay_s)
        command_id = command["command_id"]
        if self.mode == "stale":
            command_id = previous["command_id"] if previous is not None else "no-such-command"
        ack = {"command_id": command_id, "status": "refused" if self.mode == "refuse" else "ok",
               "fleet_id": command.get("fleet_id")}
        for _ in range(2 if self.mode == "duplicate" else 1):
            client.publish(self.ack_topic, json.dumps(ack).encode(), qos=1)
