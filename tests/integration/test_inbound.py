"""Inbound manifests and watchlists over a real Mosquitto: the subscriber wired from the config."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt.enums import CallbackAPIVersion

from appliance.config import AppConfig, VerdictConfig, parse_config
from appliance.inbound.repo import InboundRepo
from appliance.inbound.setup import load_inbound_state, subscriber_from_config
from appliance.inbound.subscriber import InboundSubscriber
from appliance.inbound.trust import write_public_key
from appliance.lanes.crossing import Crossing, FieldResult
from appliance.publish.events import sign_event
from appliance.store.db import Store
from appliance.verdicts.manifest import ManifestIndex
from appliance.verdicts.rules import decide
from appliance.verdicts.watchlist import WatchlistIndex
from tests.integration.mosquitto import Broker, wait_until

CENTRAL = Ed25519PrivateKey.generate()
INTRUDER = Ed25519PrivateKey.generate()
MT, WT = "smartgate/VNHNG/manifests", "smartgate/VNHNG/watchlists"
DECL = "301234567890"
ENTRY = {"declaration": DECL, "tractor_plate": "12C-123.45", "containers": [{"number": "MWCU6059784"}]}
DOCUMENT = "079123456789"
CFG = VerdictConfig()


def event(id_: str, type_: str, data: dict[str, Any], key: Ed25519PrivateKey | None = CENTRAL) -> bytes:
    ev: dict[str, Any] = {"specversion": "1.0", "id": id_, "source": "smartgate/central", "type": type_,
                          "time": "2026-05-01T08:00:00Z", "data": data}
    return json.dumps(sign_event(ev, key) if key is not None else ev).encode()


def manifest(id_: str, entry: dict[str, Any] = ENTRY, key: Ed25519PrivateKey | None = CENTRAL) -> bytes:
    return event(id_, "vn.smartgate.manifest.v1", {"gate": "VNHNG", "entries": [entry]}, key)


def watchlist(id_: str, *items: dict[str, Any]) -> bytes:
    return event(id_, "vn.smartgate.watchlist.v1", {"gate": "VNHNG", "entries": list(items)})


def crossing(plate: str = "12C-123.45", declaration: str = DECL) -> Crossing:
    return Crossing(id="c00001", lane_id="l1", started_at=1000.0, ended_at=1001.0,
                    tractor_plate=FieldResult(plate, 0.9, 2), containers=(FieldResult("MWCU6059784", 0.95, 2),),
                    declarations=(declaration,))


class Central:
    """Publishes like central does: QoS 1, waiting for the broker's PUBACK."""

    def __init__(self, port: int):
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="central-test")
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def send(self, topic: str, payload: bytes) -> None:
        info = self.client.publish(topic, payload, qos=1)
        info.wait_for_publish(5)
        assert info.is_published()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Box:
    """The box's side: store, indexes and the subscriber built from an inbound config section."""

    def __init__(self, tmp_path: Path, port: int):
        write_public_key(tmp_path / "central.pub.pem", CENTRAL.public_key())
        self.config: AppConfig = parse_config(f"""\
site: {{gate: VNHNG, box_id: box-1}}
lanes:
  - id: l1
    sources: [{{id: front, type: stream, role: front, url: "rtsp://127.0.0.1:8554/f"}}]
storage: {{path: a.db, evidence_dir: ev}}
inbound:
  host: 127.0.0.1
  port: {port}
  trusted_keys: [central.pub.pem]
  max_payload_bytes: 2048
""", base=tmp_path)
        self.status: dict[str, Any] = {}
        self.store = Store(self.config.storage.path, self.config.storage.evidence_dir)
        self.manifest = ManifestIndex()
        self.watchlist: WatchlistIndex = load_inbound_state(self.store, self.manifest)
        self.sub: InboundSubscriber = subscriber_from_config(self.config, self.store, self.manifest, self.watchlist,
                                                             self.status)
        self.sub.start()
        assert self.sub.wait_subscribed(10), "the subscriber never subscribed"

    @property
    def stats(self) -> dict[str, Any]:
        return dict(self.status["inbound"])

    def handled(self) -> int:
        s = self.status["inbound"]
        return int(s["applied"] + s["duplicates"] + s["dead_letters"])

    def close(self) -> None:
        self.sub.stop()
        self.store.close()


@pytest.fixture
def central(broker: Broker) -> Iterator[Central]:
    c = Central(broker.port)
    yield c
    c.close()


