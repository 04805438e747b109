from __future__ import annotations

from pathlib import Path

import pytest

from appliance.config import MqttSinkConfig, parse_config
from appliance.errors import ConfigError
from appliance.publish.events import write_signing_key
from appliance.publish.setup import event_builder_from_config

BASE = """\
site: {gate: VNHNG, box_id: box-1}
lanes:
  - id: cargo-1
    sources: [{id: front, type: stream, role: front, url: "rtsp://127.0.0.1:8554/f"}]
"""


def test_default_is_no_sinks_and_unsigned() -> None:
    cfg = parse_config(BASE)
    assert cfg.publish.sinks == [] and cfg.publish.signing_key is None
    assert event_builder_from_config(cfg).signing_key is None


def test_mqtt_sink_and_key_paths_resolve(tmp_path: Path) -> None:
    write_signing_key(tmp_path / "keys" / "box.pem")
    text = BASE + """\
publish:
  signing_key: keys/box.pem
  sinks:
    - {name: central, type: mqtt, host: 127.0.0.1, port: 1883, tls: {ca_file: ca.pem}}
"""
    cfg = parse_config(text, base=tmp_path)
    sink = cfg.publish.sinks[0]
    assert isinstance(sink, MqttSinkConfig) and sink.tls is not None and sink.tls.ca_file == tmp_path / "ca.pem"
    assert sink.topic == "smartgate/{gate}/{lane}/verdicts"
    assert event_builder_from_config(cfg).signing_key is not None


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("  sinks: [{name: a, type: mqtt, host: h, qos: 2}]\n", "unknown key"),
        ("  sinks: [{name: a, type: carrier-pigeon, host: h}]\n", "publish.sinks.0"),
        ("  sinks: [{name: a, type: mqtt, host: h}, {name: a, type: http, url: 'https://x'}]\n", "unique"),
    ],
)
def test_bad_publish_sections_are_reported(extra: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(BASE + "publish:\n" + extra)
