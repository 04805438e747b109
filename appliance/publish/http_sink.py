"""HTTPS webhook sink: one POST per verdict event, acknowledged only by the receiver's 2xx.

Request (CloudEvents 1.0 structured mode)::

    POST <url>
    Content-Type: application/cloudevents+json
    Idempotency-Key: <the event's CloudEvents id>
    X-Smartgate-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>    (only with an HMAC key)

    <the event JSON, exactly the bytes stored in the outbox>

The body is never re-encoded: a redelivery is byte-for-byte the first attempt, and the event's own
Ed25519 signature (``verify_event``) still holds. Receivers dedupe on ``Idempotency-Key`` (= the
event ``id``).

HMAC scheme (shared-secret authentication of the request, on top of TLS and the event signature):
``v1 = hex(HMAC-SHA256(key, "<t>." + body))`` where ``t`` is the decimal Unix time of the attempt
(each retry is signed anew, the body stays the same) and ``key`` is the bytes of the key file with
surrounding whitespace stripped. A receiver recomputes it over the raw request body, compares in
constant time and rejects a ``t`` outside its tolerance (replay window): see
``verify_hmac_signature``. Several ``v1=`` entries may appear during a key rotation; one match is
enough.

Acknowledgement: any 2xx acknowledges the event. ``409 Conflict`` acknowledges it too (the
receiver already holds an event with this idempotency key), unless the response carries an
``Idempotency-Key`` header naming another key. Anything else (connection or TLS failure,
timeout, redirect, 4xx, 5xx) is not an acknowledgement: the batch stops there, so events of a
lane arrive in outbox order, and the publisher retries with backoff. ``Retry-After`` on 429/503
is honoured as a minimum delay: the sink sends nothing to that receiver before it has passed.

TLS: the server is verified against ``ca_file`` (or the system CAs); ``cert_file``/``key_file``
give a client certificate for mutual TLS. Plain ``http://`` is refused unless the host is a
loopback address (a local relay or a test). Proxy environment variables are ignored.
"""

from __future__ import annotations

import email.utils
import hashlib
import hmac
import ipaddress
import logging
import re
import ssl
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from appliance import __version__
from appliance.errors import ConfigError
from appliance.publish.events import EventError
from appliance.publish.publisher import SendResult
from appliance.store.db import OutboxRow

log = logging.getLogger(__name__)

CONTENT_TYPE = "application/cloudevents+json"
SIGNATURE_HEADER = "X-Smartgate-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
# Headers the sink sets itself; configured extra headers may not replace them.
RESERVED_HEADERS = frozenset(
    h.lower() for h in ("Content-Type", "Content-Length", "Host", "Transfer-Encoding", IDEMPOTENCY_HEADER,
                        SIGNATURE_HEADER)
)
RETRY_AFTER_MAX_S = 600.0  # a receiver cannot park the lane's delivery for longer than this per answer
_RESPONSE_READ_MAX = 64 * 1024  # read (and drop) at most this much of a response body


