"""X-ray results in the web UI, on a real SQLite store with real evidence PNGs: the X-ray section of a
crossing's review page (only where the crossing has scans; ALARM or clear; score against threshold,
findings, goods, scanner, how it was tied), the evidence image route (inspectors and above, private
caching, the stored PNG's bytes), the stored TDR, the /xray list and its filters, a scan's page,
times in the site's zone, and odd or hostile stored values that must show, never break a page."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from babel.dates import format_datetime
from fastapi import FastAPI
from fastapi.testclient import TestClient

from appliance.store.db import Store
from appliance.store.xray_results import for_crossing, get_result, page_results, result_counts
from appliance.web import xray as xray_web
from appliance.web.app import WebServices, create_app
from appliance.xray.anomaly import AnomalyResult, Finding
from appliance.xray.results import XrayReport, heat_overlay_png, save_xray_result
from appliance.xray.scan import ScanMeta
from tests.web.auth_helpers import logged_in

BASE = 1_795_000_000.0  # the seeded crossings (conftest.seed_store) end at BASE + 3, + 13, + 23
MODEL = "xray-anomaly/knn-fruit@3"
SCRIPT = "<script>window.__pwned=1</script>"


def scan_id(name: str) -> str:
    """Scan ids are the sha256 of the raw image as received."""
    return hashlib.sha256(name.encode()).hexdigest()


def evidence_png(findings: list[Finding], score: float, threshold: float) -> tuple[bytes, AnomalyResult]:
    """A real evidence image, rendered by the processor's own code: grey scan, heat map, findings boxed."""
    rng = np.random.default_rng(len(findings))
    high = np.full((96, 384), 0.3, np.float32)
    high[16:80, 24:360] = 1.2 + 0.1 * rng.random((64, 336), dtype=np.float32)
    heat = np.full((12, 48), 0.8, np.float32)
    for f in findings:
        x, y, w, h = f.box
        heat[y // 8:(y + h) // 8 + 1, x // 8:(x + w) // 8 + 1] = f.score
    result = AnomalyResult(score, threshold, score >= threshold, "fruit", [(24, 16, 336, 64)], findings, heat, 8.0)
    png = heat_overlay_png(high, result)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    return png, result


def add_scan(store: Store, name: str, scanned_at: float, *, crossing_id: str | None = None, match: str = "none",
             match_detail: str | None = None, score: float = 0.9, threshold: float = 1.5,
             findings: tuple[tuple[tuple[int, int, int, int], float], ...] = (), goods: str = "fruit",
             scanner_id: str = "XR-HN-01", consistency: dict[str, Any] | None = None,
             evidence: bool = True) -> tuple[str, bytes | None, dict[str, Any]]:
    """Store one X-ray result as the processor does (appliance.xray.results.save_xray_result):
    (scan id, the evidence PNG or None, the TDR)."""
    sid = scan_id(name)
    png, anomaly = evidence_png([Finding(b, s) for b, s in findings], score, threshold)
    anomaly.goods = goods
    sha = store.put_evidence(png, "image/png") if evidence else None
    detail = match_detail or ("the scan names no container and no plate" if match == "none"
                              else f"{match} MWCU6059784 within 3600 s")
    meta = ScanMeta(scanner_id, scanned_at, "cargo-1", containers=("MWCU6059784",), declared_goods=goods)
    report = XrayReport(sid, meta, anomaly, crossing_id, match, detail, [MODEL], sha, consistency,
                        received_at=scanned_at + 2.5)
    return sid, (png if evidence else None), save_xray_result(store, report, None)


ALARM_FINDINGS = (((80, 24, 40, 24), 2.4), ((200, 40, 24, 16), 1.2))


@pytest.fixture()
def scans(store: Store) -> dict[str, tuple[str, bytes | None, dict[str, Any]]]:
    """cargo-1-2 (HOLD): an alarm tied by container; cargo-1-1: a clear scan tied by plate; two scans tied to
    no crossing (an alarm, a clear one); cargo-1-3 has none."""
    return {
        "alarm": add_scan(store, "alarm", BASE + 15, crossing_id="cargo-1-2", match="container", score=2.4,
                          findings=ALARM_FINDINGS),
        "clear": add_scan(store, "clear", BASE + 5, crossing_id="cargo-1-1", match="plate", score=0.82,
                          goods="electronics", scanner_id="XR-HN-02"),
        "untied_alarm": add_scan(store, "untied-alarm", BASE + 4000, score=3.1, findings=(((120, 30, 30, 20), 3.1),),
                                 match_detail="no crossing within 3600 s has container MSKU1234565"),
        "untied_clear": add_scan(store, "untied-clear", BASE + 5000, score=0.5),
    }


def section(html: str) -> str:
    match = re.search(r'<section class="xray" id="xray">(.*?)</section>', html, re.S)
    assert match is not None, "no X-ray section"
    return match.group(1)


# --- the crossing's review page -------------------------------------------------------------------


def test_the_crossing_page_shows_its_alarm_scan(inspector: TestClient, scans: dict) -> None:
    sid = scans["alarm"][0]
    resp = inspector.get("/crossings/cargo-1-2")
    assert resp.status_code == 200
    part = section(resp.text)
    assert part.count('class="xray-scan"') == 1 and f'data-scan="{sid}"' in part
    assert '<span class="badge HOLD xray-result">Cảnh báo</span>' in part and "Không phát hiện bất thường" not in part
    assert re.search(r'<b class="flag mismatch">2\.40</b> ≥ 1\.50', part)
    assert '<dd class="xray-findings-count">2</dd>' in part
    assert "<code>80, 24, 40 &times; 24</code>" in part and "<code>200, 40, 24 &times; 16</code>" in part
    assert part.count("(vượt ngưỡng)") == 1  # 2.40 is above the threshold, 1.20 is not
    assert '<dd class="xray-goods">fruit</dd>' in part
    assert "XR-HN-01" in part and "theo số container" in part and "container MWCU6059784 within 3600 s" in part
    assert f'src="/xray/{sid}/image.png"' in part and 'width="384" height="96"' in part  # the PNG's own size
    assert f'href="/xray/{sid}/tdr.json"' in part and MODEL in part
    assert 'href="/xray?lang=vi"' in resp.text  # the nav link


def test_the_crossing_page_shows_a_clear_scan_as_clear(inspector: TestClient, scans: dict) -> None:
    part = section(inspector.get("/crossings/cargo-1-1").text)
    assert '<span class="badge CLEAR xray-result">Không phát hiện bất thường</span>' in part
    assert "Cảnh báo" not in part and "badge HOLD" not in part
    assert re.search(r'<b class="flag match">0\.82</b> &lt; 1\.50', part)
    assert "Không có vùng nghi vấn." in part and "electronics" in part and "theo biển số" in part


def test_no_section_on_a_crossing_without_scans(inspector: TestClient, scans: dict) -> None:
    html = inspector.get("/crossings/cargo-1-3").text
    assert 'id="xray"' not in html and "/image.png" not in html


def test_the_section_in_english_and_chinese(inspector: TestClient, scans: dict) -> None:
    en = section(inspector.get("/crossings/cargo-1-2?lang=en").text)
    assert ">ALARM<" in en and "Anomaly score / operating threshold" in en and "by container number" in en
    zh = section(inspector.get("/crossings/cargo-1-1?lang=zh").text)
    assert ">未发现异常<" in zh and "申报货物" in zh and "按车牌号" in zh


def test_a_consistency_alarm_is_an_alarm_and_shows_the_check(inspector: TestClient, store: Store) -> None:
    consistency = {"p_declared": 0.031, "predicted": "electronics", "goods_consistent": False,
                   "quantity_estimate": 412.4, "quantity_consistent": True, "alarm": True, "extra_note": "v2"}
    sid, _, report = add_scan(store, "mismatch", BASE + 16, crossing_id="cargo-1-2", match="container", score=0.7,
                              consistency=consistency)
    assert report["AlarmDecision"] == "ALARM"
    row = get_result(store, sid)
    assert row is not None and row.alarm and not row.anomaly_alarm
    part = section(inspector.get("/crossings/cargo-1-2").text)
    assert ">Cảnh báo<" in part and "Cảnh báo do hàng hoá không khớp tờ khai" in part
    assert '<dd data-key="p_declared">0.031</dd>' in part
    assert '<dd data-key="predicted">electronics</dd>' in part
    assert '<dd data-key="goods_consistent"><span class="flag mismatch">Không</span></dd>' in part
    assert '<dd data-key="quantity_estimate">412</dd>' in part
    assert '<dd data-key="quantity_consistent"><span class="flag match">Có</span></dd>' in part
    assert "<dt>extra_note</dt>" in part  # an unknown key shows as itself
    assert result_counts(store)["alarm"] == 1
    assert [r.scan_id for r in page_results(store, alarms_only=True)[0]] == [sid]


# --- the evidence image and the TDR -----------------------------------------------------------------


def test_the_image_route_answers_the_stored_png_to_inspectors_only(web_app: FastAPI, store: Store,
                                                                   inspector: TestClient, scans: dict) -> None:
    sid, png, _ = scans["alarm"]
    resp = inspector.get(f"/xray/{sid}/image.png")
    assert resp.status_code == 200 and resp.content == png
    assert resp.headers["content-type"] == "image/png"
    assert resp.headers["cache-control"].startswith("private")
    for role in ("supervisor", "admin"):
        assert logged_in(web_app, store, role).get(f"/xray/{sid}/image.png").content == png
    anonymous = TestClient(web_app).get(f"/xray/{sid}/image.png", follow_redirects=False)
    assert anonymous.status_code in (303, 401) and anonymous.content != png
    if anonymous.status_code == 303:
        assert anonymous.headers["location"].startswith("/login?next=")
    engineer = logged_in(web_app, store, "model_engineer")
    refused = engineer.get(f"/xray/{sid}/image.png")
    assert refused.status_code == 403 and refused.content != png
    assert engineer.get("/xray").status_code == 403 and engineer.get(f"/xray/{sid}").status_code == 403
    assert 'href="/xray?' not in engineer.get("/status").text  # no nav link either


def test_unknown_scans_and_missing_images_are_404(inspector: TestClient, store: Store, scans: dict) -> None:
    unknown = scan_id("never-scanned")
    for tail in ("", "/image.png", "/tdr.json"):
        assert inspector.get(f"/xray/{unknown}{tail}").status_code == 404
    sid, _, _ = add_scan(store, "no-evidence", BASE + 6000, evidence=False)
    assert inspector.get(f"/xray/{sid}/image.png").status_code == 404
    page = inspector.get(f"/xray/{sid}")
    assert page.status_code == 200 and "Không có ảnh bằng chứng cho lần soi này." in page.text
    assert "/image.png" not in page.text


def test_the_tdr_route_answers_the_stored_report(web_app: FastAPI, inspector: TestClient, store: Store,
                                                 scans: dict) -> None:
    sid, _, report = scans["alarm"]
    resp = inspector.get(f"/xray/{sid}/tdr.json")
    assert resp.status_code == 200 and resp.headers["content-type"] == "application/json"
    assert resp.headers["cache-control"].startswith("private")
    stored = store.query("SELECT tdr_json FROM xray_results WHERE scan_id = ?", (sid,))[0][0]
    assert resp.text == stored and resp.json() == report
    assert report["AlarmDecision"] == "ALARM" and report["NumberOfAlarmObjects"] == 1
    assert [o["BoundingBox"]["x"] for o in report["PotentialThreatObjects"]] == [80, 200]
    assert TestClient(web_app).get(f"/xray/{sid}/tdr.json", follow_redirects=False).status_code in (303, 401)


# --- /xray and a scan's page ------------------------------------------------------------------------


def listed(client: TestClient, query: str = "") -> list[str]:
    resp = client.get(f"/xray{query}")
    assert resp.status_code == 200, resp.text
    return re.findall(r'<tr data-scan="([0-9a-f]{64})"', resp.text)


def test_the_list_is_newest_first_and_filters(inspector: TestClient, scans: dict) -> None:
    ids = {k: v[0] for k, v in scans.items()}
    assert listed(inspector) == [ids["untied_clear"], ids["untied_alarm"], ids["alarm"], ids["clear"]]
    assert listed(inspector, "?alarm=1") == [ids["untied_alarm"], ids["alarm"]]
    assert listed(inspector, "?untied=1") == [ids["untied_clear"], ids["untied_alarm"]]
    assert listed(inspector, "?alarm=1&untied=1") == [ids["untied_alarm"]]
    html = inspector.get("/xray?alarm=1").text
    assert '<span data-count="all">4</span>' in html and '<span data-count="alarm">2</span>' in html
    assert '<span data-count="untied">2</span>' in html
    # The filter links toggle one filter and keep the other.
    assert 'id="filter-alarm" href="/xray?lang=vi" aria-current="true"' in html
    assert 'id="filter-untied" href="/xray?alarm=1&amp;untied=1&amp;lang=vi"' in html
    assert listed(inspector, "?alarm=0&untied=1") == [ids["untied_clear"], ids["untied_alarm"]]
    assert inspector.get("/xray?alarm=maybe").status_code == 422


def test_list_rows_link_to_the_crossing_and_the_scan(inspector: TestClient, scans: dict) -> None:
    html = inspector.get("/xray").text
    rows = {m.group(1): m.group(0) for m in re.finditer(r'<tr data-scan="([0-9a-f]{64})".*?</tr>', html, re.S)}
    tied, untied = rows[scans["alarm"][0]], rows[scans["untied_alarm"][0]]
    assert 'href="/crossings/cargo-1-2?lang=vi"' in tied and f'href="/xray/{scans["alarm"][0]}?lang=vi"' in tied
    assert "/crossings/" not in untied and "Không khớp lượt xe nào" in untied
    assert "no crossing within 3600 s has container MSKU1234565" in untied
    assert '<span class="badge HOLD">Cảnh báo</span>' in untied
    assert '<span class="badge CLEAR">Không phát hiện bất thường</span>' in rows[scans["clear"][0]]


def test_the_list_pages(inspector: TestClient, scans: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(xray_web, "PAGE_SIZE", 3)
    first, second = inspector.get("/xray").text, inspector.get("/xray?page=2").text
    assert len(re.findall(r"<tr data-scan=", first)) == 3 and 'rel="next" href="/xray?page=2&amp;lang=vi"' in first
    assert len(re.findall(r"<tr data-scan=", second)) == 1 and 'rel="next"' not in second
    assert listed(inspector, "?page=2") == [scans["clear"][0]]


def test_a_scan_page_shows_the_same_section(inspector: TestClient, scans: dict) -> None:
    sid = scans["alarm"][0]
    html = inspector.get(f"/xray/{sid}").text
    assert f"<code>{sid}</code>" in html and 'id="scan-result">Cảnh báo<' in html
    assert 'id="xray-crossing" href="/crossings/cargo-1-2?lang=vi"' in html
    part = section(html)
    assert f'src="/xray/{sid}/image.png"' in part and '<dd class="xray-findings-count">2</dd>' in part
    untied = inspector.get(f"/xray/{scans['untied_clear'][0]}?lang=en").text
    assert 'id="xray-crossing"' not in untied and "No matching crossing" in untied
    assert ">Clear: no anomaly found<" in untied


def test_times_in_the_site_timezone(store: Store, scans: dict) -> None:
    client = logged_in(create_app(WebServices(store, "VNHNG", timezone="Asia/Shanghai")), store, "inspector")
    when = dt.datetime.fromtimestamp(BASE + 15, dt.UTC)
    local = format_datetime(when, "medium", tzinfo=ZoneInfo("Asia/Shanghai"), locale="vi")
    other = format_datetime(when, "medium", tzinfo=ZoneInfo("Asia/Ho_Chi_Minh"), locale="vi")
    assert local != other
    sid = scans["alarm"][0]
    for html in (client.get("/xray").text, client.get(f"/xray/{sid}").text, client.get("/crossings/cargo-1-2").text):
        assert local in html and other not in html
    assert 'id="timezone">Asia/Shanghai<' in client.get("/xray").text
    part = section(client.get("/crossings/cargo-1-2").text)
    assert f'<dd class="xray-when">{local}</dd>' in part


# --- odd and hostile stored values ---------------------------------------------------------------------


def test_hostile_values_are_shown_escaped(inspector: TestClient, store: Store) -> None:
    sid, _, _ = add_scan(store, "hostile", BASE + 17, crossing_id="cargo-1-2", match="container", goods=SCRIPT,
                         scanner_id="<img src=x onerror=alert(1)>", match_detail=SCRIPT,
                         consistency={"predicted": SCRIPT, "<b>": 1})
    for path in ("/crossings/cargo-1-2", f"/xray/{sid}", "/xray"):
        html = inspector.get(path).text
        assert SCRIPT not in html and "<img src=x" not in html and "<dt><b></dt>" not in html
        assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in html


def test_a_row_with_broken_json_still_shows(inspector: TestClient, store: Store) -> None:
    sid = scan_id("broken")
    with store.transaction() as conn:
        conn.execute(
            "INSERT INTO xray_results (scan_id, scanner_id, lane_id, scanned_at, received_at, crossing_id, match, "
            "match_detail, alarm, score, threshold, goods, findings_json, consistency_json, models_json, "
            "evidence_sha256, tdr_json) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (sid, "XR-9", None, BASE + 18, BASE + 19, "cargo-1-2", "plate", "plate 29C12345 within 3600 s", 1, 1.9,
             1.5, None, "[{bad", "{not json", "nope", None, json.dumps({"AlarmDecision": "ALARM"})))
    row = get_result(store, sid)
    assert row is not None and row.findings == [] and row.consistency is None and row.models == []
    assert [r.scan_id for r in for_crossing(store, "cargo-1-2")] == [sid]
    assert listed(inspector, "?alarm=1") == [sid]
    assert section(inspector.get("/crossings/cargo-1-2").text).count('class="xray-scan"') == 1
    assert inspector.get(f"/xray/{sid}").status_code == 200
    assert inspector.get(f"/xray/{sid}/tdr.json").json() == {"AlarmDecision": "ALARM"}


def test_png_size_reads_the_header(tmp_path: Path) -> None:
    png, _ = evidence_png([], 0.5, 1.5)
    (tmp_path / "a.png").write_bytes(png)
    (tmp_path / "b.png").write_bytes(b"not a png at all, just some bytes")
    assert xray_web.png_size(tmp_path / "a.png") == (384, 96)
    assert xray_web.png_size(tmp_path / "b.png") is None and xray_web.png_size(tmp_path / "none.png") is None
