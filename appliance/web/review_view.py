"""What the crossing review page shows: the evidence crops with their reads' boxes, the reads
side by side with the manifest's expected values (mismatches marked), and what may be corrected.

Corrections already made count: a corrected value replaces the read in the comparison (the read
stays visible beside it), and the next correction of that field replaces the corrected value.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Any

from appliance.store.db import Store
from appliance.store.decisions import Decision, corrections
from appliance.store.review_queue import QueueRow
from appliance.verdicts.manifest import ManifestEntry, ManifestIndex, plate_key
from appliance.web import localtime
from appliance.web.crops import Box, box_in_crop, jpeg_size
from appliance.web.i18n import N_

PLATE_FIELDS = ("tractor_plate", "trailer_plate", "fleet_id")
KIND_LABEL = {"plate": "plate", "container": "containers", "seal": "seal", "declaration": "declaration",
              "fleet_id": "fleet_id"}
# Reason codes shown with words (others show as their code): the X-ray alarms that revise a verdict
# (appliance/xray/verdict_revision.py).
REASON_LABELS = {
    "xray_anomaly": N_("reason_xray_anomaly"),
    "xray_goods_mismatch": N_("reason_xray_goods_mismatch"),
    "xray_quantity_mismatch": N_("reason_xray_quantity_mismatch"),
}


def xray_reason_labels(reasons: Iterable[dict[str, Any]], t: dict[str, str]) -> list[dict[str, str]]:
    """The X-ray reasons among a verdict's reasons, with their words (for the queue's rows), once per code."""
    out: dict[str, dict[str, str]] = {}
    for r in reasons:
        code = str(r.get("code", ""))
        if code in REASON_LABELS and code not in out:
            out[code] = {"code": code, "label": t[REASON_LABELS[code]]}
    return list(out.values())


def when(ts: float) -> str:
    """Date and time in the gate's zone and the request's language (appliance/web/localtime.py)."""
    return localtime.when(ts)


@dataclass
class ReadView:
    kind: str
    value: str | None
    confidence: float | None
    source_id: str
    when: str
    candidates: list[str]
    details: list[tuple[str, str]]  # other things the reader said (raw text, colour, source ...)
    box: Box | None = None
    clock: str = ""  # the time of day alone

    @property
    def label(self) -> str:
        """The i18n key naming this kind of read."""
        return KIND_LABEL.get(self.kind, self.kind)


@dataclass
class Figure:
    """One evidence crop and the reads made on it."""

    sha: str
    width: int | None
    height: int | None
    reads: list[ReadView] = dc_field(default_factory=list)

    @property
    def boxes(self) -> list[Box]:
        return [r.box for r in self.reads if r.box is not None]


@dataclass
class CompareRow:
    field: str  # i18n key of the field
    read: str | None
    expected: str | None
    status: str  # match, mismatch, not_read, not_declared, none
    confidence: float | None = None
    votes: int | None = None
    evidence: str | None = None
    corrected: str | None = None  # the inspector's value, when it replaced the read
    alternatives: list[str] = dc_field(default_factory=list)


@dataclass
class Target:
    """A read an inspector may correct: ``value`` is the form's option value."""

    value: str
    field: str
    old_value: str | None
    evidence: str | None
    label_key: str


@dataclass
class Review:
    figures: list[Figure]
    unboxed: list[ReadView]  # reads without an evidence crop
    comparison: list[CompareRow]
    expected_source: str | None  # "manifest", "reasons" or None
    targets: list[Target]


def _extras(raw: str | None) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _read_view(obs: dict[str, Any], crop_size: tuple[int, int] | None) -> ReadView:
    extras = _extras(obs.get("extras_json"))
    candidates = [str(c) for c in extras.pop("candidates", []) if str(c) != obs["value"]]
    details = [(str(k), str(v)) for k, v in sorted(extras.items())]
    return ReadView(obs["kind"], obs["value"], obs["confidence"], obs["source_id"], when(obs["ts"]), candidates,
                    details, box_in_crop(obs["bbox_json"], crop_size), localtime.clock(obs["ts"]))


def observations(store: Store, crossing_id: str) -> list[dict[str, Any]]:
    rows = store.query(
        "SELECT source_id, ts, kind, value, confidence, bbox_json, evidence_sha256, extras_json FROM observations "
        "WHERE crossing_id = ? ORDER BY ts, id", (crossing_id,))
    return [dict(r) for r in rows]


