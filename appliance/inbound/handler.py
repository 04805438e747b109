"""Validate one inbound message and apply it, or dead-letter it with the reason.

Checks, in order, each naming itself in the reason: ``topic`` (one we subscribed to), ``size``
(before anything is parsed), ``json`` (UTF-8, no duplicate keys, no NaN), ``envelope``
(CloudEvents attributes, then the event type expected on the topic), ``signature`` (when trusted
keys are configured), ``schema`` (the data, located like ``data.entries.0.declaration``), ``gate``.
An accepted message is persisted and applied to the live indexes; a duplicate id is ignored.
``handle`` never raises: a bad message must not stop the subscriber.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import ValidationError

from appliance.inbound.messages import (
    EVENT_MODELS,
    MANIFEST_TYPE,
    WATCHLIST_TYPE,
    Envelope,
    ManifestEvent,
    WatchlistEvent,
    describe,
)
from appliance.inbound.repo import InboundRepo, WatchOp
from appliance.inbound.trust import TrustedKeys, check_signature
from appliance.verdicts.manifest import ManifestIndex
from appliance.verdicts.watchlist import WatchEntry, WatchlistIndex, watch_key

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    status: Literal["applied", "duplicate", "dead_letter"]
    reason: str | None = None
    event_id: str | None = None


class Rejected(Exception):
    """A message failed a check; the text is the dead-letter reason."""


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        # Two parsers could disagree on which value counts: a signed message must be unambiguous.
        raise Rejected("json: an object repeats a key")
    return dict(pairs)


def _no_constant(name: str) -> Any:
    raise Rejected(f"json: {name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise Rejected("json: a number is out of range")
    return value


def parse_json(payload: bytes) -> dict[str, Any]:
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Rejected(f"json: not UTF-8 (byte {exc.start})") from exc
    try:
        obj = json.loads(text, object_pairs_hook=_no_duplicate_keys, parse_constant=_no_constant,
                         parse_float=_finite)
    except json.JSONDecodeError as exc:
        raise Rejected(f"json: {exc.msg} at line {exc.lineno} column {exc.colno}") from exc
    except RecursionError as exc:
        raise Rejected("json: nested too deeply") from exc
    except ValueError as exc:  # e.g. an integer with too many digits
        raise Rejected(f"json: {exc}") from exc
    if not isinstance(obj, dict):
        raise Rejected(f"json: the message is a JSON {type(obj).__name__}, not an object")
    return obj


class InboundHandler:
    def __init__(
        self,
        repo: InboundRepo,
        manifest: ManifestIndex,
        watchlist: WatchlistIndex,
        *,
        gate: str,
        manifest_topic: str,
        watchlist_topic: str,
        trusted_keys: TrustedKeys,
        max_payload_bytes: int = 262144,
        status: dict[str, Any] | None = None,
        clock: Callable[[], float] = time.time,
    ):
        self.repo, self.manifest, self.watchlist = repo, manifest, watchlist
        self.gate = gate
        self.manifest_topic = manifest_topic
        self.topics = {manifest_topic: MANIFEST_TYPE, watchlist_topic: WATCHLIST_TYPE}
        self.keys = trusted_keys
        self.max_payload_bytes = max_payload_bytes
        self.clock = clock
        count, last = repo.dead_letter_stats()
        # The same dict object is shown by the status API (``Services.status["inbound"]``).
        self.stats: dict[str, Any] = {"applied": 0, "duplicates": 0, "dead_letters": count, "last_dead_letter": last}
        if status is not None:
            status["inbound"] = self.stats
        if not trusted_keys:
            log.warning("inbound: no trusted_keys configured: unsigned messages from central are accepted "
                        "(development only)")

    def handle(self, topic: str, payload: bytes) -> Outcome:
        try:
            outcome = self._handle(topic, payload)
        except Rejected as exc:
            return self._dead_letter(topic, payload, str(exc))
        except Exception as exc:  # a bug or a failing store must not stop the subscriber
            log.exception("inbound: internal error on a message on %s", topic)
            return self._dead_letter(topic, payload, f"internal: {type(exc).__name__}")
        self.stats["applied" if outcome.status == "applied" else "duplicates"] += 1
        return outcome

    def _handle(self, topic: str, payload: bytes) -> Outcome:
        expected = self.topics.get(topic)
        if expected is None:
            raise Rejected(f"topic: {topic} is not an inbound topic of this box")
        if len(payload) > self.max_payload_bytes:
            raise Rejected(f"size: {len(payload)} bytes, more than the limit of {self.max_payload_bytes}")
        raw = parse_json(payload)
        try:
            envelope = Envelope.model_validate(raw)
        except ValidationError as exc:
            raise Rejected(f"envelope: {describe(exc)}") from exc
        if envelope.type not in EVENT_MODELS:
            raise Rejected(f"envelope: type: unknown event type {envelope.type!r}")
        if envelope.type != expected:
            raise Rejected(f"envelope: type: {envelope.type} is not accepted on {topic} (expected {expected})")
        if (why := check_signature(raw, self.keys)) is not None:
            raise Rejected(f"signature: {why}")
        try:
            event = EVENT_MODELS[envelope.type].model_validate(raw)
        except ValidationError as exc:
            raise Rejected(f"schema: {describe(exc)}") from exc
        if event.data.gate != self.gate:
            raise Rejected(f"gate: data.gate is {event.data.gate}, this box is at {self.gate}")
        sha256 = hashlib.sha256(payload).hexdigest()
        now = self.clock()
        applied = (self._apply_manifest(event, topic, sha256, now) if isinstance(event, ManifestEvent)
                   else self._apply_watchlist(event, topic, sha256, now))
        if not applied:
            log.info("inbound: message %s was applied before: ignored", event.id)
            return Outcome("duplicate", None, event.id)
        log.info("inbound: applied %s %s", event.type, event.id)
        return Outcome("applied", None, event.id)

    def _apply_manifest(self, event: ManifestEvent, topic: str, sha256: str, now: float) -> bool:
        data = event.data
        if not self.repo.apply_manifest(event.id, topic, sha256, data.entries, data.cancel, now):
            return False
        for entry in data.entries:
            self.manifest.upsert(entry)
        for number in data.cancel:
            self.manifest.remove(number)
        return True

    def _apply_watchlist(self, event: WatchlistEvent, topic: str, sha256: str, now: float) -> bool:
        ops: list[WatchOp] = []
        for item in event.data.entries:
            key = watch_key(item.kind, item.value, self.watchlist.person_salt)
            expires = item.expires_at.timestamp() if item.expires_at is not None else None
            ops.append((item.action, WatchEntry(item.kind, key, item.reason, expires)))
        if not self.repo.apply_watchlist(event.id, topic, sha256, ops, now):
            return False
        for action, entry in ops:
            if action == "add":
                self.watchlist.put(entry)
            else:
                self.watchlist.remove(entry.kind, entry.key)
        return True

    def _dead_letter(self, topic: str, payload: bytes, reason: str) -> Outcome:
        # Keep the first bytes only of manifest messages that do not mention persons (not even
        # behind a JSON escape): a watchlist payload may hold a document number in clear.
        safe = topic == self.manifest_topic and b"person" not in payload and b"\\u" not in payload
        try:
            kept = self.repo.dead_letter(topic, reason, len(payload), hashlib.sha256(payload).hexdigest(),
                                         payload if safe else None, self.clock())
        except Exception:
            log.exception("inbound: cannot write the dead letter (reason: %s)", reason)
            kept = True
        if not kept:  # the broker redelivered a message already refused and kept
            self.stats["duplicates"] += 1
            return Outcome("duplicate", reason)
        log.warning("inbound: dead-lettered a %d-byte message on %s: %s", len(payload), topic, reason)
        self.stats["dead_letters"] += 1
        self.stats["last_dead_letter"] = reason
        return Outcome("dead_letter", reason)
