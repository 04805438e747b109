"""Inbound manifests and watchlists: validation order, dead letters, dedupe, persistence, rules."""

from __future__ import annotations

import copy
import json
import logging
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from appliance.config import VerdictConfig, parse_config
from appliance.inbound import schemas
from appliance.inbound.handler import InboundHandler
from appliance.inbound.repo import InboundRepo
from appliance.inbound.setup import load_inbound_state
from appliance.inbound.trust import load_trusted_keys, write_public_key
from appliance.lanes.crossing import Crossing, FieldResult
from appliance.publish.events import key_id, sign_event
from appliance.publish.status import format_outbox_status
from appliance.store.db import Store
from appliance.verdicts.manifest import Manifest, ManifestEntry, ManifestIndex
from appliance.verdicts.rules import decide
from appliance.verdicts.watchlist import WatchlistIndex

KEY = Ed25519PrivateKey.generate()
OTHER = Ed25519PrivateKey.generate()
KEYS = {key_id(KEY.public_key()): KEY.public_key()}
GATE = "VNHNG"
MT, WT = "smartgate/VNHNG/manifests", "smartgate/VNHNG/watchlists"
DECL = "301234567890"
ENTRY = {"declaration": DECL, "tractor_plate": "12C-123.45", "trailer_plate": "12R-014.39",
         "containers": [{"number": "MWCU6059784", "size_type": "42G1"}], "goods": "durian"}
DOCUMENT = "079123456789"
NOW = 1_800_000_000.0
CFG = VerdictConfig()


def event(type_: str, data: dict[str, Any], id_: str = "m-1", key: Ed25519PrivateKey | None = KEY) -> dict[str, Any]:
    ev: dict[str, Any] = {"specversion": "1.0", "id": id_, "source": "smartgate/central", "type": type_,
                          "time": "2026-05-01T08:00:00Z", "datacontenttype": "application/json", "data": data}
    return sign_event(ev, key) if key is not None else ev


def manifest(id_: str = "m-1", entries: list[dict[str, Any]] | None = None, cancel: list[str] | None = None,
             key: Ed25519PrivateKey | None = KEY) -> dict[str, Any]:
    data: dict[str, Any] = {"gate": GATE, "entries": copy.deepcopy([ENTRY] if entries is None else entries)}
    if cancel:
        data["cancel"] = cancel
    return event("vn.smartgate.manifest.v1", data, id_, key)


def watchlist(id_: str, *items: dict[str, Any], key: Ed25519PrivateKey | None = KEY) -> dict[str, Any]:
    return event("vn.smartgate.watchlist.v1", {"gate": GATE, "entries": list(items)}, id_, key)


def raw(ev: dict[str, Any]) -> bytes:
    return json.dumps(ev, ensure_ascii=False).encode()


class Box:
    def __init__(self, path: Path, keys: dict[str, Any] | None = None, file_manifest: Manifest | None = None):
        self.store = Store(path / "a.db", path / "ev")
        self.manifest = ManifestIndex(file_manifest)
        self.watchlist = load_inbound_state(self.store, self.manifest, now=NOW)
        self.status: dict[str, Any] = {}
        self.handler = InboundHandler(
            InboundRepo(self.store), self.manifest, self.watchlist, gate=GATE, manifest_topic=MT, watchlist_topic=WT,
            trusted_keys=KEYS if keys is None else keys, max_payload_bytes=16384, status=self.status,
            clock=lambda: NOW,
        )

    def dead_reasons(self) -> list[str]:
        return [d.reason for d in reversed(InboundRepo(self.store).dead_letters())]


@pytest.fixture
def box(tmp_path: Path) -> Box:
    return Box(tmp_path)


def crossing(plate: str = "12C-123.45", container: str = "MWCU6059784", declaration: str = DECL) -> Crossing:
    return Crossing(id="c1", lane_id="l1", started_at=NOW - 5, ended_at=NOW, tractor_plate=FieldResult(plate, 0.9, 3),
                    trailer_plate=FieldResult("12R-014.39", 0.9, 3), containers=(FieldResult(container, 0.95, 3),),
                    declarations=(declaration,))


def test_a_valid_signed_manifest_is_applied_and_the_crossing_clears(box: Box) -> None:
    assert decide(crossing(), box.manifest, CFG).decision == "HOLD"
    out = box.handler.handle(MT, raw(manifest()))
    assert (out.status, out.event_id) == ("applied", "m-1")
    verdict = decide(crossing(), box.manifest, CFG, box.watchlist, now=NOW)
    assert verdict.decision == "CLEAR" and verdict.declaration == DECL
    assert box.status["inbound"]["applied"] == 1 and box.dead_reasons() == []


