"""HTTPS webhook sink against a real TLS server started on a free loopback port (no mocks of httpx).

The certificates (a CA, a server certificate for 127.0.0.1, a client certificate, and a second,
untrusted CA) are generated here with ``cryptography``.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from appliance.config import AppConfig, HttpSinkConfig, parse_config
from appliance.errors import ConfigError
from appliance.lanes.crossing import Crossing, FieldResult
from appliance.publish.events import EventError, VerdictEventBuilder, decode_event, event_id, verify_event
from appliance.publish.http_sink import HttpSink, sign_body, verify_hmac_signature
from appliance.publish.publisher import Publisher, RetryPolicy
from appliance.publish.setup import publisher_from_config
from appliance.store.db import Store
from appliance.verdicts.rules import Verdict
from tests.integration.mosquitto import free_port, wait_until

FAST = RetryPolicy(batch=50, ack_timeout_s=2.0, backoff_initial_s=0.05, backoff_max_s=0.5, idle_poll_s=0.05)
KEY = Ed25519PrivateKey.generate()
HMAC_KEY = b"s3cret-webhook-key"


def crossing(i: int, lane: str = "l1") -> Crossing:
    return Crossing(id=f"c{i:05d}", lane_id=lane, started_at=1000.0 + i, ended_at=1001.0 + i,
                    tractor_plate=FieldResult("12C-123.45", 0.9, 2))


def new_store(tmp_path: Path) -> Store:
    return Store(tmp_path / "a.db", tmp_path / "ev", event_builder=VerdictEventBuilder("VNHNG", "box-1", KEY))


# --- certificates ----------------------------------------------------------------------------------


@dataclass
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    rogue_cert: Path  # server certificate for 127.0.0.1 signed by a CA nobody trusts
    rogue_key: Path


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> Path:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return path


def _write_cert(path: Path, cert: x509.Certificate) -> Path:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def _ca(cn: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn)).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                     crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _leaf(cn: str, ca: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey,
          server: bool) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    b = (
        x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(ca.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server
                                              else ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
    )
    if server:
        b = b.add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]), critical=False)
    return b.sign(ca_key, hashes.SHA256()), key


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    ca, ca_key = _ca("Test Central CA")
    srv, srv_key = _leaf("central.test", ca, ca_key, server=True)
    cli, cli_key = _leaf("box-1.VNHNG", ca, ca_key, server=False)
    rogue_ca, rogue_ca_key = _ca("Rogue CA")
    rogue, rogue_key = _leaf("central.test", rogue_ca, rogue_ca_key, server=True)
    return Pki(
        ca=_write_cert(d / "ca.pem", ca),
        server_cert=_write_cert(d / "server.pem", srv), server_key=_write_key(d / "server.key", srv_key),
        client_cert=_write_cert(d / "client.pem", cli), client_key=_write_key(d / "client.key", cli_key),
        rogue_cert=_write_cert(d / "rogue.pem", rogue), rogue_key=_write_key(d / "rogue.key", rogue_key),
    )


# --- the receiving side ----------------------------------------------------------------------------


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes
    client_cn: str | None
    at: float


class Receiver:
    """A real HTTPS server: records every request; answers from ``script`` (then ``default``).

    A script entry is a status code, or (status, extra headers), or ("sleep", seconds, status).
    """

    def __init__(self, pki: Pki, port: int | None = None, *, require_client_cert: bool = False,
                 rogue: bool = False):
        self.port = port or free_port()
        self.lock = threading.Lock()
        self.requests: list[Request] = []
        self.script: list[Any] = []
        self.default: Any = 200
        self.tls_errors: list[str] = []
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        if rogue:
            self.ctx.load_cert_chain(pki.rogue_cert, pki.rogue_key)
        else:
            self.ctx.load_cert_chain(pki.server_cert, pki.server_key)
        if require_client_cert:
            self.ctx.verify_mode = ssl.CERT_REQUIRED
            self.ctx.load_verify_locations(pki.ca)
        self.server: ThreadingHTTPServer | None = None
        self.thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}/hooks/verdicts"

    def _next_answer(self) -> Any:
        with self.lock:
            return self.script.pop(0) if self.script else self.default

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                peer = self.connection.getpeercert() if isinstance(self.connection, ssl.SSLSocket) else None
                cn = None
                if peer:
                    subject: Any = peer["subject"]
                    cn = next((v for rdn in subject for k, v in rdn if k == "commonName"), None)
                with receiver.lock:
                    receiver.requests.append(Request(self.path, {k: v for k, v in self.headers.items()}, body,
                                                     cn, time.time()))
                answer = receiver._next_answer()
                extra: dict[str, str] = {}
                if isinstance(answer, tuple) and answer[0] == "sleep":
                    time.sleep(answer[1])
                    answer = answer[2]
                if isinstance(answer, tuple):
                    answer, extra = answer
                self.send_response(answer)
                for k, v in extra.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            block_on_close = False

            def finish_request(self, request: Any, client_address: Any) -> None:
                try:  # the TLS handshake runs in the connection's thread, not in accept()
                    tls = receiver.ctx.wrap_socket(request, server_side=True)
                except (ssl.SSLError, OSError) as exc:
                    receiver.tls_errors.append(str(exc))
                    return
                super().finish_request(tls, client_address)

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass

        self.server = Server(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def got(self) -> list[Request]:
        with self.lock:
            return list(self.requests)


@pytest.fixture
def receiver(pki: Pki) -> Iterator[Receiver]:
    r = Receiver(pki)
    r.start()
    yield r
    r.stop()


def https_sink(url: str, pki: Pki, *, client_cert: bool = False, ca: Path | None = None) -> HttpSink:
    return HttpSink("central", url, lane_id="l1", ca_file=ca or pki.ca,
                    cert_file=pki.client_cert if client_cert else None,
                    key_file=pki.client_key if client_cert else None, hmac_key=HMAC_KEY)


def check_request(req: Request, now: float | None = None) -> dict[str, Any]:
    """What a receiver must check: content type, HMAC over the raw body, Ed25519, idempotency key."""
    assert req.headers["Content-Type"] == "application/cloudevents+json"
    verify_hmac_signature(req.body, req.headers.get("X-Smartgate-Signature"), HMAC_KEY, tolerance_s=60, now=now)
    event = decode_event(req.body)
    verify_event(event, KEY.public_key())
    assert req.headers["Idempotency-Key"] == event["id"]
    return event


def wait_for_retry(store: Store) -> None:
    time.sleep(max(0.0, store.pending("central", 1)[0].next_attempt_at - time.time()))


# --- tests -----------------------------------------------------------------------------------------


def test_events_written_while_the_receiver_is_down_arrive_when_it_comes_up(tmp_path: Path, pki: Pki) -> None:
    rx = Receiver(pki)  # not started: connection refused
    store = new_store(tmp_path)
    pub = Publisher(store, [https_sink(rx.url, pki)], default_policy=FAST)
    pub.start()
    try:
        n = 40
        for i in range(n):
            store.save_crossing(crossing(i), Verdict("CLEAR", (), None))
        wait_until(lambda: store.outbox_status()[0].max_attempts >= 2, 5, "failed attempts while down")
        st = store.outbox_status()[0]
        assert st.backlog == n and st.last_ack_at is None
        assert st.last_error is not None and "ConnectError" in st.last_error
        rx.start()
        wait_until(lambda: store.outbox_status()[0].backlog == 0, 15, "the backlog to drain")
        got = rx.got()
        assert {r.path for r in got} == {"/hooks/verdicts"}
        first: dict[str, bytes] = {}
        order: list[str] = []
        for req in got:
            event = check_request(req)
            if event["id"] not in first:
                order.append(event["id"])
            assert first.setdefault(event["id"], req.body) == req.body, "a redelivery differs from the first copy"
        assert order == [event_id("VNHNG", "box-1", f"c{i:05d}") for i in range(n)]  # outbox order
        assert len(got) == n  # nothing was sent twice once the receiver was up
    finally:
        pub.stop()
        rx.stop()
        store.close()


def test_500_then_200_redelivers_the_same_bytes_and_acks_only_on_2xx(tmp_path: Path, receiver: Receiver,
                                                                       pki: Pki) -> None:
    store = new_store(tmp_path)
    sink = https_sink(receiver.url, pki)
    pub = Publisher(store, [sink], default_policy=FAST)  # driven by hand, no threads
    try:
        for i in range(3):
            store.save_crossing(crossing(i), Verdict("HOLD", (), None))
        stored = [r.payload for r in store.pending("central", 10)]
        receiver.script = [500, 503]
        pub.drain_once(sink)
        assert len(receiver.got()) == 1  # stopped at the first failure: order must hold
        st = store.outbox_status()[0]
        assert st.backlog == 3 and st.last_ack_at is None and st.last_error == "HTTP 500 Internal Server Error"
        wait_for_retry(store)
        pub.drain_once(sink)
        st = store.outbox_status()[0]
        assert st.backlog == 3 and st.last_ack_at is None and st.last_error == "HTTP 503 Service Unavailable"
        assert st.max_attempts == 2
        wait_for_retry(store)
        pub.drain_once(sink)
        got = receiver.got()
        assert store.outbox_status()[0].backlog == 0
        assert [r.body for r in got] == [stored[0], stored[0], stored[0], stored[1], stored[2]]
        assert len({r.headers["Idempotency-Key"] for r in got[:3]}) == 1
        for r in got:
            check_request(r)
    finally:
        sink.close()
        store.close()


def test_a_receiver_slower_than_the_timeout_gets_the_event_again(tmp_path: Path, receiver: Receiver,
                                                                  pki: Pki) -> None:
    store = new_store(tmp_path)
    sink = https_sink(receiver.url, pki)
    store.register_sink("central", "l1")
    try:
        store.save_crossing(crossing(1), Verdict("CLEAR", (), None))
        rows = store.pending("central", 10)
        receiver.script = [("sleep", 1.0, 200)]
        result = sink.send(rows, timeout=0.3)
        assert result.acked == [] and result.error is not None and "timeout" in result.error
        result = sink.send(rows, timeout=2.0)
        assert result.acked == [rows[0].id] and result.error is None
        got = receiver.got()
        assert len(got) == 2 and got[0].body == got[1].body == rows[0].payload
    finally:
        sink.close()
        store.close()


def test_409_with_the_same_key_is_acknowledged_other_errors_are_not(tmp_path: Path, receiver: Receiver,
                                                                    pki: Pki) -> None:
    store = new_store(tmp_path)
    sink = https_sink(receiver.url, pki)
    store.register_sink("central", "l1")
    try:
        for i in range(3):
            store.save_crossing(crossing(i), Verdict("CLEAR", (), None))
        rows = store.pending("central", 10)
        receiver.script = [409, (409, {"Idempotency-Key": rows[1].event_id}), 400]
        result = sink.send(rows, timeout=2.0)
        assert result.acked == [rows[0].id, rows[1].id]
        assert result.error == "HTTP 400 Bad Request"
        receiver.script = [(409, {"Idempotency-Key": "another-key"})]
        result = sink.send(rows[2:], timeout=2.0)
        assert result.acked == [] and result.error is not None and result.error.startswith("HTTP 409")
        receiver.script = [(302, {"Location": "https://elsewhere.example/x"})]
        result = sink.send(rows[2:], timeout=2.0)
        assert result.acked == [] and result.error is not None and "redirect" in result.error
        assert len(receiver.got()) == 5
    finally:
        sink.close()
        store.close()


def test_retry_after_is_a_minimum_delay(tmp_path: Path, receiver: Receiver, pki: Pki) -> None:
    store = new_store(tmp_path)
    sink = https_sink(receiver.url, pki)
    pub = Publisher(store, [sink], default_policy=FAST)
    pub.start()
    try:
        receiver.script = [(429, {"Retry-After": "1"})]
        store.save_crossing(crossing(1), Verdict("CLEAR", (), None))
        wait_until(lambda: store.outbox_status()[0].backlog == 0, 10, "delivery after Retry-After")
        got = receiver.got()
        assert len(got) == 2 and got[1].at - got[0].at >= 0.95
        assert got[0].body == got[1].body
    finally:
        pub.stop()
        store.close()


def test_mutual_tls(tmp_path: Path, pki: Pki) -> None:
    rx = Receiver(pki, require_client_cert=True)
    rx.start()
    store = new_store(tmp_path)
    store.register_sink("central", "l1")
    anonymous = https_sink(rx.url, pki)
    with_cert = https_sink(rx.url, pki, client_cert=True)
    try:
        store.save_crossing(crossing(1), Verdict("CLEAR", (), None))
        rows = store.pending("central", 10)
        result = anonymous.send(rows, timeout=2.0)
        assert result.acked == [] and result.error is not None
        wait_until(lambda: rx.tls_errors, 2, "the server to refuse the handshake")
        assert rx.got() == []
        result = with_cert.send(rows, timeout=2.0)
        assert result.acked == [rows[0].id] and result.error is None
        got = rx.got()
        assert len(got) == 1 and got[0].client_cn == "box-1.VNHNG"
        check_request(got[0])
    finally:
        anonymous.close()
        with_cert.close()
        rx.stop()
        store.close()


def test_an_untrusted_server_certificate_is_refused(tmp_path: Path, pki: Pki) -> None:
    rx = Receiver(pki, rogue=True)
    rx.start()
    store = new_store(tmp_path)
    pub = Publisher(store, [https_sink(rx.url, pki)], default_policy=FAST)
    pub.start()
    try:
        store.save_crossing(crossing(1), Verdict("CLEAR", (), None))
        wait_until(lambda: store.outbox_status()[0].max_attempts >= 2, 5, "failed attempts")
        st = store.outbox_status()[0]
        assert st.backlog == 1 and st.last_ack_at is None
        assert st.last_error is not None and "CERTIFICATE_VERIFY_FAILED" in st.last_error
        assert rx.got() == []  # not a byte of the event reached the impostor
    finally:
        pub.stop()
        rx.stop()
        store.close()


def test_verify_hmac_signature() -> None:
    body = b'{"id":"x","data":{"decision":"CLEAR"}}'
    now = 1_700_000_000.0
    header = sign_body(body, HMAC_KEY, int(now))
    verify_hmac_signature(body, header, HMAC_KEY, tolerance_s=300, now=now + 10)
    verify_hmac_signature(body, f"{header},v1={'0' * 64}", HMAC_KEY, now=now)  # rotation: any v1 matches
    bad = [
        (body.replace(b"CLEAR", b"HOLD!"), header, "bad HMAC"),  # tampered body
        (body, header, "stale"),  # checked 10 minutes later
        (body, sign_body(body, b"another-key", int(now)), "bad HMAC"),
        (body, header.replace("t=", "t=1"), "malformed|stale|bad HMAC"),
        (body, "v1=abc", "needs t= and v1="),
        (body, None, "no X-Smartgate-Signature"),
        (body, "garbage", "malformed"),
    ]
    for i, (b, h, message) in enumerate(bad):
        with pytest.raises(EventError, match=message):
            verify_hmac_signature(b, h, HMAC_KEY, tolerance_s=300, now=now + (600 if i == 1 else 0))


BASE = """\
site: {gate: VNHNG, box_id: box-1}
lanes:
  - id: l1
    sources: [{id: front, type: stream, role: front, url: "rtsp://127.0.0.1:8554/f"}]