def test_good_bad_and_duplicate_messages_over_mqtt(tmp_path: Path, broker: Broker, central: Central) -> None:
    box = Box(tmp_path, broker.port)
    try:
        assert decide(crossing(), box.manifest, CFG, box.watchlist).decision == "HOLD"
        central.send(MT, manifest("m-1"))
        wait_until(lambda: box.stats["applied"] == 1, 10, "the signed manifest to be applied")
        assert decide(crossing(), box.manifest, CFG, box.watchlist).decision == "CLEAR"

        bad = [
            (MT, b'{"specversion": ', "json: "),
            (MT, manifest("m-2", {**ENTRY, "declaration": "123"}), "schema: data.entries.0.declaration: "),
            (MT, b"{" + b" " * 3000 + b"}", "size: 3002 bytes, more than the limit of 2048"),
            (MT, manifest("m-3", key=None), "signature: unsigned"),
            (MT, manifest("m-4", key=INTRUDER), "signature: signed by key"),
            (MT, event("m-5", "vn.smartgate.weather.v1", {"gate": "VNHNG"}), "envelope: type: unknown event type"),
        ]
        for i, (topic, payload, _) in enumerate(bad):
            central.send(topic, payload)
            # the subscriber keeps going: a good message after each bad one is applied
            central.send(MT, manifest(f"ok-{i}", {**ENTRY, "declaration": f"30000000000{i}"}))
        wait_until(lambda: box.handled() == 1 + 2 * len(bad), 10, "every message to be handled")
        assert box.stats["dead_letters"] == len(bad) and box.stats["applied"] == 1 + len(bad)
        reasons = [d.reason for d in reversed(InboundRepo(box.store).dead_letters())]
        for got, (_, _, expected) in zip(reasons, bad, strict=True):
            assert got.startswith(expected), (got, expected)
        assert box.manifest.by_declaration("123") is None and box.manifest.by_declaration("300000000005")

        # a duplicate id is applied once (a changed copy under the same id is not applied either)
        central.send(MT, manifest("m-1", {**ENTRY, "tractor_plate": "12C-999.99"}))
        central.send(MT, manifest("m-1"))
        wait_until(lambda: box.stats["duplicates"] == 2, 10, "both duplicates to be seen")
        assert box.manifest.by_plate("12C-999.99") is None
        with box.store.transaction() as conn:
            assert conn.execute("SELECT COUNT(*) FROM inbound_events WHERE event_id = 'm-1'").fetchone()[0] == 1
    finally:
        box.close()


def test_watchlists_hold_persons_stay_hashed_and_a_restart_keeps_everything(
    tmp_path: Path, broker: Broker, central: Central
) -> None:
    box = Box(tmp_path, broker.port)
    try:
        central.send(MT, manifest("m-1"))
        central.send(WT, watchlist("w-1", {"kind": "plate", "value": "12C12345", "reason": "smuggling alert"},
                                   {"kind": "person", "value": DOCUMENT, "reason": "wanted"}))
        central.send(WT, b'{"person": "' + DOCUMENT.encode() + b'"')  # malformed, with a document number
        wait_until(lambda: box.handled() == 3, 10, "the watchlist to be handled")
        verdict = decide(crossing(), box.manifest, CFG, box.watchlist)
        assert verdict.decision == "HOLD" and [r.code for r in verdict.reasons] == ["watchlist_plate"]
        assert box.watchlist.lookup("person", DOCUMENT, 0.0) is not None
        # a restart of the subscriber keeps its session: what central sends meanwhile still arrives
        box.sub.stop()
        central.send(WT, watchlist("w-2", {"kind": "container", "value": "MWCU6059784", "reason": "x-ray alert"}))
        box.sub.start()
        wait_until(lambda: box.stats["applied"] == 3, 10, "the message sent while offline")
    finally:
        box.close()

    db = tmp_path / "a.db"
    for f in tmp_path.glob("a.db*"):
        assert DOCUMENT.encode() not in f.read_bytes(), f"{f} holds a document number in clear"
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT COUNT(*) FROM watchlist WHERE kind = 'person'").fetchone()[0] == 1
    assert conn.execute("SELECT payload_head FROM dead_letters").fetchall() == [(None,)]
    conn.close()

    store = Store(db, tmp_path / "ev")  # the box restarts on the same file
    try:
        manifest_index = ManifestIndex()
        watch = load_inbound_state(store, manifest_index)
        assert manifest_index.by_declaration(DECL) is not None
        codes = {r.code for r in decide(crossing(), manifest_index, CFG, watch).reasons}
        assert codes == {"watchlist_plate", "watchlist_container"}
        assert watch.lookup("person", DOCUMENT, 0.0) is not None
    finally:
        store.close()
