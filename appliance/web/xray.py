"""X-ray results in the web UI, for inspectors, supervisors and admins.

``/xray``: the newest scans first, filtered to the alarms and/or to the scans tied to no crossing
(so a scan whose crossing was not found is seen and followed up); each row links to its crossing,
when there is one, and to the scan's page. ``/xray/{scan_id}``: one scan, as the X-ray section of a
crossing's review page shows it (templates/_xray_section.html, built by ``scan_view``): the evidence
image, ALARM or clear, the anomaly score against its operating threshold, the findings with their
boxes and scores, the declared goods, the scanner, the scan time in the gate's zone, how the scan
was tied to its crossing, the manifest consistency when the scan has one, and the models.

``/xray/{scan_id}/image.png``: the scan's evidence image (grey scan, anomaly heat map, findings
boxed in red) from the evidence store, looked up by the scan, never by a path the client gives;
``Cache-Control: private`` (hash-named evidence never changes, but it stays out of shared caches).
``/xray/{scan_id}/tdr.json``: the stored DICOS-shaped Threat Detection Report, byte for byte.
Logged out, all of these redirect to the login page (appliance/web/auth.py); an unknown scan is 404.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, Response

from appliance.store.db import Store
from appliance.store.xray_results import XrayResultRow, get_result, page_results, result_counts
from appliance.web import localtime
from appliance.web.auth import require_role
from appliance.web.i18n import N_, translator

Render = Callable[..., HTMLResponse]
PAGE_SIZE = 50
MAX_ID = 200  # characters of a requested scan id echoed in an error
CACHE = "private, max-age=86400"

MATCH_KEYS = {"container": N_("xray_match_container"), "plate": N_("xray_match_plate"),
              "none": N_("xray_match_none")}
# Manifest consistency (appliance/xray/consistency.py) keys with a label; any other key shows as itself.
CONSISTENCY_KEYS = {
    "p_declared": N_("xray_cons_p_declared"),
    "predicted": N_("xray_cons_predicted"),
    "goods_consistent": N_("xray_cons_goods_consistent"),
    "quantity_estimate": N_("xray_cons_quantity_estimate"),
    "quantity_consistent": N_("xray_cons_quantity_consistent"),
    "decided": N_("xray_cons_decided"),
    "reason": N_("xray_cons_reason"),
}
_PNG = b"\x89PNG\r\n\x1a\n"


@lru_cache(maxsize=1024)
def png_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from a PNG's IHDR chunk, or None. Evidence files never change: cached."""
    try:
        with path.open("rb") as fh:
            head = fh.read(24)
    except OSError:
        return None
    if len(head) < 24 or head[:8] != _PNG or head[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", head[16:24])
    return (width, height) if width and height else None


def scan_url(scan_id: str, tail: str = "") -> str:
    return f"/xray/{quote(scan_id, safe='')}{tail}"


def _number(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"


def _value(value: Any, t: dict[str, str]) -> tuple[str, str]:
    """(text, flag class) of one consistency value."""
    if isinstance(value, bool):
        return (t["yes"], "match") if value else (t["no"], "mismatch")
    if value is None:
        return "-", ""
    if isinstance(value, int | float):
        return _number(float(value)), ""
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_value(v, t)[0]}" for k, v in value.items()), ""
    if isinstance(value, list | tuple):
        return ", ".join(_value(v, t)[0] for v in value), ""
    return str(value), ""


def consistency_view(consistency: dict[str, Any] | None, t: dict[str, str]) -> list[dict[str, str]]:
    """The manifest consistency as (key, label, value, flag) rows: the labelled keys first."""
    if not consistency:
        return []
    keys = [k for k in CONSISTENCY_KEYS if k in consistency] + [k for k in consistency if k not in CONSISTENCY_KEYS]
    rows = []
    for key in keys:
        text, flag = _value(consistency[key], t)
        rows.append({"key": key, "label": t[CONSISTENCY_KEYS[key]] if key in CONSISTENCY_KEYS else key,
                     "value": text, "flag": flag})
    return rows


def row_view(r: XrayResultRow, t: dict[str, str]) -> dict[str, Any]:
    """A scan as the /xray list shows it."""
    return {
        "scan_id": r.scan_id,
        "url": scan_url(r.scan_id),
        "when": localtime.when(r.scanned_at),
        "scanner_id": r.scanner_id,
        "lane_id": r.lane_id,
        "goods": r.goods,
        "alarm": r.alarm,
        "badge": "HOLD" if r.alarm else "CLEAR",
        "alarm_label": t["xray_alarm"] if r.alarm else t["xray_clear"],
        "score": f"{r.score:.2f}",
        "threshold": f"{r.threshold:.2f}",
        "above": r.score >= r.threshold,
        "findings_count": len(r.findings),
        "crossing_id": r.crossing_id,
        "match": r.match,
        "match_label": t[MATCH_KEYS[r.match]] if r.match in MATCH_KEYS else r.match,
        "match_detail": r.match_detail,
    }


def scan_view(store: Store, r: XrayResultRow, t: dict[str, str]) -> dict[str, Any]:
    """A scan with everything the X-ray section shows."""
    path = store.evidence_path(r.evidence_sha256) if r.evidence_sha256 else None
    has_image = path is not None and path.is_file()
    size = png_size(path) if has_image and path is not None else None
    return row_view(r, t) | {
        "received": localtime.when(r.received_at),
        "anomaly_alarm": r.anomaly_alarm,
        "consistency_alarm": r.consistency_alarm,
        "findings": [{"n": i + 1, "x": f.x, "y": f.y, "w": f.w, "h": f.h, "score": f"{f.score:.2f}",
                      "above": f.score >= r.threshold} for i, f in enumerate(r.findings)],
        "consistency": consistency_view(r.consistency, t),
        "models": r.models,
        "image_url": scan_url(r.scan_id, "/image.png") if has_image else None,
        "width": size[0] if size else None,
        "height": size[1] if size else None,
        "tdr_url": scan_url(r.scan_id, "/tdr.json"),
    }


def scan_views(store: Store, rows: list[XrayResultRow], lang: str) -> list[dict[str, Any]]:
    """The X-ray section's scans (e.g. a crossing's: ``appliance.store.xray_results.for_crossing``)."""
    t = translator(lang)
    return [scan_view(store, r, t) for r in rows]


def list_url(alarm: bool, untied: bool, lang: str, page: int = 1) -> str:
    params: dict[str, str] = {}
    if alarm:
        params["alarm"] = "1"
    if untied:
        params["untied"] = "1"
    if page > 1:
        params["page"] = str(page)
    params["lang"] = lang
    return "/xray?" + urlencode(params)


def xray_router(store: Store, render: Render) -> APIRouter:
    router = APIRouter()
    inspector = [Depends(require_role("inspector"))]

    def found(scan_id: str) -> XrayResultRow:
        r = get_result(store, scan_id)
        if r is None:
            raise HTTPException(404, f"no x-ray scan {scan_id[:MAX_ID]!r}")
        return r

    @router.get("/xray", response_class=HTMLResponse, dependencies=inspector)
    def scans(request: Request, alarm: bool = False, untied: bool = False,
              page: int = Query(1, ge=1, le=1_000_000), lang: str = "vi") -> HTMLResponse:
        t = translator(lang)
        rows, has_next = page_results(store, alarm, untied, (page - 1) * PAGE_SIZE, PAGE_SIZE)
        counts = result_counts(store)
        filters = [
            {"key": "alarm", "label": t["xray_filter_alarm"], "count": counts["alarm"], "on": alarm,
             "href": list_url(not alarm, untied, lang)},
            {"key": "untied", "label": t["xray_filter_untied"], "count": counts["untied"], "on": untied,
             "href": list_url(alarm, not untied, lang)},
        ]
        return render(request, "xray.html", lang, rows=[row_view(r, t) for r in rows], counts=counts,
                      filters=filters, all_href=list_url(False, False, lang), alarm=alarm, untied=untied, page=page,
                      has_next=has_next, prev_href=list_url(alarm, untied, lang, page - 1),
                      next_href=list_url(alarm, untied, lang, page + 1), timezone=localtime.zone().key)

    @router.get("/xray/{scan_id}", response_class=HTMLResponse, dependencies=inspector)
    def scan(request: Request, scan_id: str, lang: str = "vi") -> HTMLResponse:
        r = found(scan_id)
        view = scan_view(store, r, translator(lang))
        return render(request, "xray_scan.html", lang, scan=view, xray=[view], timezone=localtime.zone().key)

    @router.get("/xray/{scan_id}/image.png", dependencies=inspector)
    def image(scan_id: str) -> FileResponse:
        r = found(scan_id)
        path = store.evidence_path(r.evidence_sha256) if r.evidence_sha256 else None
        if path is None or not path.is_file():
            raise HTTPException(404, "this scan has no evidence image")
        media = "image/png" if path.suffix == ".png" else "image/jpeg" if path.suffix == ".jpg" else None
        return FileResponse(path, media_type=media, headers={"Cache-Control": CACHE})

    @router.get("/xray/{scan_id}/tdr.json", dependencies=inspector)
    def tdr(scan_id: str) -> Response:
        r = found(scan_id)
        return Response(r.tdr_json, media_type="application/json", headers={"Cache-Control": "private, no-cache"})

    return router
