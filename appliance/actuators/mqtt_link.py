"""The lane's MQTT connection for the fleet link and the message board.

``clean_session=True`` on purpose: a release command must never sit in a broker queue while the box is
away and reach an IGV minutes later. A command published while disconnected is a fault (the controller
keeps the barrier closed), not a queued message; commands also carry ``expires_at`` for the fleet.
"""

from __future__ import annotations

import logging
import ssl
import threading
from collections.abc import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from appliance.actuators.base import ActuatorFault
from appliance.actuators.config import ActuatorMqttConfig
from appliance.errors import ConfigError

log = logging.getLogger(__name__)

Handler = Callable[[str, bytes], None]


class MqttLink:
    def __init__(self, cfg: ActuatorMqttConfig, client_id: str):
        self.cfg = cfg
        self.where = f"mqtt://{cfg.host}:{cfg.port}"
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=cfg.client_id or client_id,
                                   clean_session=True, protocol=mqtt.MQTTv311)
        self._client.reconnect_delay_set(min_delay=1, max_delay=10)
        if cfg.username is not None:
            password = None
            if cfg.password_file is not None:
                try:
                    password = cfg.password_file.read_text(encoding="utf-8").strip()
                except OSError as exc:
                    raise ConfigError(f"actuators.mqtt.password_file {cfg.password_file}: cannot read: {exc}") from exc
            self._client.username_pw_set(cfg.username, password)
        if cfg.ca_file is not None:
            self._client.tls_set(ca_certs=str(cfg.ca_file), tls_version=ssl.PROTOCOL_TLS_CLIENT)
        self._handlers: dict[str, Handler] = {}
        self._connected = threading.Event()
        self._stopping = False
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message

    def subscribe(self, topic: str, handler: Handler) -> None:
        """Call before ``start``; subscriptions are renewed on every (re)connect."""
        self._handlers[topic] = handler

    def start(self, wait_s: float = 5.0) -> bool:
        self._client.connect_async(self.cfg.host, self.cfg.port, keepalive=self.cfg.keepalive_s)
        self._client.loop_start()
        return self._connected.wait(wait_s)

    def stop(self) -> None:
        self._stopping = True
        self._client.disconnect()
        self._client.loop_stop()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def publish(self, topic: str, payload: bytes, timeout_s: float, retain: bool = False) -> None:
        """QoS 1 publish; returns once the broker acknowledged it (PUBACK), else ActuatorFault."""
        if not self._connected.is_set():
            raise ActuatorFault("unreachable", f"{self.where}: not connected to the broker (topic {topic})")
        info = self._client.publish(topic, payload, qos=1, retain=retain)
        try:
            info.wait_for_publish(timeout_s)
        except (RuntimeError, ValueError) as exc:
            raise ActuatorFault("unreachable", f"{self.where}: publish to {topic} failed: {exc}") from exc
        if not info.is_published():
            raise ActuatorFault("no_ack", f"{self.where}: the broker did not acknowledge {topic} in {timeout_s} s")

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: object, reason: object,
                    properties: object = None) -> None:
        if getattr(reason, "is_failure", False):
            log.warning("actuators: broker %s refused the connection: %s", self.where, reason)
            return
        for topic in self._handlers:
            client.subscribe(topic, qos=1)
        self._connected.set()
        log.info("actuators: connected to %s", self.where)

    def _on_disconnect(self, client: mqtt.Client, userdata: object, flags: object, reason: object,
                       properties: object = None) -> None:
        self._connected.clear()
        if not self._stopping:
            log.warning("actuators: disconnected from %s (%s): releases are refused until it is back",
                        self.where, reason)

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        handler = self._handlers.get(msg.topic)
        if handler is None:
            return
        try:
            handler(msg.topic, bytes(msg.payload))
        except Exception:  # one bad message must not stop the network thread
            log.exception("actuators: handler for %s failed", msg.topic)
