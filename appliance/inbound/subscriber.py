"""MQTT subscriber (paho-mqtt 2.x) for central's manifests and watchlists.

QoS 1 on a persistent session (``clean_session=False`` and a stable client id): what central
publishes while the box is offline is delivered when it reconnects. paho acknowledges a message
(PUBACK) after ``on_message`` returns, so a message is acknowledged once it was applied or
dead-lettered: a bad message is never redelivered forever, and a crash before that redelivers it
(the handler applies each event id once).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.reasoncodes import ReasonCode

from appliance.publish.mqtt_client import persistent_client

log = logging.getLogger(__name__)

MessageHandler = Callable[[str, bytes], object]


class InboundSubscriber:
    def __init__(
        self,
        handle: MessageHandler,
        host: str,
        port: int,
        *,
        client_id: str,
        topics: Sequence[str],
        keepalive_s: int = 30,
        username: str | None = None,
        password: str | None = None,
        tls: bool = False,
        ca_file: Path | None = None,
        cert_file: Path | None = None,
        key_file: Path | None = None,
        reconnect_max_s: int = 10,
    ):
        self.handle = handle
        self.host, self.port, self.keepalive_s = host, port, keepalive_s
        self.topics = list(topics)
        self._subscribed = threading.Event()
        self.client = persistent_client(
            client_id, username=username, password=password, tls=tls, ca_file=ca_file, cert_file=cert_file,
            key_file=key_file, reconnect_max_s=reconnect_max_s,
        )
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message

    def start(self) -> None:
        self.client.connect_async(self.host, self.port, self.keepalive_s)
        self.client.loop_start()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
        self._subscribed.clear()

    def wait_subscribed(self, timeout: float) -> bool:
        """True once the broker has granted the subscriptions (tests, start-up checks)."""
        return self._subscribed.wait(timeout)

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: ReasonCode, props: Any) -> None:
        if rc.is_failure:
            log.warning("inbound: broker refused the connection: %s", rc)
            return
        log.info("inbound: connected (session present: %s)", getattr(flags, "session_present", None))
        # Subscribing again on every connect is harmless and covers a broker that lost the session.
        client.subscribe([(topic, 1) for topic in self.topics])

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, codes: list[ReasonCode],
                      props: Any) -> None:
        refused = [t for t, c in zip(self.topics, codes, strict=False) if c.is_failure]
        if refused:
            log.error("inbound: the broker refused the subscription to %s", refused)
            return
        log.info("inbound: subscribed to %s", self.topics)
        self._subscribed.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: ReasonCode, props: Any) -> None:
        self._subscribed.clear()
        log.info("inbound: disconnected (%s)", rc)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        try:
            self.handle(message.topic, bytes(message.payload))
        except Exception:  # the handler dead-letters by itself; this only guards the network thread
            log.exception("inbound: handler failed on a message on %s", message.topic)