def _tampered() -> dict[str, Any]:
    ev = manifest()
    ev["data"]["entries"][0]["tractor_plate"] = "99C-999.99"
    return ev


def _dup_keys() -> bytes:
    return raw(manifest())[:-1] + b',"id":"other"}'


BAD: list[tuple[str, str, bytes, str]] = [
    ("bad json", MT, b'{"specversion": "1.0", ', "json: Expecting property name enclosed in double quotes"),
    ("not an object", MT, b"[1, 2]", "json: the message is a JSON list, not an object"),
    ("not utf-8", MT, b'{"a": "\xff"}', "json: not UTF-8"),
    ("NaN", MT, b'{"a": NaN}', "json: NaN is not JSON"),
    ("duplicate keys", MT, _dup_keys(), "json: an object repeats a key"),
    ("infinite number", MT, b'{"a": 1e999}', "json: a number is out of range"),
    ("huge integer", MT, b'{"a": ' + b"9" * 5000 + b"}", "json: Exceeds the limit"),
    ("deep nesting", MT, b"[" * 5000 + b"]" * 5000, "json: nested too deeply"),
    ("oversized", MT, b"{" + b" " * 20000 + b"}", "size: 20002 bytes, more than the limit of 16384"),
    ("no specversion", MT, raw({k: v for k, v in manifest().items() if k != "specversion"}),
     "envelope: specversion: Field required"),
    ("unknown type", MT, raw(event("vn.smartgate.weather.v1", {"gate": GATE})),
     "envelope: type: unknown event type 'vn.smartgate.weather.v1'"),
    ("type on the wrong topic", MT, raw(watchlist("w-1", {"kind": "plate", "value": "12C-123.45", "reason": "x"})),
     "envelope: type: vn.smartgate.watchlist.v1 is not accepted on smartgate/VNHNG/manifests"),
    ("unsigned", MT, raw(manifest(key=None)), "signature: unsigned"),
    ("signed by another key", MT, raw(manifest(key=OTHER)),
     f"signature: signed by key '{key_id(OTHER.public_key())}', which is not one of the trusted keys"),
    ("changed after signing", MT, raw(_tampered()), "signature: event 'm-1': bad signature"),
    ("bad declaration", MT, raw(manifest(entries=[{**ENTRY, "declaration": "12345"}])),
     "schema: data.entries.0.declaration: String should match pattern"),
    ("unknown field", MT, raw(manifest(entries=[{**ENTRY, "colour": "red"}])),
     "schema: data.entries.0.colour: Extra inputs are not permitted"),
    ("bad cancel", MT, raw(manifest(entries=[], cancel=["12"])), "schema: data.cancel.0: String should match"),
    ("other gate", MT, raw(event("vn.smartgate.manifest.v1", {"gate": "VNLCA", "entries": [ENTRY]})),
     "gate: data.gate is VNLCA, this box is at VNHNG"),
    ("bad container check digit", WT, raw(watchlist("w-1", {"kind": "container", "value": "MWCU6059785",
                                                             "reason": "x"})),
     "schema: data.entries.0: Value error, not an ISO 6346 container number"),
    ("add without reason", WT, raw(watchlist("w-1", {"kind": "plate", "value": "12C-123.45"})),
     "schema: data.entries.0: Value error, an entry to add needs a reason"),
    ("unknown topic", "smartgate/VNHNG/other", raw(manifest()), "topic: smartgate/VNHNG/other is not an inbound"),
]


@pytest.mark.parametrize(("name", "topic", "payload", "reason"), BAD, ids=[b[0] for b in BAD])
def test_a_bad_message_is_dead_lettered_and_the_next_good_one_is_applied(
    box: Box, name: str, topic: str, payload: bytes, reason: str
) -> None:
    out = box.handler.handle(topic, payload)
    assert out.status == "dead_letter" and out.reason is not None and out.reason.startswith(reason), out.reason
    assert len(box.manifest) == 0 and len(box.watchlist) == 0
    assert box.dead_reasons() == [out.reason]
    letter = InboundRepo(box.store).dead_letters()[0]
    assert letter.payload_bytes == len(payload) and letter.topic == topic and len(letter.payload_sha256) == 64
    assert box.status["inbound"]["dead_letters"] == 1 and box.status["inbound"]["last_dead_letter"] == out.reason
    assert box.handler.handle(MT, raw(manifest())).status == "applied"
    assert box.manifest.by_declaration(DECL) is not None


