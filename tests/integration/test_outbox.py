"""Outbox + publisher against fake sinks and a real Mosquitto started on a free loopback port."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt.enums import CallbackAPIVersion

from appliance.lanes.crossing import Crossing, FieldResult
from appliance.publish.events import VerdictEventBuilder, decode_event, event_id, verify_event
from appliance.publish.mqtt_sink import MqttSink
from appliance.publish.publisher import Publisher, RetryPolicy, SendResult
from appliance.publish.status import format_outbox_status
from appliance.store.db import OutboxRow, Store
from appliance.verdicts.rules import Verdict
from tests.integration.mosquitto import Broker, wait_until

FAST = RetryPolicy(batch=50, ack_timeout_s=2.0, backoff_initial_s=0.05, backoff_max_s=0.5, idle_poll_s=0.05)
KEY = Ed25519PrivateKey.generate()


def crossing(i: int) -> Crossing:
    return Crossing(id=f"c{i:05d}", lane_id="l1", started_at=1000.0 + i, ended_at=1001.0 + i,
                    tractor_plate=FieldResult("12C-123.45", 0.9, 2))


def new_store(tmp_path: Path) -> Store:
    return Store(tmp_path / "a.db", tmp_path / "ev", event_builder=VerdictEventBuilder("VNHNG", "box-1", KEY))


# --- store and publisher with fake sinks ---------------------------------------------------------


class FakeSink:
    def __init__(self, name: str, fail: bool = False):
        self.name, self.lane_id, self.fail = name, None, fail
        self.sent: list[str] = []

    def send(self, rows: Sequence[OutboxRow], timeout: float) -> SendResult:
        if self.fail:
            return SendResult([], "link down")
        self.sent += [r.event_id for r in rows]
        return SendResult([r.id for r in rows])

    def close(self) -> None:
        pass


def test_outbox_row_is_part_of_the_crossing_transaction(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    store.register_sink("central")
    store.save_crossing(crossing(1), Verdict("CLEAR", (), None))
    with pytest.raises(sqlite3.IntegrityError):  # same crossing again: nothing of it, outbox row included
        store.save_crossing(crossing(1), Verdict("HOLD", (), None))
    assert store.outbox_count() == 1
    rows = store.pending("central", 10)
    assert len(rows) == 1 and rows[0].lane_id == "l1"
    event = decode_event(rows[0].payload)
    verify_event(event, KEY.public_key())
    assert event["id"] == rows[0].event_id and event["data"]["decision"] == "CLEAR"
    # a sink registered later gets the backlog; one registered without backfill does not
    store.register_sink("audit")
    store.register_sink("late", backfill=False)
    assert len(store.pending("audit", 10)) == 1 and store.pending("late", 10) == []
    store.record_failure("central", rows[0].id, "boom", time.time() + 5)
    status = {s.sink: s for s in store.outbox_status()}
    assert status["central"].backlog == 1 and status["central"].last_error == "boom"
    assert status["central"].max_attempts == 1 and status["central"].last_ack_at is None
    assert store.mark_delivered("central", [rows[0].id]) == 1
    assert store.mark_delivered("central", [rows[0].id]) == 0
    status = {s.sink: s for s in store.outbox_status()}
    assert status["central"].backlog == 0 and status["central"].last_ack_at is not None
    text = format_outbox_status(store)
    assert "central" in text and "audit" in text and "never" in text
    assert store.integrity_check() == "ok"
    store.close()


def test_store_without_event_builder_writes_no_outbox(tmp_path: Path) -> None:
    store = Store(tmp_path / "a.db", tmp_path / "ev")
    store.save_crossing(crossing(1), Verdict("CLEAR", (), None))
    assert store.outbox_count() == 0
    assert "no sinks" in format_outbox_status(store)
    store.close()


def test_a_failing_sink_never_blocks_another(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    good, bad = FakeSink("good"), FakeSink("bad", fail=True)
    pub = Publisher(store, [good, bad], default_policy=FAST)
    pub.start()
    try:
        for i in range(30):
            store.save_crossing(crossing(i), Verdict("CLEAR", (), None))
        wait_until(lambda: len(good.sent) == 30, 10, "the good sink to get every event")
        expected = [event_id("VNHNG", "box-1", f"c{i:05d}") for i in range(30)]
        assert good.sent == expected  # outbox order, each once
        status = {s.sink: s for s in store.outbox_status()}
        assert status["good"].backlog == 0
        assert status["bad"].backlog == 30 and status["bad"].last_ack_at is None
        wait_until(lambda: store.outbox_status()[0].max_attempts >= 2, 5, "retries on the bad sink")
        bad.fail = False
        wait_until(lambda: len(bad.sent) == 30, 10, "the recovered sink to catch up")
        assert bad.sent == expected
    finally:
        pub.stop()
        store.close()


def test_old_backlog_raises_an_alarm_and_nothing_expires(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = Store(tmp_path / "a.db", tmp_path / "ev", event_builder=VerdictEventBuilder("VNHNG", "box-1", KEY),
                  backlog_alarm_s=60.0)
    bad = FakeSink("bad", fail=True)
    pub = Publisher(store, [bad], default_policy=FAST)
    try:
        store.save_crossing(crossing(1), Verdict("CLEAR", (), None))
        assert pub.check_backlog() == set()  # young backlog: no alarm
        later = time.time() + 3600
        (status,) = store.outbox_status(now=later)
        assert status.alarm and status.backlog == 1  # an hour old: alarm, still kept
        assert "ALARM" in format_outbox_status(store, now=later) and "> 60s" in format_outbox_status(store, now=later)
        with sqlite3.connect(store.path) as conn:  # make the event really old
            conn.execute("UPDATE outbox SET created_at = created_at - 3600")
        with caplog.at_level("WARNING"):
            assert pub.check_backlog() == {"bad"}
            assert pub.check_backlog() == {"bad"}  # logged once, on entering the alarm
        assert sum("ALARM" in r.getMessage() for r in caplog.records) == 1
        assert store.pending("bad", 10)  # never expired
        bad.fail = False
        pub.drain_once(bad)
        assert pub.check_backlog() == set()
    finally:
        store.close()


def test_backoff_grows_and_is_jittered() -> None:
    import random

    p = RetryPolicy(backoff_initial_s=1, backoff_max_s=8)
    rng = random.Random(1)
    delays = [p.delay(n, rng) for n in range(1, 7)]
    for n, d in enumerate(delays, start=1):
        cap = min(8, 2 ** (n - 1))
        assert cap / 2 <= d <= cap


# --- a real Mosquitto ------------------------------------------------------------------------------


class Central:
    """The receiving side: persistent QoS 1 subscription, verifies and records every event."""

    def __init__(self, port: int):
        self.lock = threading.Lock()
        self.received: list[tuple[str, bytes]] = []
        self.status: dict[str, Any] = {}
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="central-test", clean_session=False,
                                  protocol=mqtt.MQTTv311)
        self.client.reconnect_delay_set(1, 1)
        self.client.on_connect = lambda c, *a: c.subscribe([("smartgate/+/+/verdicts", 1),
                                                            ("smartgate/+/+/status", 1)])
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port, 30)
        self.client.loop_start()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        if msg.topic.endswith("/status"):
            self.status[msg.topic] = json.loads(msg.payload)
            return
        event = decode_event(msg.payload)
        verify_event(event, KEY.public_key())
        with self.lock:
            self.received.append((event["id"], bytes(msg.payload)))

    def ids(self) -> set[str]:
        with self.lock:
            return {i for i, _ in self.received}

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def check_delivery(store: Store, central: Central, n: int) -> None:
    with central.lock:
        received = list(central.received)
    first: dict[str, bytes] = {}
    for eid, payload in received:
        assert first.setdefault(eid, payload) == payload, "a duplicate differs from the first copy"
    assert len(first) == n
    conn = sqlite3.connect(store.path)
    delivered = {r[0] for r in conn.execute(
        "SELECT o.event_id FROM outbox_delivery d JOIN outbox o ON o.id = d.outbox_id "
        "WHERE d.delivered_at IS NOT NULL")}
    conn.close()
    assert delivered <= set(first), "marked delivered but never reached the broker's subscriber"
    assert store.integrity_check() == "ok"


def mqtt_sink(port: int) -> MqttSink:
    return MqttSink("central", "127.0.0.1", port, gate="VNHNG", box_id="box-1", lane_id="l1", reconnect_max_s=1)


def test_events_written_while_the_broker_is_down_arrive_when_it_starts(tmp_path: Path, broker: Broker) -> None:
    central = Central(broker.port)
    wait_until(lambda: central.client.is_connected(), 5, "the subscriber to connect")
    time.sleep(0.3)  # subscription in place (persistent session on the broker)
    broker.stop()
    store = new_store(tmp_path)
    pub = Publisher(store, [mqtt_sink(broker.port)], default_policy=FAST)
    pub.start()
    try:
        for i in range(200):
            store.save_crossing(crossing(i), Verdict("CLEAR", (), None))
        time.sleep(1.0)
        st = store.outbox_status()[0]
        assert st.backlog == 200 and st.last_ack_at is None and st.max_attempts >= 1
        assert central.ids() == set()
        broker.start()
        wait_until(lambda: len(central.ids()) == 200, 20, "all 200 events at the subscriber")
        wait_until(lambda: store.outbox_status()[0].backlog == 0, 10, "the backlog to drain")
        check_delivery(store, central, 200)
        wait_until(lambda: central.status.get("smartgate/VNHNG/l1/status", {}).get("state") == "online", 5,
                   "the retained online status")
    finally:
        pub.stop()
        central.close()
        store.close()


def test_broker_restarted_mid_stream_loses_nothing(tmp_path: Path, broker: Broker) -> None:
    central = Central(broker.port)
    wait_until(lambda: central.client.is_connected(), 5, "the subscriber to connect")
    time.sleep(0.3)
    store = new_store(tmp_path)
    pub = Publisher(store, [mqtt_sink(broker.port)], default_policy=FAST)
    pub.start()
    n = 1500

    def produce() -> None:
        for i in range(n):
            store.save_crossing(crossing(i), Verdict("CLEAR", (), None))
            if i % 50 == 0:
                time.sleep(0.02)

    producer = threading.Thread(target=produce)
    producer.start()
    try:
        for _ in range(3):
            wait_until(lambda: len(central.ids()) > 0, 10, "some events to flow")
            time.sleep(0.2)
            broker.stop()
            time.sleep(0.5)
            broker.start()
        producer.join(30)
        assert not producer.is_alive()
        wait_until(lambda: store.outbox_status()[0].backlog == 0, 30, "the backlog to drain")
        wait_until(lambda: len(central.ids()) == n, 15, f"all {n} events at the subscriber")
        check_delivery(store, central, n)
    finally:
        pub.stop()
        central.close()
        store.close()


def test_outbox_status_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from appliance.cli import main

    (tmp_path / "cams").mkdir()
    config = tmp_path / "lane.yaml"
    config.write_text(
        "site: {gate: VNHNG, box_id: b1}\n"
        "lanes: [{id: l1, sources: [{id: rear, type: stream, role: rear, url: 'rtsp://127.0.0.1:1/x'}]}]\n"
    )
    assert main(["outbox", "status", "--config", str(config)]) == 0
    assert "sink" in capsys.readouterr().out.lower()
