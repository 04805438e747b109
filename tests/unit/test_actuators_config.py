"""The actuators: config section, the IGV join rules and the fleet telemetry parser (no devices needed)."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest

from appliance.actuators.base import ActuatorFault
from appliance.actuators.board import MESSAGES
from appliance.actuators.fleet import ReceivedArrival, parse_arrival
from appliance.actuators.join import IgvJoin
from appliance.config import parse_config
from appliance.errors import ConfigError
from appliance.lanes.crossing import Crossing, FieldResult
from appliance.verdicts.rules import Reason, Verdict

BOX1, BOX2 = "MWCU6059784", "CSQU3054383"

BASE = """\
site: {gate: VNLCA, box_id: b1}
lanes:
  - id: igv1
    sources: [{id: k, role: kiosk, type: folder, path: /tmp}]
    actuators:
"""


def test_a_lane_config_with_every_actuator_parses() -> None:
    cfg = parse_config(BASE + """\
      barrier: {type: modbus, device: {host: 10.0.0.5}, ack_timeout_s: 2}
      signal: {type: modbus, device: {host: 10.0.0.5}}
      loops: {type: modbus, device: {host: 10.0.0.5}}
      board: {type: mqtt}
      fleet: {ack_timeout_s: 1.5}
      mqtt: {host: broker.local}
