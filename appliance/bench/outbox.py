"""``appliance bench outbox``: durable writes, publish rate and crossing-to-central latency.

Three figures, each next to its target and to a baseline measured in the same run:

1. durable writes per second: ``Store.save_crossing`` (crossing, observations, verdict, signed
   event and outbox row in one SQLite transaction, WAL, the store's own ``synchronous``) for N
   crossings; baseline: a bare INSERT-per-transaction loop of the same payload size, same pragmas.
2. sustained publish rate: the real ``Publisher`` + ``MqttSink`` (QoS 1, PUBACK before a row is
   marked delivered) draining a backlog of the N events, until a real QoS 1 subscriber has them
   all; baseline: a bare paho QoS 1 publish loop of as many messages of the same size.
3. crossing closed -> received latency: crossings written at a steady rate while the publisher
   runs, from just before ``save_crossing`` to the subscriber's ``on_message``; baseline: a bare
   paho QoS 1 publish at the same rate.

Publisher and subscriber share this process (and its GIL), the real one and the baselines alike.
Without ``--broker-port`` a private ``mosquitto`` is started on a free loopback port.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt.enums import CallbackAPIVersion

from appliance.errors import ApplianceError
from appliance.lanes.crossing import Crossing, FieldResult, SealState
from appliance.publish.events import VerdictEventBuilder, event_id
from appliance.publish.mqtt_sink import MqttSink
from appliance.publish.publisher import Publisher
from appliance.reads import BBox, ContainerRead, Observation, PlateRead, Read, SealRead
from appliance.store.db import Store
from appliance.verdicts.rules import Reason, Verdict

GATE, BOX = "BENCH", "bench-box"
MOSQUITTO_FALLBACK = Path("/usr/sbin/mosquitto")  # Debian/Ubuntu: not on a normal user's PATH
TARGET_WRITES, TARGET_PUBLISHES, TARGET_P95_MS = 1000.0, 500.0, 200.0


@dataclass
class OutboxBench:
    crossings: int
    broker: str
    synchronous: str
    rate: float
    writes_per_s: float = 0.0
    bare_writes_per_s: float = 0.0
    publishes_per_s: float = 0.0
    bare_publishes_per_s: float = 0.0
    latency_ms: list[float] = field(default_factory=list)
    bare_latency_ms: list[float] = field(default_factory=list)
    payload_bytes: int = 0


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


# --- broker and subscriber ---------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _local_broker(workdir: Path) -> Iterator[int]:
    """A private mosquitto on a free loopback port (no queue limit), stopped on exit."""
    binary = shutil.which("mosquitto") or (str(MOSQUITTO_FALLBACK) if MOSQUITTO_FALLBACK.exists() else None)
    if binary is None:
        raise ApplianceError("bench outbox: the mosquitto binary was not found (apt-get install mosquitto), "
                             "or pass --broker-port of a running broker on 127.0.0.1")
    port = _free_port()
    conf = workdir / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\n"
                    f"log_dest file {workdir / 'mosquitto.log'}\n")
    proc = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise ApplianceError(f"bench outbox: mosquitto did not start (see {conf})") from None
                time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


class _Subscriber:
    """The central side: QoS 1 subscription; first arrival time (perf_counter) of each event id per topic."""

    def __init__(self, host: str, port: int, topics: list[str]):
        self._cond = threading.Condition()
        self.arrivals: dict[str, dict[str, float]] = {t: {} for t in topics}
        subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-central-{uuid.uuid4().hex[:8]}",
                                  clean_session=True, protocol=mqtt.MQTTv311)
        self.client.on_connect = lambda c, *a: c.subscribe([(t, 1) for t in topics])
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(host, port, 30)
        self.client.loop_start()
        if not subscribed.wait(10):
            self.close()
            raise ApplianceError(f"bench outbox: could not subscribe on {host}:{port}")

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        now = time.perf_counter()
        eid = str(json.loads(msg.payload)["id"])
        with self._cond:
            self.arrivals[msg.topic].setdefault(eid, now)
            self._cond.notify_all()

    def wait_for(self, topic: str, ids: set[str], timeout: float) -> dict[str, float]:
        """Arrival times of ``ids`` on ``topic``, once all of them are in."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not ids <= self.arrivals[topic].keys():
                left = deadline - time.monotonic()
                if left <= 0:
                    got = len(ids & self.arrivals[topic].keys())
                    raise ApplianceError(f"bench outbox: {got} of {len(ids)} messages on {topic} within {timeout} s")
                self._cond.wait(min(left, 0.5))
            return {i: self.arrivals[topic][i] for i in ids}

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


# --- workload ----------------------------------------------------------------------------------