def figures(store: Store, obs: Iterable[dict[str, Any]]) -> tuple[list[Figure], list[ReadView]]:
    by_sha: dict[str, Figure] = {}
    unboxed: list[ReadView] = []
    for o in obs:
        sha = o["evidence_sha256"]
        if not sha:
            unboxed.append(_read_view(o, None))
            continue
        if sha not in by_sha:
            path = store.evidence_path(sha)
            size = jpeg_size(path) if path is not None else None
            by_sha[sha] = Figure(sha, size[0] if size else None, size[1] if size else None)
        fig = by_sha[sha]
        fig.reads.append(_read_view(o, (fig.width, fig.height) if fig.width and fig.height else None))
    return list(by_sha.values()), unboxed


def find_entry(row: QueueRow, manifest: ManifestIndex | None) -> ManifestEntry | None:
    """The manifest entry the crossing was checked against (as the verdict rules find it)."""
    if manifest is None:
        return None
    s = row.summary
    for number in [row.declaration, *s.get("declarations", [])]:
        if number and (entry := manifest.by_declaration(number)) is not None:
            return entry
    for name in ("tractor_plate", "trailer_plate"):
        if (read := s.get(name)) and (entry := manifest.by_plate(read["value"])) is not None:
            return entry
    containers = tuple(c["value"] for c in s.get("containers", []))
    if (fleet := s.get("fleet_id")) and (entry := manifest.by_fleet_id(fleet["value"], containers)) is not None:
        return entry
    for number in containers:
        if (entry := manifest.by_container(number)) is not None:
            return entry
    return None


def expected_values(row: QueueRow, reasons: list[dict[str, Any]], manifest: ManifestIndex | None
                    ) -> tuple[dict[str, list[str]], str | None]:
    """Expected values per field, from the manifest entry, else from the verdict's reasons."""
    entry = find_entry(row, manifest)
    if entry is not None:
        return {
            "tractor_plate": [entry.tractor_plate] if entry.tractor_plate else [],
            "trailer_plate": [entry.trailer_plate] if entry.trailer_plate else [],
            "fleet_id": [entry.fleet_id] if entry.fleet_id else [],
            "containers": [c.number for c in entry.containers],
            "seal": list(entry.seals),
            "declaration": [entry.declaration],
        }, "manifest"
    found: dict[str, list[str]] = {}
    for r in reasons:
        expected = r.get("expected")
        if not expected or str(expected).startswith("watchlist:"):
            continue
        name = {"container": "containers"}.get(r.get("field", ""), r.get("field", ""))
        if name in ("containers", "seal"):
            values = [v for v in str(expected).split(",") if v]
        elif name in PLATE_FIELDS:
            values = [str(expected)]
        else:
            continue
        found.setdefault(name, [])
        found[name] += [v for v in values if v not in found[name]]
    if row.declaration:
        found["declaration"] = [row.declaration]
    return found, ("reasons" if found else None)


def _status(read: str | None, expected: list[str], have_expected: bool) -> str:
    if not expected:
        return "not_declared" if read and have_expected else "none"
    if not read:
        return "not_read"
    return "match" if plate_key(read) in {plate_key(e) for e in expected} else "mismatch"


