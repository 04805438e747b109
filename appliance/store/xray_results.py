"""X-ray results read back for the web UI (written by appliance/xray/results.py, table ``xray_results``
of migration 8): a crossing's scans, one scan, and the newest scans page by page, optionally only the
alarms and/or only the scans tied to no crossing.

A scan is an *alarm* when its stored TDR says so: the anomaly score reached its operating threshold
(``alarm``), or the manifest consistency check raised one (``consistency_json``'s ``alarm``), as
``appliance.xray.results.tdr`` decides ``AlarmDecision``. JSON columns that do not parse read as
empty (a page never fails on one odd row).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from appliance.store.db import Store

_COLUMNS = ("scan_id, scanner_id, lane_id, scanned_at, received_at, crossing_id, match, match_detail, alarm, score, "
            "threshold, goods, findings_json, consistency_json, models_json, evidence_sha256, tdr_json")
_ORDER = "scanned_at DESC, scan_id DESC"  # newest first; ids break ties so pages never overlap
# CASE, not AND: SQLite does not promise to skip json_extract (an error on malformed JSON) otherwise.
ALARM_SQL = ("(alarm != 0 OR CASE WHEN json_valid(consistency_json) "
             "THEN COALESCE(json_extract(consistency_json, '$.alarm'), 0) IN (1, 'true') ELSE 0 END)")
UNTIED_SQL = "crossing_id IS NULL"


@dataclass(frozen=True)
class Finding:
    x: int
    y: int
    w: int
    h: int
    score: float


@dataclass(frozen=True)
class XrayResultRow:
    scan_id: str
    scanner_id: str
    lane_id: str | None
    scanned_at: float
    received_at: float
    crossing_id: str | None
    match: str  # container, plate, none
    match_detail: str
    anomaly_alarm: bool  # the anomaly score reached the threshold
    score: float
    threshold: float
    goods: str | None
    findings: list[Finding]
    consistency: dict[str, Any] | None
    models: list[str]
    evidence_sha256: str | None
    tdr_json: str  # the stored DICOS-TDR-shaped report, as stored

    @property
    def consistency_alarm(self) -> bool:
        return bool(self.consistency and self.consistency.get("alarm") in (True, 1, "true"))

    @property
    def alarm(self) -> bool:
        """The TDR's AlarmDecision: the anomaly alarm or the consistency check's."""
        return self.anomaly_alarm or self.consistency_alarm


def _json(raw: str | None) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _findings(raw: str | None) -> list[Finding]:
    value = _json(raw)
    out: list[Finding] = []
    for f in value if isinstance(value, list) else []:
        try:
            x, y, w, h = (int(v) for v in f["box"])
            out.append(Finding(x, y, w, h, float(f["score"])))
        except (TypeError, ValueError, KeyError):
            continue
    return out


def _row(r: sqlite3.Row) -> XrayResultRow:
    consistency = _json(r["consistency_json"])
    models = _json(r["models_json"])
    return XrayResultRow(
        r["scan_id"], r["scanner_id"], r["lane_id"], r["scanned_at"], r["received_at"], r["crossing_id"], r["match"],
        r["match_detail"], bool(r["alarm"]), float(r["score"]), float(r["threshold"]), r["goods"],
        _findings(r["findings_json"]), consistency if isinstance(consistency, dict) else None,
        [str(m) for m in models] if isinstance(models, list) else [], r["evidence_sha256"], r["tdr_json"],
    )


def get_result(store: Store, scan_id: str) -> XrayResultRow | None:
    rows = store.query(f"SELECT {_COLUMNS} FROM xray_results WHERE scan_id = ?", (scan_id,))
    return _row(rows[0]) if rows else None


def for_crossing(store: Store, crossing_id: str) -> list[XrayResultRow]:
    """The scans tied to a crossing, in scan order."""
    rows = store.query(f"SELECT {_COLUMNS} FROM xray_results WHERE crossing_id = ? ORDER BY scanned_at, scan_id",
                       (crossing_id,))
    return [_row(r) for r in rows]


def _where(alarms_only: bool, untied_only: bool) -> str:
    parts = [sql for on, sql in ((alarms_only, ALARM_SQL), (untied_only, UNTIED_SQL)) if on]
    return f"WHERE {' AND '.join(parts)}" if parts else ""


def page_results(store: Store, alarms_only: bool = False, untied_only: bool = False, offset: int = 0,
                 limit: int = 50) -> tuple[list[XrayResultRow], bool]:
    """One page of scans, newest first, and whether another page follows."""
    rows = store.query(f"SELECT {_COLUMNS} FROM xray_results {_where(alarms_only, untied_only)} ORDER BY {_ORDER} "
                       "LIMIT ? OFFSET ?", (limit + 1, offset))
    return [_row(r) for r in rows[:limit]], len(rows) > limit


def result_counts(store: Store) -> dict[str, int]:
    """How many scans in all, alarms, tied to no crossing, and both."""
    r = store.query(f"SELECT COUNT(*), COALESCE(SUM({ALARM_SQL}), 0), COALESCE(SUM({UNTIED_SQL}), 0), "
                    f"COALESCE(SUM({ALARM_SQL} AND {UNTIED_SQL}), 0) FROM xray_results")[0]
    return {"all": int(r[0]), "alarm": int(r[1]), "untied": int(r[2]), "alarm_untied": int(r[3])}