def _crossing(n: int, lane: str, evidence: list[str]) -> tuple[Crossing, Verdict]:
    """A typical truck: tractor and trailer plates, one container, a seal, six reads over the frames."""
    t = 1_000_000.0 + n * 10
    ev = evidence[n % len(evidence)]
    plate = PlateRead("51R-141.39", "VN", "one_line", "yellow", 0.93, BBox(810, 640, 220, 60))
    trailer = PlateRead("51R-022.17", "VN", "one_line", "yellow", 0.88, BBox(790, 600, 230, 62), is_trailer=True)
    box = ContainerRead("MSKU1234565", 0.91, BBox(300, 120, 700, 90), size_type="45G1")
    seal = SealRead("VN1234567", True, 0.86, BBox(1200, 500, 80, 40), source="both")
    reads: list[Read] = [plate, plate, trailer, box, box, seal]
    obs = tuple(Observation("rear", t + 0.2 * k, r, ev) for k, r in enumerate(reads))
    crossing = Crossing(
        id=f"bench-{n:07d}", lane_id=lane, started_at=t, ended_at=t + 1.4,
        tractor_plate=FieldResult("51R-141.39", 0.93, 2, ev), trailer_plate=FieldResult("51R-022.17", 0.88, 1, ev),
        containers=(FieldResult("MSKU1234565", 0.91, 2, ev),), size_types=("45G1",),
        seal=SealState(True, FieldResult("VN1234567", 0.86, 1, ev)), declarations=("104123456789",),
        observations=obs,
    )
    if n % 10 == 0:
        return crossing, Verdict("REVIEW", (Reason("seal_unreadable", "REVIEW", "seal"),), "104123456789")
    return crossing, Verdict("CLEAR", (), "104123456789")


def _pad_payload(eid: str, size: int) -> bytes:
    head = json.dumps({"id": eid, "pad": ""}).encode()
    return json.dumps({"id": eid, "pad": "x" * max(0, size - len(head))}).encode()


def _bench_writes(store: Store, lane: str, n: int, evidence: list[str]) -> float:
    work = [_crossing(i, lane, evidence) for i in range(n)]
    t0 = time.perf_counter()
    for crossing, verdict in work:
        store.save_crossing(crossing, verdict)
    return n / (time.perf_counter() - t0)


def _bench_bare_writes(path: Path, synchronous: str, n: int, size: int) -> float:
    conn = sqlite3.connect(str(path), isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={synchronous}")
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, k TEXT NOT NULL UNIQUE, payload BLOB NOT NULL)")
        payload = b"x" * size
        t0 = time.perf_counter()
        for i in range(n):
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO t (k, payload) VALUES (?, ?)", (f"k{i}", payload))
            conn.execute("COMMIT")
        return n / (time.perf_counter() - t0)
    finally:
        conn.close()


def _bare_publisher(host: str, port: int) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-bare-{uuid.uuid4().hex[:8]}",
                         clean_session=True, protocol=mqtt.MQTTv311)
    client.max_inflight_messages_set(100)
    client.max_queued_messages_set(0)
    client.connect(host, port, 30)
    client.loop_start()
    return client


def _bench_bare_publish(client: mqtt.Client, sub: _Subscriber, topic: str, n: int, size: int) -> float:
    payloads = {f"pub-{i}": _pad_payload(f"pub-{i}", size) for i in range(n)}
    t0 = time.perf_counter()
    infos = [client.publish(topic, p, qos=1) for p in payloads.values()]
    for info in infos:
        info.wait_for_publish(60)
    arrived = sub.wait_for(topic, set(payloads), 60 + n / 50)
    return n / (max(arrived.values()) - t0)


def _steady(rate: float, count: int, action: Any) -> dict[str, float]:
    """Call ``action(i)`` ``count`` times at ``rate`` per second; returns id -> time just before the call."""
    sent: dict[str, float] = {}
    start = time.perf_counter()
    for i in range(count):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        t = time.perf_counter()
        sent[action(i)] = t
    return sent


def bench_outbox(crossings: int = 3000, broker_port: int | None = None, broker_host: str = "127.0.0.1",
                 rate: float = 50.0, latency_seconds: float = 4.0) -> OutboxBench:
    with tempfile.TemporaryDirectory(prefix="bench-outbox-") as tmp:
        workdir = Path(tmp)
        with contextlib.ExitStack() as stack:
            if broker_port is None:
                port, where = stack.enter_context(_local_broker(workdir)), "own mosquitto"
            else:
                port, where = broker_port, "given broker"
            return _run(workdir, broker_host, port, f"{broker_host}:{port} ({where})", crossings, rate,
                        latency_seconds)