def compare(row: QueueRow, obs: list[dict[str, Any]], expected: dict[str, list[str]], source: str | None,
            fixes: dict[str, dict[str | None, str]]) -> list[CompareRow]:
    s = row.summary
    values_read: dict[str, Counter[str]] = {}
    for o in obs:
        if o["value"]:
            values_read.setdefault(o["kind"], Counter())[o["value"]] += 1
    settled = {plate_key(s[n]["value"]) for n in PLATE_FIELDS if s.get(n)}
    rows: list[CompareRow] = []
    for name in PLATE_FIELDS:
        read = s.get(name)
        fixed = fixes.get(name, {})
        value = read["value"] if read else None
        corrected = fixed.get(value)
        if read is None and corrected is None and not expected.get(name) and name != "tractor_plate":
            continue
        kind = "fleet_id" if name == "fleet_id" else "plate"
        alts = [v for v, _ in values_read.get(kind, Counter()).most_common() if plate_key(v) not in settled]
        rows.append(CompareRow(name, value, ", ".join(expected.get(name, [])) or None,
                               _status(corrected or value, expected.get(name, []), source == "manifest"),
                               read["confidence"] if read else None, read["votes"] if read else None,
                               read["evidence"] if read else None, corrected, alts))
    rows += _compare_containers(s, expected.get("containers", []), source == "manifest", fixes.get("container", {}))
    seal = s.get("seal") or {}
    serial = seal.get("serial")
    seal_value = serial["value"] if serial else None
    seal_fix = fixes.get("seal", {}).get(seal_value)
    seal_alts = [v for v, _ in values_read.get("seal", Counter()).most_common() if v not in (seal_value, "absent",
                                                                                               "present")]
    if seal.get("present") is False and not seal_fix:
        status = "mismatch" if expected.get("seal") else "none"
    else:
        status = _status(seal_fix or seal_value, expected.get("seal", []), source == "manifest")
    rows.append(CompareRow("seal", seal_value, ", ".join(expected.get("seal", [])) or None, status,
                           serial["confidence"] if serial else None, serial["votes"] if serial else None,
                           serial["evidence"] if serial else None, seal_fix, seal_alts))
    declared = list(s.get("declarations", []))
    first = declared[0] if declared else None
    decl_fix = fixes.get("declaration", {}).get(first)
    effective = [decl_fix, *declared[1:]] if decl_fix else declared
    exp = expected.get("declaration", [])
    if not exp:
        decl_status = "none"
    elif not effective:
        decl_status = "not_read"
    else:
        decl_status = "match" if set(exp) & set(effective) else "mismatch"
    rows.append(CompareRow("declaration", ", ".join(declared) or None, ", ".join(exp) or None, decl_status,
                           corrected=decl_fix))
    return rows


def _compare_containers(s: dict[str, Any], expected: list[str], have_expected: bool,
                        fixed: dict[str | None, str]) -> list[CompareRow]:
    reads = list(s.get("containers", []))
    effective = [fixed.get(c["value"], c["value"]) for c in reads]
    added = [v for old, v in fixed.items() if old is None]
    candidates = [c for c in s.get("container_candidates", []) if c not in effective]
    rows: list[CompareRow] = []
    left = [e for e in expected if e not in effective and e not in added]
    for c, value in zip(reads, effective, strict=True):
        if value in expected:
            status, exp = "match", value
        elif left:
            status, exp = "mismatch", left.pop(0)
        else:
            status, exp = ("not_declared" if have_expected else "none"), None
        rows.append(CompareRow("containers", c["value"], exp, status, c["confidence"], c["votes"], c["evidence"],
                               value if value != c["value"] else None, candidates))
    for value in added:
        status = "match" if value in expected else ("not_declared" if have_expected else "none")
        rows.append(CompareRow("containers", None, value if value in expected else None, status, corrected=value))
    for exp in left:
        rows.append(CompareRow("containers", None, exp, "not_read", alternatives=candidates))
    if not rows:
        rows.append(CompareRow("containers", None, None, "none", alternatives=candidates))
    return rows


def targets(row: QueueRow, fixes: dict[str, dict[str | None, str]]) -> list[Target]:
    """The reads an inspector may correct (their current value: a correction of a correction chains)."""
    s = row.summary
    out: list[Target] = []
    for name in PLATE_FIELDS:
        read = s.get(name)
        value = read["value"] if read else None
        out.append(Target(name, name, fixes.get(name, {}).get(value, value), read["evidence"] if read else None,
                          name))
    for i, c in enumerate(s.get("containers", [])):
        out.append(Target(f"container:{i}", "container", fixes.get("container", {}).get(c["value"], c["value"]),
                          c["evidence"], "containers"))
    out.append(Target("container:new", "container", fixes.get("container", {}).get(None), None, "container_new"))
    serial = (s.get("seal") or {}).get("serial")
    seal_value = serial["value"] if serial else None
    out.append(Target("seal", "seal", fixes.get("seal", {}).get(seal_value, seal_value),
                      serial["evidence"] if serial else None, "seal"))
    declared = s.get("declarations", [])
    first = declared[0] if declared else None
    out.append(Target("declaration", "declaration", fixes.get("declaration", {}).get(first, first), None,
                      "declaration"))
    return out


def build(store: Store, row: QueueRow, reasons: list[dict[str, Any]], history: list[Decision],
          manifest: ManifestIndex | None) -> Review:
    obs = observations(store, row.id)
    figs, unboxed = figures(store, obs)
    expected, source = expected_values(row, reasons, manifest)
    fixes = corrections(history)
    return Review(figs, unboxed, compare(row, obs, expected, source, fixes), source, targets(row, fixes))