""")
    act = cfg.lanes[0].actuators
    assert act is not None and act.barrier.type == "modbus" and act.fleet is not None
    assert act.fleet.ack_timeout_s == 1.5 and act.barrier.device.port == 502  # type: ignore[union-attr]


@pytest.mark.parametrize(("section", "message"), [
    ("      barrier: {type: modbus, device: {host: h}}\n      fleet: {}\n", "need an mqtt: broker"),
    ("      barrier: {type: modbus, device: {host: h}, open_coil: 3}\n", "open_coil: unknown key"),
    ("      barrier: {type: modbus, device: {host: h, port: 70000}}\n", "port"),
    ("      barrier: {type: relay}\n", "barrier"),
])
def test_bad_actuator_config_says_what_and_where(section: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(BASE + section, where="lane.yaml")
    text = str(err.value)
    assert message in text and "lanes.0.actuators" in text and "lane.yaml:" in text


def test_gpio_barrier_without_gpiod_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_gpiod(name: str, *args: object, **kwargs: object) -> object:
        if name == "gpiod" or name.startswith("gpiod."):
            raise ImportError("No module named 'gpiod'")
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", no_gpiod)  # a mock: this machine has no gpiod to uninstall
    from appliance.actuators.gpio import import_gpiod

    with pytest.raises(ActuatorFault) as err:
        import_gpiod()
    assert err.value.code == "missing_backend" and "gpiod" in str(err.value) and "Modbus" in str(err.value)


def _arrival(fleet_id: str, containers: tuple[str, ...], age_s: float = 0.0) -> ReceivedArrival:
    a = parse_arrival(json.dumps({"fleet_id": fleet_id, "containers": list(containers), "ts": 1.0}).encode())
    return ReceivedArrival(a, time.time() - age_s, time.monotonic() - age_s)


def _crossing(containers: tuple[str, ...], plate: str | None = None, painted: str | None = None) -> Crossing:
    return Crossing("c", "igv1", 0.0, 1.0, tractor_plate=FieldResult(plate, 0.9, 3) if plate else None,
                    fleet_id=FieldResult(painted, 0.9, 3) if painted else None,
                    containers=tuple(FieldResult(c, 0.95, 3) for c in containers))


@pytest.mark.parametrize(("telemetry", "cameras", "painted", "codes"), [
    ((BOX1,), (BOX1,), None, []),
    ((BOX1,), (BOX1,), "IGV-07", []),
    ((BOX1,), (BOX2,), None, ["igv_container_mismatch", "igv_container_unread"]),
    ((BOX1, BOX2), (BOX1,), None, ["igv_container_unread"]),
    ((BOX1,), (BOX1,), "IGV-09", ["igv_fleet_id_mismatch"]),
])
def test_join_checks_the_fleet_against_the_cameras(telemetry: tuple[str, ...], cameras: tuple[str, ...],
                                                   painted: str | None, codes: list[str]) -> None:
    join = IgvJoin(window_s=60)
    join.add(_arrival("IGV-07", telemetry))
    joined = join.join(_crossing(cameras, painted=painted))
    assert joined is not None and joined.crossing.fleet_id is not None
    assert joined.crossing.fleet_id.value == "IGV-07" and joined.crossing.fleet_id.method == "fleet"
    assert [r.code for r in joined.reasons] == codes
    clear = Verdict("CLEAR", (), "100000000001")
    assert joined.adjust(clear).decision == ("CLEAR" if not codes else
                                            "HOLD" if any("mismatch" in c for c in codes) else "REVIEW")


def test_join_never_makes_a_verdict_less_severe_and_skips_plated_vehicles() -> None:
    join = IgvJoin(window_s=60)
    join.add(_arrival("IGV-07", (BOX1,)))
    assert join.join(_crossing((BOX1,), plate="24C-123.45")) is None  # a truck: the arrival waits
    joined = join.join(_crossing((BOX1,)))
    assert joined is not None
    held = Verdict("HOLD", (Reason("seal_missing", "HOLD"),), None)
    assert joined.adjust(held) == held


def test_stale_or_missing_arrivals_do_not_join() -> None:
    join = IgvJoin(window_s=10)
    join.add(_arrival("IGV-07", (BOX1,), age_s=30))
    missing = join.join(_crossing((BOX1,), painted="IGV-07"))
    assert missing is not None and [r.code for r in missing.reasons] == ["igv_arrival_missing"]
    assert missing.adjust(Verdict("CLEAR", (), None)).decision == "REVIEW"
    assert join.join(_crossing((BOX1,))) is None


@pytest.mark.parametrize(("payload", "message"), [
    (b"\xff\xfe", "not valid JSON"),
    (b"[1]", "<root>"),
    (json.dumps({"fleet_id": "igv 7", "ts": 1}).encode(), "fleet_id"),
    (json.dumps({"fleet_id": "IGV-07", "ts": 1, "containers": ["MWCU6059785"]}).encode(), "check digit"),
    (json.dumps({"fleet_id": "IGV-07", "ts": 1, "speed": 3}).encode(), "speed"),
    (json.dumps({"fleet_id": "IGV-07"}).encode(), "ts"),
])
def test_bad_telemetry_is_rejected_with_the_reason(payload: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_arrival(payload)


def test_board_messages_are_trilingual() -> None:
    for texts in MESSAGES.values():
        assert set(texts) == {"vi", "zh", "en"} and all(texts.values())
    assert any(ord(ch) > 0x4E00 for ch in MESSAGES["stop"]["zh"])


def test_actuator_events_are_signed_and_match_their_schemas(tmp_path: Path) -> None:
    import jsonschema
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from appliance.actuators.audit import ActuatorAudit, ActuatorEventBuilder
    from appliance.publish.events import verify_event
    from appliance.store.db import Store

    key = Ed25519PrivateKey.generate()
    store = Store(tmp_path / "a.db", tmp_path / "ev")
    try:
        audit = ActuatorAudit(store, "igv1", ActuatorEventBuilder("VNLCA", "b1", key))
        audit.write("command", "barrier", "open", 1, "c1", None, {"command_id": "x"}, state={"last_seq": 1})
        audit.write("alarm", "controller", "alarm", 1, "c1", "no_ack", {"message": "m"})
        events = [json.loads(r["payload"]) for r in store.query("SELECT payload FROM outbox ORDER BY id")]
        assert audit.load_state().last_seq == 1
        with pytest.raises(sqlite3.IntegrityError, match="append-only"), store.transaction() as conn:
            conn.execute("DELETE FROM actuator_log")
    finally:
        store.close()
    root = Path(__file__).resolve().parents[2] / "docs" / "schemas"
    for event, kind in zip(events, ("command", "alarm"), strict=True):
        verify_event(event, key.public_key())
        schema = json.loads((root / f"actuator-{kind}-event.v1.json").read_text())
        jsonschema.validate(event, schema, format_checker=jsonschema.FormatChecker())
        broken = {**event, "data": {**event["data"], "record": "alarm" if kind == "command" else "command"}}
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(broken, schema)


def test_config_error_names_the_yaml_line_inside_the_barrier() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(BASE + "      barrier:\n        type: modbus\n        device: {host: h}\n        open_coil: 3\n",
                     where="lane.yaml")
    assert "lane.yaml:9: lanes.0.actuators.barrier.open_coil: unknown key" in str(err.value)
