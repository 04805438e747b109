"""An X-ray alarm that revised a crossing's verdict, as inspectors see it: the queue row (server-rendered and
redrawn by queue.js from /api/queue) carries the X-ray reason in words, the review page lists the reason with
its words and code and says that the verdict was revised and which decision it reopened; in Vietnamese,
English and Chinese. Real SQLite store; the results are saved by ``save_xray_result`` as the processor saves
them; the browser test runs Debian's Chromium against a live uvicorn server."""

from __future__ import annotations

import html
import re

from fastapi.testclient import TestClient
from playwright.sync_api import Page, expect

from appliance.publish.decision_events import DecisionEventBuilder
from appliance.store import decisions
from appliance.store.db import Store
from tests.web.test_browser import sign_in
from tests.web.test_xray_web import ALARM_FINDINGS, BASE, add_scan

WORDS = {
    "vi": ("X-quang: bất thường đạt ngưỡng cảnh báo", "X-quang: hàng hoá không giống hàng khai báo",
           "Kết luận được nâng theo cảnh báo X-quang:", "Quyết định trước của cán bộ đã được mở lại"),
    "en": ("X-ray: anomaly at or above the alarm threshold", "X-ray: goods unlike the declared goods",
           "Verdict revised by an X-ray alarm:", "An inspector's decision was reopened"),
    "zh": ("X光：异常达到报警阈值", "X光：货物与申报品名不符", "X光报警修改了判定：", "检查员此前的决定已重新打开"),
}
GOODS_MISMATCH = {"decided": True, "reason": "", "predicted": "coke", "p_declared": 0.02, "goods_consistent": False,
                  "quantity_estimate": 19.0, "quantity_consistent": True, "score": 0.1, "alarm": True}


def queue_row(html: str, crossing_id: str) -> str:
    match = re.search(rf'<tr data-id="{crossing_id}" class="(\w+)">(.*?)</tr>', html, re.S)
    assert match is not None, f"no queue row for {crossing_id}"
    return match.group(1) + match.group(2)


def test_the_queue_and_the_review_page_show_the_xray_reason(inspector: TestClient, store: Store) -> None:
    inspector.get("/")  # the crossing was CLEAR: not waiting for anyone
    add_scan(store, "alarm", BASE + 5, crossing_id="cargo-1-1", match="plate", score=2.4, findings=ALARM_FINDINGS,
             consistency=GOODS_MISMATCH)
    for lang, (anomaly, goods, revised, _) in WORDS.items():
        row = queue_row(inspector.get("/", params={"lang": lang}).text, "cargo-1-1")
        assert row.startswith("pending")
        assert f'<span class="reason-tag xray-reason" data-code="xray_anomaly">{anomaly}</span>' in row
        assert f'<span class="reason-tag xray-reason" data-code="xray_goods_mismatch">{goods}</span>' in row
        api = inspector.get("/api/queue", params={"lang": lang}).json()
        first = next(r for r in api["rows"] if r["id"] == "cargo-1-1")
        assert first["pending"] and api["pending"] == 3
        assert [x["label"] for x in first["xray_reasons"]] == [anomaly, goods]

        page = inspector.get("/crossings/cargo-1-1", params={"lang": lang}).text
        assert re.search(rf'<li class="REVIEW" data-code="xray_anomaly"><span class="reason-label">{anomaly}</span> '
                         r"<code>xray_anomaly</code>: 2\.40 ≥ 1\.50</li>", page)
        assert re.search(rf'data-code="xray_goods_mismatch"><span class="reason-label">{goods}</span> '
                         r"<code>xray_goods_mismatch</code>: coke &ne; fruit</li>", page)
        revision = re.search(r'<p class="note xray-revision" data-revision="1">(.*?)</p>', page, re.S)
        assert revision is not None and revised in revision.group(1)
        assert '<span class="badge CLEAR">' in revision.group(1) and '<span class="badge REVIEW">' in revision.group(1)
        assert "reopened" not in revision.group(1)  # nobody had decided it
    # A crossing without an X-ray alarm shows no tag.
    assert "xray-reason" not in queue_row(inspector.get("/").text, "cargo-1-3")


def test_a_reopened_decision_is_said_on_the_review_page(inspector: TestClient, store: Store) -> None:
    decisions.record(store, "cargo-1-3", "inspector", "inspector", decisions.DecisionRequest("approve", "ok"),
                     DecisionEventBuilder("VNHNG"))
    assert queue_row(inspector.get("/").text, "cargo-1-3").startswith("decided")
    add_scan(store, "late-alarm", BASE + 25, crossing_id="cargo-1-3", match="container", score=3.0,
             findings=ALARM_FINDINGS)
    assert queue_row(inspector.get("/").text, "cargo-1-3").startswith("pending")
    for lang, (_, _, _, reopened) in WORDS.items():
        page = inspector.get("/crossings/cargo-1-3", params={"lang": lang}).text
        note = re.search(r'<strong class="reopened">(.*?)</strong>', page)
        assert note is not None and reopened in html.unescape(note.group(1))
        history = re.search(r'<table id="history-table">(.*?)</table>', page, re.S)
        assert history is not None and "ok" in history.group(1)  # the earlier decision stays on record


def test_the_live_queue_shows_the_revision_then_the_review_page(page: Page, live_server: str, store: Store) -> None:
    sign_in(page, live_server)
    row = page.locator('#crossings tbody tr[data-id="cargo-1-1"]')
    expect(row).to_have_class("decided")
    # The scan arrives while the inspector looks at the queue: queue.js polls and redraws the row.
    add_scan(store, "alarm", BASE + 5, crossing_id="cargo-1-1", match="plate", score=2.4, findings=ALARM_FINDINGS)
    expect(row).to_have_class("pending", timeout=10_000)
    expect(row.locator(".xray-reason")).to_have_text(WORDS["vi"][0])
    expect(page.locator("#pending")).to_have_text("3")
    row.locator("a").click()
    page.wait_for_url("**/crossings/cargo-1-1?lang=vi")
    expect(page.locator('.reasons li[data-code="xray_anomaly"] .reason-label')).to_have_text(WORDS["vi"][0])
    page.goto(live_server + "/crossings/cargo-1-1?lang=en")
    expect(page.locator('.reasons li[data-code="xray_anomaly"] .reason-label')).to_have_text(WORDS["en"][0])
    expect(page.locator(".xray-revision")).to_contain_text(WORDS["en"][2])
    page.goto(live_server + "/?lang=en")
    expect(page.locator('#crossings tbody tr[data-id="cargo-1-1"] .xray-reason')).to_have_text(WORDS["en"][0])
