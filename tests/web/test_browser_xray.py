"""X-ray results in a real headless Chromium: an inspector opens a crossing with an alarm, the evidence
image loads (through the login wall, under the page's CSP) and zooms; the /xray list's alarm filter
leads to a scan's page. Screenshots go to the test's tmp dir."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Page, expect

from appliance.store.db import Store
from tests.web.test_browser import sign_in
from tests.web.test_xray_web import ALARM_FINDINGS, BASE, add_scan


def test_inspector_sees_the_alarm_scan_of_a_crossing(page: Page, live_server: str, store: Store,
                                                      tmp_path: Path) -> None:
    sid, _, _ = add_scan(store, "alarm", BASE + 15, crossing_id="cargo-1-2", match="container", score=2.4,
                         findings=ALARM_FINDINGS)
    untied, _, _ = add_scan(store, "untied", BASE + 4000, score=3.1, findings=(((120, 30, 30, 20), 3.1),))
    add_scan(store, "clear", BASE + 5000, score=0.5)
    sign_in(page, live_server, path="/crossings/cargo-1-2")
    scan = page.locator(f'#xray article.xray-scan[data-scan="{sid}"]')
    expect(scan.locator(".xray-result")).to_have_text("Cảnh báo")
    expect(scan.locator(".xray-findings tbody tr")).to_have_count(2)
    image = scan.locator("img.xray-evidence")
    image.scroll_into_view_if_needed()
    expect(image).to_be_visible()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle())
    assert image.evaluate("img => [img.naturalWidth, img.naturalHeight]") == [384, 96]
    scan.locator("figure.xray-image").click()
    expect(page.locator("figure.xray-image.zoomed")).to_have_count(1)
    assert image.evaluate("img => img.getBoundingClientRect().width") > 1000  # the zoom really enlarges it
    page.screenshot(path=str(tmp_path / "xray-zoomed.png"))
    page.keyboard.press("Escape")
    expect(page.locator("figure.crop.zoomed")).to_have_count(0)
    page.screenshot(path=str(tmp_path / "xray-section.png"), full_page=True)

    page.get_by_role("link", name="X-quang", exact=True).click()
    page.wait_for_url("**/xray?lang=vi")
    expect(page.locator("#scans tbody tr")).to_have_count(3)
    page.get_by_role("link", name="Chỉ cảnh báo (2)").click()
    expect(page.locator("#scans tbody tr")).to_have_count(2)
    page.get_by_role("link", name="Chưa gắn lượt xe (2)").click()
    rows = page.locator("#scans tbody tr")
    expect(rows).to_have_count(1)
    assert rows.first.get_attribute("data-scan") == untied
    page.screenshot(path=str(tmp_path / "xray-list.png"), full_page=True)
    rows.first.locator("a.scan-link").click()
    page.wait_for_url(f"**/xray/{untied}?lang=vi")
    expect(page.locator("#scan-result")).to_have_text("Cảnh báo")
    detail = page.locator("img.xray-evidence")
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=detail.element_handle())
    expect(page.locator(".xray-match")).to_contain_text("Không khớp lượt xe nào")
