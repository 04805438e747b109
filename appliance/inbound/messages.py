"""Formats of the messages central sends to a gate box: CloudEvents 1.0 JSON envelopes.

``vn.smartgate.manifest.v1``: pre-arrival manifest entries (added, or replacing the entry of the
same declaration) and cancellations by declaration number.
``vn.smartgate.watchlist.v1``: plates, containers and persons to add to or remove from the
watchlist, each with a reason and an optional expiry.

Signatures are those of our outbound events (appliance.publish.events): ``sigalg``, ``sigkeyid``
and a detached Ed25519 ``sig`` over the canonical JSON of the event without ``sig``.
Every model forbids unknown keys. Validation messages never echo input values (a person's
document number must not reach a log or the dead-letter table).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator

from appliance.analyzers import iso6346
from appliance.verdicts.manifest import ManifestEntry, plate_key

MANIFEST_TYPE = "vn.smartgate.manifest.v1"
WATCHLIST_TYPE = "vn.smartgate.watchlist.v1"
MANIFEST_SCHEMA = "urn:smartgate:schema:manifest:v1"
WATCHLIST_SCHEMA = "urn:smartgate:schema:watchlist:v1"
GATE_PATTERN = r"^[A-Z]{2}[A-Z0-9]{3}$"
DECLARATION_PATTERN = r"^\d{12}$"
_DOCUMENT = re.compile(r"^[A-Z0-9]{6,20}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _EnvelopeBase(_Strict):
    specversion: Literal["1.0"] = Field(description="CloudEvents version.")
    id: str = Field(
        min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$",
        description="Unique id of the message: a box applies each id once (redeliveries are ignored).",
    )
    source: str = Field(min_length=1, max_length=256, description="Sender, e.g. smartgate/central.")
    subject: str | None = Field(default=None, max_length=256, description="Optional subject.")
    time: AwareDatetime = Field(description="When central issued the message (with a time zone).")
    datacontenttype: Literal["application/json"] = "application/json"
    sigalg: Literal["ed25519"] | None = Field(default=None, description="Signature algorithm.")
    sigkeyid: str | None = Field(
        default=None, pattern=r"^[0-9a-f]{16}$", description="First 16 hex digits of sha256 of the raw public key."
    )
    sig: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9_-]{86}$",
        description="Ed25519 signature (base64url, no padding) over the canonical JSON of the event without sig.",
    )


class Envelope(_EnvelopeBase):
    """The envelope alone (first check), before the signature and the data are looked at."""

    type: str = Field(min_length=1, max_length=128)
    dataschema: str | None = Field(default=None, max_length=256)
    data: dict[str, Any]


class ManifestData(_Strict):
    gate: str = Field(pattern=GATE_PATTERN, description="Gate the manifest is for (UN/LOCODE style).")
    entries: tuple[ManifestEntry, ...] = Field(
        default=(), max_length=5000,
        description="Declared passages; an entry replaces the box's entry of the same declaration.",
    )
    cancel: tuple[Annotated[str, Field(pattern=DECLARATION_PATTERN)], ...] = Field(
        default=(), max_length=5000, description="Declaration numbers (12 digits) whose entries are withdrawn."
    )

    @model_validator(mode="after")
    def _consistent(self) -> ManifestData:
        if not self.entries and not self.cancel:
            raise ValueError("a manifest message needs entries or cancel")
        declared = [e.declaration for e in self.entries]
        if len(set(declared)) != len(declared):
            raise ValueError("entries repeat a declaration number")
        if set(declared) & set(self.cancel):
            raise ValueError("a declaration is both in entries and in cancel")
        return self


class WatchlistItem(_Strict):
    kind: Literal["plate", "container", "person"] = Field(description="What is listed.")
    value: str = Field(
        min_length=1, max_length=32,
        description="Plate as printed, ISO 6346 container number, or a person's document number (CCCD, "
        "passport, border pass), which the box keeps only as a salted SHA-256.",
    )
    action: Literal["add", "remove"] = Field(default="add", description="Add (or update) or remove the entry.")
    reason: str = Field(default="", max_length=200, description="Why it is listed (required to add).")
    expires_at: AwareDatetime | None = Field(default=None, description="When the entry stops applying; none: never.")

    @model_validator(mode="after")
    def _valid_value(self) -> WatchlistItem:
        if self.action == "add" and not self.reason.strip():
            raise ValueError("an entry to add needs a reason")
        if self.kind == "container":
            number = self.value.strip().upper()
            if not iso6346.NUMBER_PATTERN.match(number) or not iso6346.is_valid(number):
                raise ValueError("not an ISO 6346 container number with a valid check digit")
        elif self.kind == "plate" and not 4 <= len(plate_key(self.value)) <= 12:
            raise ValueError("a plate has 4 to 12 letters and digits")
        elif self.kind == "person" and not _DOCUMENT.match("".join(self.value.split()).upper()):
            raise ValueError("a document number has 6 to 20 letters and digits")
        return self


class WatchlistData(_Strict):
    gate: str = Field(pattern=GATE_PATTERN, description="Gate the watchlist is for (UN/LOCODE style).")
    entries: tuple[WatchlistItem, ...] = Field(min_length=1, max_length=10000, description="Changes, in order.")


class ManifestEvent(_EnvelopeBase):
    """A pre-arrival manifest message from central."""

    type: Literal["vn.smartgate.manifest.v1"]
    dataschema: Literal["urn:smartgate:schema:manifest:v1"] | None = None
    data: ManifestData


class WatchlistEvent(_EnvelopeBase):
    """A watchlist message from central."""

    type: Literal["vn.smartgate.watchlist.v1"]
    dataschema: Literal["urn:smartgate:schema:watchlist:v1"] | None = None
    data: WatchlistData


EVENT_MODELS: dict[str, type[ManifestEvent] | type[WatchlistEvent]] = {
    MANIFEST_TYPE: ManifestEvent,
    WATCHLIST_TYPE: WatchlistEvent,
}


def describe(exc: ValidationError) -> str:
    """The first error as ``location: message`` (never the input value), plus how many more."""
    first = exc.errors(include_input=False, include_url=False)[0]
    where = ".".join(str(p) for p in first["loc"]) or "(top level)"
    more = exc.error_count() - 1
    return f"{where}: {first['msg']}" + (f" (+{more} more errors)" if more else "")
