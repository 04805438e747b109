"""Wire the outbox from the config: the event builder for the store and the publisher's sinks."""

from __future__ import annotations

from pathlib import Path

from appliance.config import AppConfig, HttpSinkConfig, MqttSinkConfig
from appliance.errors import ConfigError
from appliance.publish.events import VerdictEventBuilder, load_signing_key
from appliance.publish.http_sink import HttpSink
from appliance.publish.mqtt_sink import MqttSink
from appliance.publish.publisher import Publisher, RetryPolicy, Sink
from appliance.store.db import Store


def event_builder_from_config(cfg: AppConfig) -> VerdictEventBuilder:
    """Pass the result to ``Store(..., event_builder=...)`` so every verdict lands in the outbox."""
    key = load_signing_key(cfg.publish.signing_key) if cfg.publish.signing_key is not None else None
    return VerdictEventBuilder(cfg.site.gate, cfg.site.box_id, key)


def publisher_from_config(cfg: AppConfig, store: Store) -> Publisher:
    """One sink per configured sink and lane (each lane its own cursor, topic and status topic)."""
    sinks: list[Sink] = []
    policies: dict[str, RetryPolicy] = {}
    for sc in cfg.publish.sinks:
        if isinstance(sc, HttpSinkConfig):
            hmac_key = _read_key_file(sc.hmac_key_file, sc.name, "hmac_key_file") if sc.hmac_key_file else None
            for lane in cfg.lanes:
                name = sc.name if len(cfg.lanes) == 1 else f"{sc.name}.{lane.id}"
                sinks.append(HttpSink(
                    name, sc.url, lane_id=lane.id, ca_file=sc.tls.ca_file if sc.tls else None,
                    cert_file=sc.tls.cert_file if sc.tls else None, key_file=sc.tls.key_file if sc.tls else None,
                    hmac_key=hmac_key, headers=sc.headers,
                ))
                policies[name] = RetryPolicy(batch=sc.batch, ack_timeout_s=sc.ack_timeout_s,
                                             backoff_initial_s=sc.backoff_initial_s, backoff_max_s=sc.backoff_max_s)
            continue
        if not isinstance(sc, MqttSinkConfig):
            raise ConfigError(f"publish.sinks: {sc.name}: sink type {sc.type!r} is not implemented yet")
        password = sc.password_file.read_text(encoding="utf-8").strip() if sc.password_file else None
        for lane in cfg.lanes:
            name = sc.name if len(cfg.lanes) == 1 else f"{sc.name}.{lane.id}"
            client_id = f"{sc.client_id}-{lane.id}" if sc.client_id and len(cfg.lanes) > 1 else sc.client_id
            sinks.append(MqttSink(
                name, sc.host, sc.port, gate=cfg.site.gate, box_id=cfg.site.box_id, lane_id=lane.id,
                client_id=client_id, topic=sc.topic, status_topic=sc.status_topic, keepalive_s=sc.keepalive_s,
                username=sc.username, password=password, tls=sc.tls is not None,
                ca_file=sc.tls.ca_file if sc.tls else None, cert_file=sc.tls.cert_file if sc.tls else None,
                key_file=sc.tls.key_file if sc.tls else None,
            ))
            policies[name] = RetryPolicy(batch=sc.batch, ack_timeout_s=sc.ack_timeout_s,
                                         backoff_initial_s=sc.backoff_initial_s, backoff_max_s=sc.backoff_max_s)
    return Publisher(store, sinks, policies=policies)


def _read_key_file(path: Path, sink: str, field: str) -> bytes:
    """A secret from a file (surrounding whitespace stripped); ConfigError naming the file when unusable."""
    try:
        key = path.read_bytes().strip()
    except FileNotFoundError as exc:
        raise ConfigError(f"publish.sinks: {sink}: {field} {path} not found") from exc
    except OSError as exc:
        raise ConfigError(f"publish.sinks: {sink}: {field} {path} cannot be read: {exc}") from exc
    if not key:
        raise ConfigError(f"publish.sinks: {sink}: {field} {path} is empty")
    return key