def _run(workdir: Path, host: str, port: int, where: str, n: int, rate: float, seconds: float) -> OutboxBench:
    lane = f"b{uuid.uuid4().hex[:8]}"  # a topic of its own on a shared broker
    topic, bare_topic = f"smartgate/{GATE}/{lane}/verdicts", f"bench/{lane}/bare"
    builder = VerdictEventBuilder(GATE, BOX, Ed25519PrivateKey.generate())
    store = Store(workdir / "outbox.db", workdir / "evidence", builder)
    sub = _Subscriber(host, port, [topic, bare_topic])
    bare = _bare_publisher(host, port)
    publisher: Publisher | None = None
    try:
        with store.transaction() as conn:  # the store's own setting, for the baseline too
            level = conn.execute("PRAGMA synchronous").fetchone()[0]
        synchronous = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}[level]
        result = OutboxBench(n, where, synchronous, rate)
        evidence = [store.put_evidence(os.urandom(2048)) for _ in range(3)]
        store.register_sink("central", lane)
        # 1. durable writes
        result.writes_per_s = _bench_writes(store, lane, n, evidence)
        backlog = store.pending("central", n)
        result.payload_bytes = round(sum(len(r.payload) for r in backlog) / max(1, len(backlog)))
        result.bare_writes_per_s = _bench_bare_writes(workdir / "bare.db", synchronous, n, result.payload_bytes)
        # 2. draining the backlog through the real publisher
        sink = MqttSink("central", host, port, gate=GATE, box_id=BOX, lane_id=lane, client_id=f"bench-{lane}")
        deadline = time.monotonic() + 10
        while not sink.is_connected():
            if time.monotonic() > deadline:
                sink.close()
                raise ApplianceError(f"bench outbox: the MQTT sink could not connect to {where}")
            time.sleep(0.01)
        publisher = Publisher(store, [sink])
        t0 = time.perf_counter()
        publisher.start()
        arrived = sub.wait_for(topic, {r.event_id for r in backlog}, 60 + n / 50)
        result.publishes_per_s = n / (max(arrived.values()) - t0)
        deadline = time.monotonic() + 30
        while store.outbox_status()[0].backlog and time.monotonic() < deadline:  # the last PUBACKs recorded
            time.sleep(0.01)
        result.bare_publishes_per_s = _bench_bare_publish(bare, sub, bare_topic, n, result.payload_bytes)
        # 3. crossing closed -> received, at a steady rate
        count = max(5, round(rate * seconds))

        def write(i: int) -> str:
            crossing, verdict = _crossing(n + i, lane, evidence)
            store.save_crossing(crossing, verdict)
            return event_id(GATE, BOX, crossing.id)

        sent = _steady(rate, count, write)
        arrived = sub.wait_for(topic, set(sent), 60)
        result.latency_ms = [(arrived[i] - t) * 1000 for i, t in sent.items()]

        def bare_write(i: int) -> str:
            bare.publish(bare_topic, _pad_payload(f"lat-{i}", result.payload_bytes), qos=1)
            return f"lat-{i}"

        sent = _steady(rate, count, bare_write)
        arrived = sub.wait_for(bare_topic, set(sent), 60)
        result.bare_latency_ms = [(arrived[i] - t) * 1000 for i, t in sent.items()]
        return result
    finally:
        if publisher is not None:
            publisher.stop()
        bare.disconnect()
        bare.loop_stop()
        sub.close()
        store.close()


def format_outbox_bench(r: OutboxBench) -> str:
    def ratio(a: float, b: float) -> str:
        return f"{a / b:.2f}x" if b else "-"

    def ok(good: bool) -> str:
        return "ok" if good else "MISSED"

    p50, p95, worst = (_pct(r.latency_ms, 0.5), _pct(r.latency_ms, 0.95), max(r.latency_ms, default=0.0))
    bare_p95 = _pct(r.bare_latency_ms, 0.95)
    rows = [
        f"outbox benchmark: {r.crossings} crossings, event {r.payload_bytes} B, "
        f"SQLite WAL synchronous={r.synchronous}, MQTT QoS 1 via {r.broker}",
        "",
        f"{'measure':44s} {'figure':>12s} {'target':>12s} {'':6s} {'baseline':>12s} {'ratio':>7s}",
        f"{'durable writes (save_crossing) /s':44s} {r.writes_per_s:12,.0f} {'>= 1,000':>12s} "
        f"{ok(r.writes_per_s >= TARGET_WRITES):6s} {r.bare_writes_per_s:12,.0f} "
        f"{ratio(r.writes_per_s, r.bare_writes_per_s):>7s}",
        f"{'publish, backlog drain (PUBACK, received) /s':44s} {r.publishes_per_s:12,.0f} {'>= 500':>12s} "
        f"{ok(r.publishes_per_s >= TARGET_PUBLISHES):6s} {r.bare_publishes_per_s:12,.0f} "
        f"{ratio(r.publishes_per_s, r.bare_publishes_per_s):>7s}",
        f"{'closed -> received latency p50 ms':44s} {p50:12.1f} {'':12s} {'':6s} "
        f"{_pct(r.bare_latency_ms, 0.5):12.1f} {ratio(p50, _pct(r.bare_latency_ms, 0.5)):>7s}",
        f"{'closed -> received latency p95 ms':44s} {p95:12.1f} {'< 200':>12s} {ok(p95 < TARGET_P95_MS):6s} "
        f"{bare_p95:12.1f} {ratio(p95, bare_p95):>7s}",
        f"{'closed -> received latency max ms':44s} {worst:12.1f} {'':12s} {'':6s} "
        f"{max(r.bare_latency_ms, default=0.0):12.1f} {ratio(worst, max(r.bare_latency_ms, default=0.0)):>7s}",
        "",
        f"latency: {len(r.latency_ms)} crossings at {r.rate:g}/s while the publisher runs.",
        "baselines: a bare SQLite INSERT per transaction (same pragmas, same payload size); a bare paho QoS 1",
        "publish loop (same payload size, same subscriber, in this process as well).",
    ]
    return "\n".join(rows)
