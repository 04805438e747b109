"""Watchlists from central: plates, containers and persons the lane must stop or look at.

Persons are only ever held as a salted SHA-256 of their document number (``person_key``):
the clear number is never stored, indexed or logged on the box.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from typing import Literal

from appliance.verdicts.manifest import plate_key

WatchKind = Literal["plate", "container", "person"]


def person_key(salt: bytes, document_number: str) -> str:
    """Salted SHA-256 (hex) of a document number (spaces ignored, case-insensitive)."""
    normal = "".join(document_number.split()).upper()
    return hashlib.sha256(salt + normal.encode("utf-8")).hexdigest()


def watch_key(kind: WatchKind, value: str, salt: bytes = b"") -> str:
    """The index key of a listed value: plates without separators, containers upper-case,
    persons hashed (see ``person_key``)."""
    if kind == "plate":
        return plate_key(value)
    if kind == "container":
        return value.strip().upper()
    return person_key(salt, value)


@dataclass(frozen=True)
class WatchEntry:
    kind: WatchKind
    key: str
    reason: str
    expires_at: float | None = None  # epoch seconds; None: until removed

    def active(self, now: float) -> bool:
        return self.expires_at is None or now < self.expires_at


class WatchlistIndex:
    """Thread-safe look-up of active watchlist entries (the inbound subscriber writes, lanes read)."""

    def __init__(self, person_salt: bytes = b""):
        self.person_salt = person_salt
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, str], WatchEntry] = {}

    def put(self, entry: WatchEntry) -> None:
        with self._lock:
            self._entries[(entry.kind, entry.key)] = entry

    def remove(self, kind: WatchKind, key: str) -> bool:
        with self._lock:
            return self._entries.pop((kind, key), None) is not None

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def lookup(self, kind: WatchKind, value: str, now: float) -> WatchEntry | None:
        """The active entry listing ``value`` (a plate, container number or document number)."""
        key = watch_key(kind, value, self.person_salt)
        with self._lock:
            entry = self._entries.get((kind, key))
        return entry if entry is not None and entry.active(now) else None
