"""The pre-arrival manifest: what central says will cross, indexed for the verdict rules."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from appliance.errors import ConfigError


class ManifestContainer(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    number: str = Field(pattern=r"^[A-Z]{4}\d{7}$")
    size_type: str | None = None


class ManifestEntry(BaseModel):
    """One declared passage: declaration, vehicle, containers and seals."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    declaration: str = Field(pattern=r"^\d{12}$", description="VNACCS declaration number.")
    tractor_plate: str | None = None
    trailer_plate: str | None = None
    fleet_id: str | None = None
    containers: tuple[ManifestContainer, ...] = ()
    seals: tuple[str, ...] = ()
    goods: str = ""
    hs_code: str = ""


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    gate: str = ""
    entries: tuple[ManifestEntry, ...] = ()


def _key(text: str) -> str:
    """Plates compare without separators: 29C-123.45 == 29C12345."""
    return "".join(ch for ch in text.upper() if ch.isalnum())


class ManifestIndex:
    """Look-ups the rules need: by declaration, plate, fleet id and container number.

    Thread-safe: inbound manifests from central change it while the lanes read it.
    """

    def __init__(self, manifest: Manifest | None = None):
        self._lock = threading.RLock()
        self._entries: list[ManifestEntry] = []
        self._by_declaration: dict[str, ManifestEntry] = {}
        self._by_plate: dict[str, ManifestEntry] = {}
        self._by_fleet: dict[str, list[ManifestEntry]] = {}
        self._by_container: dict[str, ManifestEntry] = {}
        if manifest is not None:
            for entry in manifest.entries:
                self.add(entry)

    def add(self, entry: ManifestEntry) -> None:
        with self._lock:
            self._add(entry)

    def upsert(self, entry: ManifestEntry) -> None:
        """Add ``entry``, replacing the entry of the same declaration (central amended it)."""
        with self._lock:
            self.remove(entry.declaration)
            self._add(entry)

    def remove(self, declaration: str) -> bool:
        """Drop a declaration (central cancelled it); False when it was not there."""
        with self._lock:
            if declaration not in self._by_declaration:
                return False
            kept = [e for e in self._entries if e.declaration != declaration]
            self._entries, self._by_declaration, self._by_plate = [], {}, {}
            self._by_fleet, self._by_container = {}, {}
            for entry in kept:
                self._add(entry)
            return True

    def _add(self, entry: ManifestEntry) -> None:
        self._entries.append(entry)
        self._by_declaration[entry.declaration] = entry
        for plate in (entry.tractor_plate, entry.trailer_plate):
            if plate:
                self._by_plate[_key(plate)] = entry
        if entry.fleet_id:
            self._by_fleet.setdefault(_key(entry.fleet_id), []).append(entry)
        for container in entry.containers:
            self._by_container[container.number] = entry

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def by_declaration(self, number: str) -> ManifestEntry | None:
        with self._lock:
            return self._by_declaration.get(number)

    def by_plate(self, plate: str) -> ManifestEntry | None:
        with self._lock:
            return self._by_plate.get(_key(plate))

    def by_fleet_id(self, fleet_id: str, containers: tuple[str, ...] = ()) -> ManifestEntry | None:
        """The trip of a driverless vehicle: its fleet ID makes many trips, so the entry whose
        containers were read wins; else the only entry; else None (ambiguous)."""
        with self._lock:
            entries = list(self._by_fleet.get(_key(fleet_id), []))
        for entry in entries:
            if any(c.number in containers for c in entry.containers):
                return entry
        return entries[0] if len(entries) == 1 else None

    def by_container(self, number: str) -> ManifestEntry | None:
        with self._lock:
            return self._by_container.get(number)


def plate_key(text: str) -> str:
    return _key(text)


def load_manifest_file(path: Path) -> Manifest:
    """Read a manifest JSON file; errors name the file and the offending entry."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: manifest file not found") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: manifest is not readable JSON: {exc}") from exc
    try:
        return Manifest.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{path}: invalid manifest at {where}: {first['msg']} ({exc.error_count()} errors)") from exc
