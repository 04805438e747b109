"""From a scan to a stored, published X-ray result: calibrate, score, render, tie to a crossing, report.

``XrayProcessor.process(scan)``:

1. calibrates the scan with its scanner's calibration (``calibration_for``; an uncalibrated raw
   scan is refused with the reason, a normalised export passes through);
2. scores it with the anomaly model (``AnomalyScorer``) for the declared goods class;
3. renders the evidence image (grey scan, heat map, findings boxed) and keeps it, hash-named;
4. ties it to the crossing it belongs to: a crossing with one of the scan's container numbers, else
   with its plate, whose time lies within ``window_s`` of the scan; the nearest in time wins. A scan
   that matches none is kept all the same, with ``match = 'none'`` and what was tried;
5. stores the result and its outbox event (``vn.smartgate.xray.result.v1``) in one transaction.
   The event's data is shaped like a DICOS Threat Detection Report (NEMA IIC 1, TDR module): the
   alarm decision, the number of potential threat objects, each with its bounding box in scan
   pixels and its assessment, and the ATR (automatic threat recognition) that made it.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from appliance.publish.events import EVENT_NAMESPACE, SignsLikeVerdicts, _iso
from appliance.store.db import EvidenceWriteError, Store
from appliance.xray.anomaly import AnomalyResult, AnomalyScorer, render_overlay
from appliance.xray.calibration import attenuation, calibration_for
from appliance.xray.consistency import ConsistencyScorer
from appliance.xray.scan import ScanMeta, XrayScan
from appliance.xray.verdict_revision import revise_for_xray

log = logging.getLogger(__name__)

EVENT_TYPE = "vn.smartgate.xray.result.v1"
DATASCHEMA = "urn:smartgate:schema:xray-result-event:v1"
WINDOW_S = 3600.0  # a scan belongs to a crossing at most an hour apart


def _key(value: str) -> str:
    return "".join(ch for ch in value.upper() if ch.isalnum())


def match_crossing(store: Store, meta: ScanMeta, window_s: float = WINDOW_S) -> tuple[str | None, str, str]:
    """(crossing id or None, 'container' | 'plate' | 'none', what decided it)."""
    tried = []
    for kind, values in (("container", meta.containers), ("plate", (meta.plate,) if meta.plate else ())):
        keys = [_key(v) for v in values if v and _key(v)]
        if not keys:
            continue
        tried.append(f"{kind} {', '.join(keys)}")
        marks = ",".join("?" * len(keys))
        rows = store.query(
            f"SELECT c.id, c.started_at, c.ended_at, k.key FROM search_keys AS k JOIN crossings AS c "
            f"ON c.id = k.crossing_id WHERE k.kind = ? AND k.key IN ({marks}) "
            "AND c.ended_at >= ? AND c.started_at <= ?",
            (kind, *keys, meta.scanned_at - window_s, meta.scanned_at + window_s),
        )
        if rows:
            best = min(rows, key=lambda r: abs((r["started_at"] + r["ended_at"]) / 2 - meta.scanned_at))
            return str(best["id"]), kind, f"{kind} {best['key']} within {window_s:.0f} s"
    if not tried:
        return None, "none", "the scan names no container and no plate"
    return None, "none", f"no crossing within {window_s:.0f} s has {' or '.join(tried)}"


@dataclass
class XrayReport:
    scan_id: str
    meta: ScanMeta
    anomaly: AnomalyResult
    crossing_id: str | None
    match: str
    match_detail: str
    models: list[str]
    evidence_sha256: str | None
    consistency: dict[str, Any] | None = None
    received_at: float = field(default_factory=time.time)


def tdr(report: XrayReport) -> dict[str, Any]:
    """The result as a DICOS Threat Detection Report (TDR module attributes, JSON-shaped)."""
    a = report.anomaly
    objects = [
        {
            "PotentialThreatObjectID": i + 1,
            "ReferencedScan": report.scan_id,
            "BoundingBox": {"x": f.box[0], "y": f.box[1], "width": f.box[2], "height": f.box[3],
                            "units": "scan pixels (columns along the vehicle, rows up the detector)"},
            "Assessment": {"ThreatCategory": "ANOMALY", "AbilityAssessment": "NO_INTERFERENCE",
                           "AssessmentFlag": "THREAT" if f.score >= a.threshold else "UNKNOWN",
                           "Score": round(f.score, 3), "OperatingThreshold": round(a.threshold, 3)},
        }
        for i, f in enumerate(a.findings)
    ]
    consistency = report.consistency or {}
    threats = sum(1 for f in a.findings if f.score >= a.threshold)
    return {
        "TDRType": "MACHINE",
        "AlarmDecision": "ALARM" if a.alarm or consistency.get("alarm") else "CLEAR",
        "AlarmDecisionDateTime": _iso(report.received_at),
        "AbortFlag": "SUCCESS",
        "NumberOfAlarmObjects": threats,
        "NumberOfTotalObjects": len(objects),
        "PotentialThreatObjects": objects,
        "ImageScore": {"Score": round(a.score, 3), "OperatingThreshold": round(a.threshold, 3),
                       "Scale": "1.0 = the declared goods class's normal 99th percentile"},
        "ManifestConsistency": consistency or None,
        "ATR": {"Manufacturer": "gate-appliance", "Models": report.models},
        "OOIType": "CARGO",
        "DeclaredGoods": a.goods,
    }


@dataclass
class XrayEventBuilder(SignsLikeVerdicts):

    def __call__(self, report: XrayReport, report_tdr: dict[str, Any]) -> dict[str, Any]:
        return self.envelope(
            event_id=str(uuid.uuid5(EVENT_NAMESPACE, f"{self.gate}/{self.box_id}/{report.scan_id}/xray-result")),
            lane_id=report.meta.lane_id or "xray", event_type=EVENT_TYPE, subject=report.scan_id,
            ts=report.received_at, dataschema=DATASCHEMA, data={
                "scan_id": report.scan_id,
                "scanner_id": report.meta.scanner_id,
                "scanned_at": _iso(report.meta.scanned_at),
                "crossing_id": report.crossing_id,
                "match": report.match,
                "match_detail": report.match_detail,
                "evidence_sha256": report.evidence_sha256,
                "tdr": report_tdr,
            })


def save_xray_result(store: Store, report: XrayReport, event_builder: XrayEventBuilder | None) -> dict[str, Any]:
    """Store the result and its outbox event in one transaction; returns the TDR. Saving a scan again
    (same raw bytes) replaces nothing: the first result stands."""
    report_tdr = tdr(report)
    event = event_builder(report, report_tdr) if event_builder is not None else None
    a = report.anomaly
    with store.transaction() as conn:
        cur = conn.execute(
            "INSERT OR IGNORE INTO xray_results (scan_id, scanner_id, lane_id, scanned_at, received_at, crossing_id, "
            "match, match_detail, alarm, score, threshold, goods, findings_json, consistency_json, models_json, "
            "evidence_sha256, tdr_json) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (report.scan_id, report.meta.scanner_id, report.meta.lane_id, report.meta.scanned_at, report.received_at,
             report.crossing_id, report.match, report.match_detail, int(a.alarm), a.score, a.threshold, a.goods,
             json.dumps([{"box": list(f.box), "score": round(f.score, 4)} for f in a.findings]),
             json.dumps(report.consistency) if report.consistency else None, json.dumps(report.models),
             report.evidence_sha256, json.dumps(report_tdr, ensure_ascii=False)),
        )
        if cur.rowcount and event is not None:
            store.enqueue_in(conn, event, report.meta.lane_id or "xray", report.crossing_id)
        # An alarm raises the tied crossing's verdict in this same transaction (appliance/xray/verdict_revision.py).
        if cur.rowcount:
            revise_for_xray(conn, store, report, event_builder)
    if event is not None:  # the result's event, and the revision's when there is one
        store.notify_outbox()
    return report_tdr


class XrayProcessor:
    def __init__(self, store: Store, scorer: AnomalyScorer, calibration_root: Path,
                 event_builder: XrayEventBuilder | None = None, models: list[str] | None = None,
                 window_s: float = WINDOW_S, consistency: ConsistencyScorer | None = None,
                 pixel_m: tuple[float, float] = (0.003, 0.004)):
        self.consistency = consistency
        self.pixel_m = pixel_m  # (row, column) metres per pixel of this lane's scanner, unless a scan says
        self.store = store
        self.scorer = scorer
        self.calibration_root = calibration_root
        self.event_builder = event_builder
        self.models = models or []
        self.window_s = window_s

    def _consistency(self, scan: XrayScan, high: np.ndarray, low: np.ndarray | None,
                     containers: list[tuple[int, int, int, int]]) -> dict[str, Any] | None:
        if self.consistency is None:
            return None
        row_m, col_m = pixel_pitch(scan.meta, self.pixel_m)
        c = self.consistency.score(high, low, scan.meta.declared_goods, scan.meta.declared_quantity, row_m=row_m,
                                   col_m=col_m, containers=containers)
        return {
            "decided": c.decided, "reason": c.reason, "predicted": c.predicted, "p_declared": round(c.p_declared, 4),
            "goods_consistent": c.goods_consistent, "quantity_estimate": c.quantity_estimate,
            "quantity_consistent": c.quantity_consistent, "score": round(c.score, 4),
            # Only a judged mismatch alarms; a scan the model could not judge says why and goes to an officer.
            "alarm": bool(c.decided and not (c.goods_consistent and c.quantity_consistent)),
        }

    def process(self, scan: XrayScan) -> XrayReport:
        calibration = None if scan.meta.normalised else calibration_for(scan, self.calibration_root)
        att = attenuation(scan, calibration)
        result = self.scorer.score(att.high, att.low, scan.meta.declared_goods)
        png = heat_overlay_png(att.high, result)
        try:
            evidence = self.store.put_evidence(png, "image/png") if png else None
        except EvidenceWriteError as exc:  # disk full: the result and its event still go out, without the image
            log.warning("x-ray evidence not stored: %s", exc)
            evidence = None
        crossing, match, detail = match_crossing(self.store, scan.meta, self.window_s)
        report = XrayReport(scan.scan_id, scan.meta, result, crossing, match, detail, self.models, evidence,
                            consistency=self._consistency(scan, att.high, att.low, result.containers))
        save_xray_result(self.store, report, self.event_builder)
        # INFO names no container or plate (they stay in the store and the event); the match detail is DEBUG.
        log.info("x-ray scan %s: %s (score %.2f, threshold %.2f, %d finding(s)); crossing %s (match: %s)",
                 scan.scan_id[:12], "ALARM" if result.alarm else "clear", result.score, result.threshold,
                 len(result.findings), crossing or "none", match)
        log.debug("x-ray scan %s match detail: %s", scan.scan_id[:12], detail)
        return report


def pixel_pitch(meta: ScanMeta, default: tuple[float, float]) -> tuple[float, float]:
    """(row, column) metres per pixel: the scan's own ``pixel_m`` (sidecar extra) or the lane's default."""
    pitch = meta.extra.get("pixel_m") if isinstance(meta.extra, dict) else None
    if isinstance(pitch, dict):
        try:
            row, col = float(pitch["row"]), float(pitch["col"])
            if row > 0 and col > 0:
                return row, col
        except (KeyError, TypeError, ValueError):
            pass
    return default


def heat_overlay_png(high: np.ndarray, result: AnomalyResult) -> bytes:
    ok, png = cv2.imencode(".png", render_overlay(high, result))
    return png.tobytes() if ok else b""