def test_a_duplicate_id_is_applied_once(box: Box) -> None:
    assert box.handler.handle(MT, raw(manifest("m-1"))).status == "applied"
    assert box.handler.handle(MT, raw(manifest("m-2", entries=[], cancel=[DECL]))).status == "applied"
    assert box.manifest.by_declaration(DECL) is None
    # the broker redelivers m-1 (e.g. after a reconnect): it must not bring the cancelled entry back
    assert box.handler.handle(MT, raw(manifest("m-1"))).status == "duplicate"
    assert box.manifest.by_declaration(DECL) is None
    assert box.status["inbound"] == {"applied": 2, "duplicates": 1, "dead_letters": 0, "last_dead_letter": None}


def test_a_redelivered_bad_message_is_dead_lettered_once(box: Box) -> None:
    """The broker redelivers an unacknowledged QoS 1 message after a reconnect: one dead letter."""
    assert box.handler.handle(WT, b'{"person": "0790').status == "dead_letter"
    assert box.handler.handle(WT, b'{"person": "0790').status == "duplicate"
    assert box.handler.handle(MT, b'{"person": "0790').status == "dead_letter"  # another topic: its own letter
    assert len(InboundRepo(box.store).dead_letters()) == 2
    assert box.status["inbound"]["dead_letters"] == 2 and box.status["inbound"]["duplicates"] == 1


def test_an_entry_replaces_the_entry_of_the_same_declaration(box: Box) -> None:
    box.handler.handle(MT, raw(manifest("m-1")))
    box.handler.handle(MT, raw(manifest("m-2", entries=[{**ENTRY, "tractor_plate": "12C-555.55"}])))
    assert len(box.manifest) == 1 and box.manifest.by_plate("12C-555.55") is not None
    assert box.manifest.by_plate("12C-123.45") is None


def test_watchlisted_plate_and_container_hold_until_removed_or_expired(box: Box) -> None:
    box.handler.handle(MT, raw(manifest()))
    later = datetime.fromtimestamp(NOW + 3600, UTC).isoformat()
    out = box.handler.handle(WT, raw(watchlist(
        "w-1", {"kind": "plate", "value": "12C12345", "reason": "smuggling alert", "expires_at": later},
        {"kind": "container", "value": "mwcu6059784", "reason": "risk profile"})))
    assert out.status == "applied"
    verdict = decide(crossing(), box.manifest, CFG, box.watchlist, now=NOW)
    assert verdict.decision == "HOLD"
    codes = {(r.code, r.field, r.read) for r in verdict.reasons}
    assert codes == {("watchlist_plate", "tractor_plate", "12C-123.45"),
                     ("watchlist_container", "container", "MWCU6059784")}
    assert verdict.reasons[0].expected == "watchlist: smuggling alert"
    # the plate entry expires; the container entry is removed by central
    box.handler.handle(WT, raw(watchlist("w-2", {"kind": "container", "value": "MWCU6059784", "action": "remove"})))
    assert decide(crossing(), box.manifest, CFG, box.watchlist, now=NOW + 3601).decision == "CLEAR"
    assert decide(crossing(), box.manifest, CFG, box.watchlist, now=NOW + 10).decision == "HOLD"
    # callers that pass no watchlist keep the old behaviour
    assert decide(crossing(), box.manifest, CFG).decision == "CLEAR"