"""
TWO_LANES = BASE + """\
  - id: l2
    sources: [{id: front2, type: stream, role: front, url: "rtsp://127.0.0.1:8554/g"}]
"""


def http_config(tmp_path: Path, base: str, url: str, pki: Pki, key_file: str = "hook.key") -> AppConfig:
    text = base + f"""\
publish:
  sinks:
    - name: central
      type: http
      url: "{url}"
      hmac_key_file: {key_file}
      ack_timeout_s: 3
      headers: {{Authorization: "Bearer t0ken"}}
      tls: {{ca_file: {pki.ca}, cert_file: {pki.client_cert}, key_file: {pki.client_key}}}
"""
    return parse_config(text, base=tmp_path)


def test_publisher_from_config_builds_http_sinks_per_lane(tmp_path: Path, pki: Pki) -> None:
    (tmp_path / "hook.key").write_bytes(HMAC_KEY + b"\n")
    rx = Receiver(pki, require_client_cert=True)
    rx.start()
    store = new_store(tmp_path)
    try:
        cfg = http_config(tmp_path, TWO_LANES, rx.url, pki)
        pub = publisher_from_config(cfg, store)
        assert [(s.name, s.lane_id, type(s).__name__) for s in pub.sinks] == [
            ("central.l1", "l1", "HttpSink"), ("central.l2", "l2", "HttpSink")]
        assert pub.policy("central.l1").ack_timeout_s == 3
        store.save_crossing(crossing(1, "l1"), Verdict("CLEAR", (), None))
        store.save_crossing(crossing(2, "l2"), Verdict("HOLD", (), None))
        for s in pub.sinks:
            pub.drain_once(s)
        got = rx.got()
        assert len(got) == 2 and all(r.headers["Authorization"] == "Bearer t0ken" for r in got)
        assert sorted(check_request(r)["data"]["lane_id"] for r in got) == ["l1", "l2"]
        assert {s.sink: s.backlog for s in store.outbox_status()} == {"central.l1": 0, "central.l2": 0}
        pub.stop()

        one = publisher_from_config(http_config(tmp_path / "x", BASE, rx.url, pki, str(tmp_path / "hook.key")),
                                    store)
        assert [(s.name, s.lane_id) for s in one.sinks] == [("central", "l1")]
        one.stop()
    finally:
        rx.stop()
        store.close()


def test_publisher_from_config_errors(tmp_path: Path, pki: Pki) -> None:
    store = new_store(tmp_path)
    try:
        with pytest.raises(ConfigError, match=r"central: hmac_key_file .*nokey\.key not found"):
            publisher_from_config(http_config(tmp_path, BASE, "https://127.0.0.1:1/x", pki, "nokey.key"), store)
        (tmp_path / "empty.key").write_text("  \n")
        with pytest.raises(ConfigError, match=r"central: hmac_key_file .*empty\.key is empty"):
            publisher_from_config(http_config(tmp_path, BASE, "https://127.0.0.1:1/x", pki, "empty.key"), store)
        # plain http:// off the box: refused by check-config already, and by the sink itself
        with pytest.raises(ConfigError, match=r"publish\.sinks\.0: .*plain http:// to 203\.0\.113\.5"):
            http_config(tmp_path, BASE, "http://203.0.113.5/hook", pki)
        (tmp_path / "hook.key").write_bytes(HMAC_KEY)
        cfg = http_config(tmp_path, BASE, "https://203.0.113.5/hook", pki)
        sink_cfg = cfg.publish.sinks[0]
        assert isinstance(sink_cfg, HttpSinkConfig)
        bad = sink_cfg.model_copy(update={"url": "http://203.0.113.5/hook", "tls": None})
        cfg = cfg.model_copy(update={"publish": cfg.publish.model_copy(update={"sinks": [bad]})})
        with pytest.raises(ConfigError, match=r"publish\.sinks: central: plain http:// to 203\.0\.113\.5"):
            publisher_from_config(cfg, store)
        loop = HttpSink("local", "http://127.0.0.1:8080/hook", lane_id=None)  # loopback relay: allowed
        loop.close()
        with pytest.raises(ConfigError, match="set by the sink itself"):
            parse_config(BASE + "publish:\n  sinks: [{name: c, type: http, url: 'https://h/x', "
                                "headers: {Idempotency-Key: x}}]\n")
    finally:
        store.close()
