"""A paho-mqtt 2.x client set up the way every connection of the box needs it.

MQTT 3.1.1 with a persistent session (``clean_session=False``: the broker keeps QoS 1 messages
for the box while it is away), reconnection with a capped delay, optional user name/password and
TLS (server CA, client certificate for mutual TLS). Used by the verdict sink and by the inbound
subscriber.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion


def persistent_client(
    client_id: str,
    *,
    username: str | None = None,
    password: str | None = None,
    tls: bool = False,
    ca_file: Path | None = None,
    cert_file: Path | None = None,
    key_file: Path | None = None,
    reconnect_max_s: int = 30,
) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False,
                         protocol=mqtt.MQTTv311)
    client.reconnect_delay_set(min_delay=1, max_delay=reconnect_max_s)
    if username is not None:
        client.username_pw_set(username, password)
    if tls or ca_file or cert_file:
        client.tls_set(
            ca_certs=str(ca_file) if ca_file else None,
            certfile=str(cert_file) if cert_file else None,
            keyfile=str(key_file) if key_file else None,
            tls_version=ssl.PROTOCOL_TLS_CLIENT,
        )
    return client