def test_person_document_numbers_are_never_stored_or_logged_in_clear(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    box = Box(tmp_path)
    person = {"kind": "person", "value": DOCUMENT, "reason": "wanted"}
    assert box.handler.handle(WT, raw(watchlist("w-1", person))).status == "applied"
    # a malformed person message is dead-lettered without its bytes
    bad = raw(watchlist("w-2", {**person, "colour": "x"}))
    assert box.handler.handle(WT, bad).status == "dead_letter"
    assert box.handler.handle(MT, raw(watchlist("w-3", person))).status == "dead_letter"  # wrong topic
    assert all(d.payload_head is None for d in InboundRepo(box.store).dead_letters())
    assert box.watchlist.lookup("person", "0791 2345 6789", NOW) is not None
    assert box.watchlist.lookup("person", "079123456780", NOW) is None
    box.store.close()
    for f in tmp_path.glob("a.db*"):
        assert DOCUMENT.encode() not in f.read_bytes(), f
    assert DOCUMENT not in caplog.text


def test_restart_keeps_manifests_cancellations_and_watchlists(tmp_path: Path) -> None:
    file_entry = ManifestEntry(declaration="309999999999", tractor_plate="12C-999.99")
    box = Box(tmp_path, file_manifest=Manifest(entries=(file_entry,)))
    box.handler.handle(MT, raw(manifest("m-1", cancel=["309999999999"])))
    box.handler.handle(WT, raw(watchlist(
        "w-1", {"kind": "plate", "value": "29C-123.45", "reason": "alert"},
        {"kind": "plate", "value": "29C-555.55", "reason": "old",
         "expires_at": datetime.fromtimestamp(NOW - 1, UTC).isoformat()},
        {"kind": "person", "value": DOCUMENT, "reason": "wanted"})))
    box.handler.handle(MT, b"not json")
    box.store.close()

    again = Box(tmp_path, file_manifest=Manifest(entries=(file_entry,)))
    assert again.manifest.by_declaration(DECL) is not None
    assert again.manifest.by_declaration("309999999999") is None  # cancelled by central: stays cancelled
    assert again.watchlist.lookup("plate", "29C12345", NOW) is not None
    assert again.watchlist.lookup("person", DOCUMENT, NOW) is not None  # same salt after the restart
    assert len(again.watchlist) == 2  # the expired entry was dropped
    assert again.status["inbound"]["dead_letters"] == 1
    assert again.handler.handle(MT, raw(manifest("m-1"))).status == "duplicate"
    assert "inbound: 1 messages dead-lettered, last: json:" in format_outbox_status(again.store)


def test_without_trusted_keys_unsigned_messages_are_accepted_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    box = Box(tmp_path, keys={})
    assert box.handler.handle(MT, raw(manifest("m-1", key=None))).status == "applied"
    assert box.handler.handle(MT, raw(manifest("m-2", key=None))).status == "applied"
    assert caplog.text.count("no trusted_keys configured") == 1


def test_a_failing_store_dead_letters_instead_of_raising(box: Box, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: object) -> bool:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(box.handler.repo, "apply_manifest", boom)
    out = box.handler.handle(MT, raw(manifest()))
    assert out.status == "dead_letter" and out.reason == "internal: OperationalError"
    assert len(box.manifest) == 0


def test_watchlist_index_ignores_expired_entries() -> None:
    from appliance.verdicts.watchlist import WatchEntry

    index = WatchlistIndex(b"salt")
    index.put(WatchEntry("plate", "12C12345", "x", expires_at=NOW))
    assert index.lookup("plate", "12C-123.45", NOW - 1) is not None
    assert index.lookup("plate", "12C-123.45", NOW) is None


# --- schemas and config -------------------------------------------------------------------------


def test_committed_schemas_equal_the_generated_ones() -> None:
    for name, text in schemas.generate().items():
        committed = schemas.SCHEMA_DIR / name
        stale = f"{committed} is stale: run python -m appliance.inbound.schemas"
        assert committed.read_text(encoding="utf-8") == text, stale


def test_schemas_accept_our_examples_and_reject_extra_keys() -> None:
    files = {name: json.loads(text) for name, text in schemas.generate().items()}
    jsonschema.validate(manifest("m-1", cancel=["309999999999"]), files["manifest.v1.json"])
    jsonschema.validate(watchlist("w-1", {"kind": "person", "value": DOCUMENT, "reason": "x",
                                          "expires_at": "2030-01-01T00:00:00+07:00"}), files["watchlist.v1.json"])
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(manifest(entries=[{**ENTRY, "colour": "red"}]), files["manifest.v1.json"])


def test_inbound_config_resolves_paths_and_loads_keys(tmp_path: Path) -> None:
    write_public_key(tmp_path / "central.pub.pem", KEY.public_key())
    text = """\
site: {gate: VNHNG, box_id: box-1}
lanes:
  - id: cargo-1
    sources: [{id: front, type: stream, role: front, url: "rtsp://127.0.0.1:8554/f"}]
inbound:
  host: 127.0.0.1
  tls: {ca_file: ca.pem}
  trusted_keys: [central.pub.pem]
  password_file: mqtt.pw
"""
    cfg = parse_config(text, base=tmp_path)
    assert cfg.inbound is not None and cfg.inbound.max_payload_bytes == 262144
    assert cfg.inbound.tls is not None and cfg.inbound.tls.ca_file == tmp_path / "ca.pem"
    assert cfg.inbound.password_file == tmp_path / "mqtt.pw"
    assert load_trusted_keys(cfg.inbound.trusted_keys).keys() == KEYS.keys()
    assert cfg.inbound.manifest_topic == "smartgate/{gate}/manifests"
    assert parse_config(text.split("inbound:")[0]).inbound is None


def test_expiry_must_carry_a_time_zone(box: Box) -> None:
    naive = (datetime(2030, 1, 1) + timedelta(0)).isoformat()
    out = box.handler.handle(WT, raw(watchlist("w-1", {"kind": "plate", "value": "12C-123.45", "reason": "x",
                                                       "expires_at": naive})))
    assert out.status == "dead_letter" and out.reason is not None
    assert out.reason.startswith("schema: data.entries.0.expires_at:")