def sign_body(body: bytes, key: bytes, t: int) -> str:
    """The ``X-Smartgate-Signature`` value for ``body`` sent at Unix time ``t``."""
    mac = hmac.new(key, f"{t}.".encode("ascii") + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def verify_hmac_signature(
    body: bytes, header: str | None, key: bytes, tolerance_s: float = 300.0, now: float | None = None
) -> None:
    """Receiver side: check an ``X-Smartgate-Signature`` header; raise EventError saying why it is rejected.

    ``body`` must be the raw request body as received (before any JSON parsing). ``tolerance_s``
    bounds the clock difference and the replay window. Dedupe on ``Idempotency-Key`` anyway.
    """
    if not header:
        raise EventError(f"request: no {SIGNATURE_HEADER} header")
    t: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        k, sep, v = part.strip().partition("=")
        if not sep:
            raise EventError(f"request: malformed {SIGNATURE_HEADER} header")
        if k == "t":
            if not re.fullmatch(r"\d{1,12}", v):
                raise EventError(f"request: malformed timestamp in {SIGNATURE_HEADER}")
            t = int(v)
        elif k == "v1":
            candidates.append(v.lower())
    if t is None or not candidates:
        raise EventError(f"request: {SIGNATURE_HEADER} needs t= and v1=")
    ts = time.time() if now is None else now
    if abs(ts - t) > tolerance_s:
        raise EventError(
            f"request: signature timestamp {t} is {ts - t:+.0f} s from now (tolerance {tolerance_s:.0f} s): "
            "stale, replayed, or a clock is wrong"
        )
    expected = sign_body(body, key, t).split("v1=", 1)[1]
    if not any(hmac.compare_digest(expected, c) for c in candidates):
        raise EventError("request: bad HMAC signature (body changed, or another key)")


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def url_problem(url: str) -> str | None:
    """Why ``url`` is not acceptable for a webhook sink (None: fine): https://, or http:// to loopback only."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return f"url {url!r} must be an https:// URL with a host"
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        return (
            f"plain http:// to {parts.hostname} would send verdicts unencrypted and unauthenticated; "
            "use https:// (http:// is allowed to a loopback host only)"
        )
    return None


def reserved_headers(headers: Mapping[str, str]) -> list[str]:
    """The configured headers that the sink sets itself (they cannot be configured)."""
    return sorted(h for h in headers if h.lower() in RESERVED_HEADERS)


def _retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date), capped."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        delay = float(value)
    else:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        delay = when.timestamp() - now
    return min(max(delay, 0.0), RETRY_AFTER_MAX_S)


class HttpSink:
    """POSTs the events of one lane (or all lanes) to one HTTPS endpoint, one request per event."""

    def __init__(
        self,
        name: str,
        url: str,
        *,
        lane_id: str | None,
        ca_file: Path | None = None,
        cert_file: Path | None = None,
        key_file: Path | None = None,
        hmac_key: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ):
        where = f"publish.sinks: {name}"
        problem = url_problem(url)
        if problem:
            raise ConfigError(f"{where}: {problem}")
        if hmac_key is not None and not hmac_key:
            raise ConfigError(f"{where}: the HMAC key is empty")
        bad = reserved_headers(headers or {})
        if bad:
            raise ConfigError(f"{where}: headers {bad} are set by the sink itself and cannot be configured")
        if key_file is not None and cert_file is None:
            raise ConfigError(f"{where}: tls.key_file needs tls.cert_file (the client certificate)")
        self.name = name
        self.lane_id = lane_id
        self.url = url
        self._hmac_key = hmac_key
        self._not_before = 0.0  # monotonic time before which Retry-After forbids sending
        self._retry_reason = ""
        verify: ssl.SSLContext | bool = False
        if urlsplit(url).scheme == "https":
            verify = self._ssl_context(where, ca_file, cert_file, key_file)
        elif ca_file or cert_file:
            raise ConfigError(f"{where}: tls is set but the url is plain http://; use https://")
        self.client = httpx.Client(
            verify=verify,
            headers={"User-Agent": f"smartgate-appliance/{__version__}", **(headers or {})},
            follow_redirects=False,
            trust_env=False,
        )

    @staticmethod
    def _ssl_context(where: str, ca_file: Path | None, cert_file: Path | None, key_file: Path | None) -> ssl.SSLContext:
        try:
            ctx = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"{where}: cannot load the CA file {ca_file}: {exc}") from exc
        if cert_file is not None:
            try:
                ctx.load_cert_chain(str(cert_file), str(key_file) if key_file else None)
            except (OSError, ssl.SSLError) as exc:
                raise ConfigError(
                    f"{where}: cannot load the client certificate {cert_file} / key {key_file}: {exc}"
                ) from exc
        return ctx

    def _headers(self, row: OutboxRow) -> dict[str, str]:
        h = {"Content-Type": CONTENT_TYPE, IDEMPOTENCY_HEADER: row.event_id}
        if self._hmac_key is not None:
            h[SIGNATURE_HEADER] = sign_body(row.payload, self._hmac_key, int(time.time()))
        return h

    def _post(self, row: OutboxRow, timeout: float) -> str | None:
        """POST one event; None when acknowledged, else a short reason (never the payload)."""
        try:
            with self.client.stream("POST", self.url, content=row.payload, headers=self._headers(row),
                                    timeout=timeout) as resp:
                size = 0
                for chunk in resp.iter_bytes():  # drain a small body so the connection can be reused
                    size += len(chunk)
                    if size > _RESPONSE_READ_MAX:
                        break
                code, phrase = resp.status_code, resp.reason_phrase
                echoed = resp.headers.get(IDEMPOTENCY_HEADER)
                retry_after = _retry_after(resp.headers.get("Retry-After"), time.time())
                location = resp.headers.get("Location")
        except httpx.TimeoutException as exc:
            return f"timeout after {timeout:.1f} s ({type(exc).__name__})"
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}"[:300]
        log.debug("sink %s: event %s -> HTTP %d", self.name, row.event_id, code)
        if 200 <= code < 300:
            return None
        if code == 409:
            if echoed is None or echoed.strip().strip('"') == row.event_id:
                log.debug("sink %s: event %s already held by the receiver (409)", self.name, row.event_id)
                return None
            return f"HTTP 409 {phrase} for another idempotency key ({echoed[:80]!r})"
        reason = f"HTTP {code} {phrase}".rstrip()
        if 300 <= code < 400:
            reason += f" (redirect to {location[:120]!r} not followed; fix the url)" if location else " (redirect)"
        if code in (429, 503) and retry_after is not None:
            self._not_before = time.monotonic() + retry_after
            self._retry_reason = reason
            reason += f" (Retry-After {retry_after:.0f} s)"
        return reason

    def send(self, rows: Sequence[OutboxRow], timeout: float) -> SendResult:
        """POST the rows in order; stop at the first one not acknowledged (order per lane must hold).

        ``timeout`` bounds each request (connect, TLS handshake, response), not the whole batch.
        """
        wait = self._not_before - time.monotonic()
        if wait > 0:
            return SendResult([], f"{self._retry_reason}: holding off {wait:.0f} s more (Retry-After)")
        acked: list[int] = []
        for row in rows:
            error = self._post(row, timeout)
            if error is not None:
                return SendResult(acked, error)
            acked.append(row.id)
        return SendResult(acked)

    def close(self) -> None:
        self.client.close()
