"""Verdict rules: a crossing against the pre-arrival manifest -> CLEAR / REVIEW / HOLD.

Each rule adds machine-readable reasons; the verdict is the most severe reason, CLEAR when
there is none. HOLD means the evidence contradicts the manifest (stop the vehicle); REVIEW
means the lane could not establish something (an inspector must look).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

from appliance.analyzers.seals import edit_distance
from appliance.config import VerdictConfig
from appliance.lanes.crossing import Crossing, FieldResult
from appliance.reads import SealRead
from appliance.verdicts.manifest import ManifestEntry, ManifestIndex, plate_key
from appliance.verdicts.watchlist import WatchlistIndex

Decision = Literal["CLEAR", "REVIEW", "HOLD"]
_RANK = {"CLEAR": 0, "REVIEW": 1, "HOLD": 2}


@dataclass(frozen=True)
class Reason:
    code: str
    severity: Literal["REVIEW", "HOLD"]
    field: str = ""
    read: str | None = None
    expected: str | None = None


@dataclass(frozen=True)
class Verdict:
    decision: Decision
    reasons: tuple[Reason, ...]
    declaration: str | None

    def to_dict(self) -> dict[str, object]:
        return {
            "decision": self.decision,
            "declaration": self.declaration,
            "reasons": [r.__dict__ for r in self.reasons],
        }


def _find_entry(crossing: Crossing, index: ManifestIndex, reasons: list[Reason]) -> ManifestEntry | None:
    for number in crossing.declarations:
        entry = index.by_declaration(number)
        if entry is not None:
            return entry
    if crossing.declarations:
        reasons.append(Reason("declaration_not_in_manifest", "HOLD", "declaration", crossing.declarations[0]))
        return None
    for found in (crossing.tractor_plate, crossing.trailer_plate):
        if found is not None and (entry := index.by_plate(found.value)) is not None:
            return entry
    read_containers = tuple(c.value for c in crossing.containers)
    if crossing.fleet_id is not None:
        entry = index.by_fleet_id(crossing.fleet_id.value, read_containers)
        if entry is not None:
            return entry
    for container in crossing.containers:
        if (entry := index.by_container(container.value)) is not None:
            return entry
    return None


def _confirmed(read: FieldResult, cfg: VerdictConfig, min_confidence: float) -> bool:
    """Enough agreeing frames, confident enough, to contradict the manifest."""
    return read.votes >= cfg.min_votes_to_hold and read.confidence >= min_confidence


def _check_plate(name: str, read: FieldResult | None, expected: str | None, cfg: VerdictConfig) -> list[Reason]:
    if not expected:
        return []
    if read is None:
        return [Reason(f"{name}_unread", "REVIEW", name, None, expected)]
    if plate_key(read.value) != plate_key(expected):
        if not _confirmed(read, cfg, cfg.plate_min_confidence):
            return [Reason(f"{name}_mismatch_unconfirmed", "REVIEW", name, read.value, expected)]
        return [Reason(f"{name}_mismatch", cfg.plate_mismatch, name, read.value, expected)]
    if read.confidence < cfg.match_min_confidence:
        return [Reason(f"{name}_low_confidence", "REVIEW", name, read.value, expected)]
    return []


def _check_containers(crossing: Crossing, entry: ManifestEntry, cfg: VerdictConfig) -> list[Reason]:
    reasons: list[Reason] = []
    read = {c.value: c for c in crossing.containers}
    declared = [c.number for c in entry.containers]
    for number in declared:
        if number in read:
            if read[number].confidence < cfg.match_min_confidence:
                reasons.append(Reason("container_low_confidence", "REVIEW", "container", number, number))
        elif number in crossing.container_candidates:
            reasons.append(Reason("container_ambiguous", "REVIEW", "container", None, number))
        elif not read:
            reasons.append(Reason("container_unread", "REVIEW", "container", None, number))
    for number, found in read.items():
        if number not in declared:
            # A verified read already passed the check digit: one confident frame is evidence.
            confirmed = _confirmed(found, cfg, cfg.container_min_confidence) or (
                found.method == "read" and found.confidence >= CONFIDENT_CONTAINER)
            reasons.append(Reason("container_mismatch" if confirmed else "container_mismatch_unconfirmed",
                                  "HOLD" if confirmed else "REVIEW", "container", number, ",".join(declared) or None))
    return reasons


CONFIDENT_CONTAINER = 0.9


def _ocr_supports_declared(crossing: Crossing, declared: tuple[str, ...], max_distance: int) -> bool:
    """Blurred seal text read differently in each frame, yet each time within ``max_distance``
    of a declared serial, supports the declaration (gate OCR matches against the expected
    list). A decoded barcode is exact, so any barcode read that differs rules this out."""
    if max_distance <= 0:
        return False
    reads = [o.read for o in crossing.observations if isinstance(o.read, SealRead) and o.read.serial]
    if not reads or any(r.source in ("barcode", "both") and r.serial not in declared for r in reads):
        return False
    near = sum(1 for r in reads if min(edit_distance(r.serial or "", d) for d in declared) <= max_distance)
    return near * 2 > len(reads)


def _check_seals(crossing: Crossing, entry: ManifestEntry, cfg: VerdictConfig) -> list[Reason]:
    if not entry.seals:
        return []
    declared = ",".join(entry.seals)
    seal = crossing.seal
    if seal.present is False:
        return [Reason("seal_missing", "HOLD", "seal", None, declared)]
    if seal.serial is None:
        return [Reason("seal_unread", "REVIEW", "seal", None, declared)]
    if seal.serial.value not in entry.seals:
        if _ocr_supports_declared(crossing, entry.seals, cfg.seal_match_distance):
            return []
        if not _confirmed(seal.serial, cfg, cfg.seal_min_confidence):
            return [Reason("seal_mismatch_unconfirmed", "REVIEW", "seal", seal.serial.value, declared)]
        return [Reason("seal_mismatch", "HOLD", "seal", seal.serial.value, declared)]
    if seal.serial.confidence < cfg.match_min_confidence:
        return [Reason("seal_low_confidence", "REVIEW", "seal", seal.serial.value, declared)]
    return []


def check_watchlist(crossing: Crossing, watchlist: WatchlistIndex, now: float) -> list[Reason]:
    """HOLD when a settled plate or container is on an active watchlist from central.

    An exact hit on a listed value is evidence enough (an OCR error landing exactly on a listed
    plate is very unlikely); expired entries are ignored. ``expected`` carries the list's reason.
    """
    reasons: list[Reason] = []
    for name, read in (("tractor_plate", crossing.tractor_plate), ("trailer_plate", crossing.trailer_plate)):
        if read is not None and (hit := watchlist.lookup("plate", read.value, now)) is not None:
            reasons.append(Reason("watchlist_plate", "HOLD", name, read.value, f"watchlist: {hit.reason}"))
    for container in crossing.containers:
        if (hit := watchlist.lookup("container", container.value, now)) is not None:
            reasons.append(Reason("watchlist_container", "HOLD", "container", container.value,
                                  f"watchlist: {hit.reason}"))
    return reasons


def decide(
    crossing: Crossing,
    index: ManifestIndex,
    cfg: VerdictConfig,
    watchlist: WatchlistIndex | None = None,
    now: float | None = None,
) -> Verdict:
    """Apply every rule and return the verdict with all its reasons (``now``: for watchlist expiry)."""
    reasons: list[Reason] = []
    # Driverless IGV/AGV have no driver at the kiosk: their manifest entry is found by fleet ID.
    driverless = crossing.fleet_id is not None and crossing.tractor_plate is None
    if not crossing.declarations and cfg.require_declaration and not driverless:
        reasons.append(Reason("declaration_unread", "REVIEW", "declaration"))
    entry = _find_entry(crossing, index, reasons)
    if entry is None:
        if not any(r.code == "declaration_not_in_manifest" for r in reasons):
            reasons.append(Reason("no_manifest_entry", "HOLD", "manifest"))
    else:
        reasons += _check_plate("tractor_plate", crossing.tractor_plate, entry.tractor_plate, cfg)
        reasons += _check_plate("trailer_plate", crossing.trailer_plate, entry.trailer_plate, cfg)
        if entry.fleet_id:
            reasons += _check_plate("fleet_id", crossing.fleet_id, entry.fleet_id, cfg)
        reasons += _check_containers(crossing, entry, cfg)
        reasons += _check_seals(crossing, entry, cfg)
    if watchlist is not None:
        reasons += check_watchlist(crossing, watchlist, time.time() if now is None else now)
    decision: Decision = "CLEAR"
    for reason in reasons:
        if _RANK[reason.severity] > _RANK[decision]:
            decision = reason.severity
    return Verdict(decision, tuple(reasons), entry.declaration if entry else None)
