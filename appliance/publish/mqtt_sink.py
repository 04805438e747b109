"""MQTT sink (paho-mqtt 2.x): QoS 1, persistent session, PUBACK before an event counts as delivered.

The box's status is a retained message on ``smartgate/<gate>/<lane>/status``: ``online`` when
connected, and ``offline`` as the last will, which the broker publishes if the box vanishes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.reasoncodes import ReasonCode

from appliance.publish.mqtt_client import persistent_client
from appliance.publish.publisher import SendResult
from appliance.store.db import OutboxRow

log = logging.getLogger(__name__)


class MqttSink:
    """One MQTT connection that publishes the events of one lane (or all lanes)."""

    def __init__(
        self,
        name: str,
        host: str,
        port: int,
        *,
        gate: str,
        box_id: str,
        lane_id: str | None,
        client_id: str | None = None,
        topic: str = "smartgate/{gate}/{lane}/verdicts",
        status_topic: str = "smartgate/{gate}/{lane}/status",
        keepalive_s: int = 30,
        username: str | None = None,
        password: str | None = None,
        ca_file: Path | None = None,
        cert_file: Path | None = None,
        key_file: Path | None = None,
        tls: bool = False,
        reconnect_max_s: int = 10,
    ):
        self.name = name
        self.lane_id = lane_id
        self.gate = gate
        self.box_id = box_id
        self._topic = topic
        self.status_topic = status_topic.format(gate=gate, lane=lane_id or box_id, box=box_id)
        self._connected = threading.Event()
        self.client = persistent_client(
            client_id or f"smartgate-{gate}-{box_id}-{name}", username=username, password=password, tls=tls,
            ca_file=ca_file, cert_file=cert_file, key_file=key_file, reconnect_max_s=reconnect_max_s,
        )
        self.client.max_inflight_messages_set(100)
        self.client.max_queued_messages_set(0)
        self.client.will_set(self.status_topic, self._status("offline"), qos=1, retain=True)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.connect_async(host, port, keepalive_s)
        self.client.loop_start()

    def _status(self, state: str) -> bytes:
        return json.dumps({"state": state, "gate": self.gate, "box": self.box_id, "lane": self.lane_id,
                           "ts": time.time()}).encode()

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: ReasonCode, props: Any) -> None:
        if rc.is_failure:
            log.warning("sink %s: broker refused the connection: %s", self.name, rc)
            return
        log.info("sink %s: connected (session present: %s)", self.name, getattr(flags, "session_present", None))
        client.publish(self.status_topic, self._status("online"), qos=1, retain=True)
        self._connected.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: ReasonCode, props: Any) -> None:
        self._connected.clear()
        log.info("sink %s: disconnected (%s)", self.name, rc)

    def topic_for(self, row: OutboxRow) -> str:
        return self._topic.format(gate=self.gate, lane=row.lane_id, box=self.box_id)

    def is_connected(self) -> bool:
        return self._connected.is_set() and self.client.is_connected()

    def send(self, rows: Sequence[OutboxRow], timeout: float) -> SendResult:
        """Publish the batch with QoS 1 and return the ids whose PUBACK arrived within ``timeout``."""
        if not self.is_connected():
            # Do not hand messages to paho while offline: the outbox is the queue, not paho's memory.
            return SendResult([], "not connected to the broker")
        infos: list[tuple[int, mqtt.MQTTMessageInfo]] = []
        error: str | None = None
        for row in rows:
            info = self.client.publish(self.topic_for(row), row.payload, qos=1)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                error = f"publish failed: {mqtt.error_string(info.rc)}"
                infos.append((row.id, info))
                break
            infos.append((row.id, info))
        deadline = time.monotonic() + timeout
        acked: list[int] = []
        for row_id, info in infos:
            try:
                info.wait_for_publish(max(0.0, deadline - time.monotonic()))
            except (RuntimeError, ValueError) as exc:
                error = error or f"publish failed: {exc}"
            if info.is_published():
                acked.append(row_id)
            elif error is None:
                error = f"no PUBACK within {timeout:.1f} s"
        return SendResult(acked, error if len(acked) < len(rows) else None)

    def close(self) -> None:
        if self.is_connected():
            info = self.client.publish(self.status_topic, self._status("offline"), qos=1, retain=True)
            with contextlib.suppress(RuntimeError, ValueError):
                info.wait_for_publish(2.0)
        self.client.disconnect()
        self.client.loop_stop()
