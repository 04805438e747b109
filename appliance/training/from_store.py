"""Reviewed crossings of an appliance store into the recogniser set: evidence crops + their text.

Which crossings and which values (appliance/store/decisions.py):

* a crossing an inspector approved or held (``reviewed_at`` set) confirms its settled reads:
  every field's value, or the inspector's correction of it;
* a crossing with corrections only (the inspector fixed a read but has not decided yet)
  confirms the corrected fields alone;
* a correction wins over the read: corrections chain (a -> b, then b -> c gives c), as on the
  review page (``appliance.web.review_view.corrections``).

Each read's evidence crop (``Store.evidence_path``) is labelled with the value of the field the
read belongs to (front/rear plate, fleet ID, container n, seal): every frame's crop of a plate
shows the same plate, whatever that frame read. A correction made on a given crop assigns that
crop to the corrected field. The crop is cut down to the read's box (plus a margin) where the
geometry allows (``appliance.web.crops.box_in_crop``), else kept whole. Crops have no full
frame around them, so this source never feeds the detector set.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

import cv2

from appliance.store import decisions
from appliance.store.db import Store
from appliance.store.decisions import corrections
from appliance.training.dataset import DatasetWriter, crop_with_margin, valid_text
from appliance.verdicts.manifest import plate_key
from appliance.web.crops import box_in_crop

log = logging.getLogger(__name__)

RULE = (
    "crossings an inspector approved or held: every settled read, with the inspector's correction winning "
    "over it; crossings with corrections only: the corrected fields; each read's evidence crop gets the "
    "value of its field"
)
DETECTOR_NOTE = (
    "not used: evidence crops are cut around a read and keep no full frame, so they cannot teach a "
    "detector where objects are"
)
FIELD_CLASS = {
    "tractor_plate": "plate",
    "trailer_plate": "plate",
    "fleet_id": "fleet_id",
    "container": "container_number",
    "seal": "seal",
}
REVIEWED_SQL = (
    "SELECT id, summary_json, reviewed_at, review_action FROM crossings WHERE reviewed_at IS NOT NULL "
    "OR EXISTS (SELECT 1 FROM decisions d WHERE d.crossing_id = crossings.id AND d.action = 'correct') "
    "ORDER BY ended_at, id"
)


@dataclass(frozen=True)
class StoreCrop:
    """One evidence crop and the text the inspector confirmed or corrected for it."""

    crossing_id: str
    field: str  # tractor_plate, trailer_plate, fleet_id, container:<n>, seal
    text: str
    sha256: str
    bbox_json: str | None
    corrected: bool

    @property
    def cls(self) -> str:
        return FIELD_CLASS[self.field.split(":")[0]]


@dataclass
class StoreStats:
    crossings: int = 0
    crossings_with_crops: int = 0
    corrected_labels: int = 0
    missing_evidence: int = 0
    unreadable_evidence: int = 0
    unusable_text: int = 0
    ambiguous_reads: int = 0
    crops: list[StoreCrop] = field(default_factory=list)


def _value(read: Any) -> str | None:
    return str(read["value"]) if isinstance(read, dict) and read.get("value") else None


def _labels(
    summary: dict[str, Any], fixes: dict[str, dict[str | None, str]], reviewed: bool
) -> dict[str, tuple[str, bool, str | None]]:
    """Field key -> (text, corrected, evidence sha of the settled read) for the confirmed fields."""
    settled: list[tuple[str, str, Any]] = [
        (n, n, summary.get(n)) for n in ("tractor_plate", "trailer_plate", "fleet_id")
    ]
    settled += [(f"container:{i}", "container", c) for i, c in enumerate(summary.get("containers") or [])]
    settled.append(("seal", "seal", (summary.get("seal") or {}).get("serial")))
    out: dict[str, tuple[str, bool, str | None]] = {}
    for key, name, read in settled:
        value = _value(read)
        fixed = fixes.get(name, {}).get(value)
        evidence = read.get("evidence") if isinstance(read, dict) else None
        if fixed is not None:
            out[key] = (fixed, True, evidence)
        elif reviewed and value is not None and not (name == "seal" and value in ("present", "absent")):
            out[key] = (value, False, evidence)
    return out


def _field_of(obs: dict[str, Any], summary: dict[str, Any]) -> str | None:
    """Which field of the crossing a read (an observations row) belongs to; None when unclear."""
    kind, value, sha = obs["kind"], obs["value"], obs["evidence_sha256"]
    if kind == "plate":
        extras = json.loads(obs["extras_json"]) if obs["extras_json"] else {}
        if isinstance(extras, dict) and extras.get("is_trailer"):
            return "trailer_plate"
        trailer, tractor = summary.get("trailer_plate"), summary.get("tractor_plate")
        key = plate_key(value or "")
        on_trailer = trailer and (trailer.get("evidence") == sha or (key and plate_key(trailer["value"]) == key))
        on_tractor = tractor and (tractor.get("evidence") == sha or (key and plate_key(tractor["value"]) == key))
        return "trailer_plate" if on_trailer and not on_tractor else "tractor_plate"
    if kind == "fleet_id":
        return "fleet_id"
    if kind == "seal":
        return "seal"
    if kind == "container":
        containers = summary.get("containers") or []
        for i, c in enumerate(containers):
            if c.get("value") == value or c.get("evidence") == sha:
                return f"container:{i}"
        return "container:0" if len(containers) == 1 else None
    return None


def reviewed_crops(store: Store) -> StoreStats:
    """The labelled evidence crops of every reviewed crossing in ``store``, oldest crossing first."""
    stats = StoreStats()
    for row in store.query(REVIEWED_SQL):
        stats.crossings += 1
        summary = json.loads(row["summary_json"])
        history = decisions.history(store, row["id"])
        labels = _labels(summary, corrections(history), row["reviewed_at"] is not None)
        if not labels:
            continue
        # A correction made on a given crop says which field that crop shows.
        pinned: dict[str, str] = {}
        containers = [_value(c) for c in summary.get("containers") or []]
        for d in history:
            if d.action != "correct" or not d.evidence_sha256 or not d.field:
                continue
            if d.field != "container":
                pinned[d.evidence_sha256] = d.field
            elif d.old_value in containers:
                pinned[d.evidence_sha256] = f"container:{containers.index(d.old_value)}"
        found: dict[tuple[str, str], str | None] = {}
        obs_rows = store.query(
            "SELECT kind, value, bbox_json, evidence_sha256, extras_json FROM observations "
            "WHERE crossing_id = ? AND evidence_sha256 IS NOT NULL ORDER BY ts, id",
            (row["id"],),
        )
        for obs in obs_rows:
            sha = obs["evidence_sha256"]
            key = pinned.get(sha) or _field_of(dict(obs), summary)
            if key is None:
                stats.ambiguous_reads += 1
                continue
            found.setdefault((sha, key), obs["bbox_json"])
        for key, (_text, _corrected, evidence) in labels.items():
            if evidence and not any(s == evidence for s, _ in found):
                found.setdefault((evidence, key), None)  # the settled read's crop, no box known
        before = len(stats.crops)
        for (sha, key), bbox in found.items():
            if key not in labels:
                continue
            text, corrected, _ = labels[key]
            if not valid_text(text):
                stats.unusable_text += 1
                continue
            stats.crops.append(StoreCrop(row["id"], key, text, sha, bbox, corrected))
            stats.corrected_labels += corrected
        stats.crossings_with_crops += len(stats.crops) > before
    return stats


def unit_of(crossing_id: str) -> str:
    """A crossing id as a file-name unit (no '_', '/' or other odd characters)."""
    return "".join(ch if ch.isalnum() or ch in ".-" else "-" for ch in crossing_id) or "crossing"


def export_crops(store: Store, crops: list[StoreCrop], writer: DatasetWriter, stats: StoreStats) -> None:
    """Cut and write every crop of ``crops`` into the recogniser set."""
    for c in crops:
        path = store.evidence_path(c.sha256)
        if path is None or not path.is_file():
            stats.missing_evidence += 1
            log.warning("evidence %s of crossing %s is gone (retention?); skipped", c.sha256, c.crossing_id)
            continue
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            stats.unreadable_evidence += 1
            continue
        crop = image
        box = box_in_crop(c.bbox_json, (image.shape[1], image.shape[0]))
        if box is not None:
            cut = crop_with_margin(image, box.x, box.y, box.w, box.h)
            crop = image if cut is None else cut
        writer.add_crop(
            unit_of(c.crossing_id),
            crop,
            c.text,
            c.cls,
            "store",
            crossing=c.crossing_id,
            field=c.field,
            evidence=c.sha256,
            corrected=c.corrected,
        )
