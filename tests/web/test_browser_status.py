"""The lane status page in a real headless Chromium: rows, thumbnails and live refresh, under the
strict CSP (any script error or CSP violation fails the test)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from playwright.sync_api import Page, expect

from appliance.lanes.thumbnails import Thumbnails
from appliance.store.db import Store
from appliance.web.app import WebServices, create_app
from tests.web.auth_helpers import add_user
from tests.web.conftest import free_port, serving
from tests.web.test_browser import sign_in
from tests.web.test_status import lane_status


@pytest.fixture()
def status_server(store: Store) -> Iterator[tuple[str, dict[str, Any], Thumbnails]]:
    """A live server whose lane status the test changes while the page is open."""
    add_user(store, "engineer", "model_engineer")
    add_user(store, "inspector", "inspector")
    status = lane_status()
    thumbs = Thumbnails(every_s=0.0)
    frame = np.zeros((720, 1280, 3), np.uint8)
    frame[200:500, 300:900] = (40, 160, 220)
    thumbs.offer("cargo-1", "front", frame, 1_795_000_000.0)
    port = free_port()
    app = create_app(WebServices(store, "VNHNG", status, thumbnails=thumbs))
    with serving(app, port) as base:
        yield base, status, thumbs


def test_status_page_shows_lanes_sources_and_refreshes(page: Page, status_server: tuple[str, dict[str, Any],
                                                       Thumbnails], tmp_path: Path) -> None:
    base, status, thumbs = status_server
    sign_in(page, base, "engineer", "/status")
    assert page.locator("h2").first.inner_text() == "Tình trạng làn"
    assert page.locator("#status-lanes tbody tr").count() == 1
    rows = page.locator("#status-sources tbody tr")
    assert rows.count() == 2
    front = page.locator('#status-sources tr[data-id="cargo-1/front"]')
    assert front.locator('td[data-key="state_label"]').inner_text() == "Đã kết nối"
    assert front.locator('td[data-key="frames_read"]').inner_text() == "100"
    thumb = front.locator("img.frame-thumb")
    expect(thumb).to_have_js_property("complete", True)
    assert thumb.evaluate("img => img.naturalWidth") == 320
    rear = page.locator('#status-sources tr[data-id="cargo-1/rear"]')
    assert rear.get_attribute("class") == "state-disconnected"
    assert page.locator("#status-models tbody tr").count() == 1
    assert page.locator('[data-inbound="dead_letters"]').inner_text() == "2"
    expect(page.locator("#live")).to_be_visible()  # the first poll came back

    # The lane moves on: the page follows without a reload, the thumbnail with it.
    old_src = thumb.get_attribute("src")
    status["lanes"]["cargo-1"]["sources"] = lane_status(frames_read=250)["lanes"]["cargo-1"]["sources"]
    status["lanes"]["cargo-2"] = {"state": "running", "sources": {}}
    thumbs.offer("cargo-1", "front", np.full((720, 1280, 3), 200, np.uint8), 1_795_000_010.0)
    expect(front.locator('td[data-key="frames_read"]')).to_have_text("250", timeout=10_000)
    expect(page.locator("#status-lanes tbody tr")).to_have_count(2)
    new_thumb = front.locator("img.frame-thumb")
    assert new_thumb.get_attribute("src") != old_src
    expect(new_thumb).to_have_js_property("complete", True)
    page.screenshot(path=str(tmp_path / "status.png"), full_page=True)
    assert (tmp_path / "status.png").stat().st_size > 1000


def test_status_page_in_chinese_from_the_nav(page: Page, status_server: tuple[str, dict[str, Any], Thumbnails]
                                             ) -> None:
    base = status_server[0]
    sign_in(page, base, "inspector", "/?lang=zh")
    page.get_by_role("link", name="车道状态").click()
    page.wait_for_url("**/status?lang=zh")
    expect(page.locator('#status-sources tr[data-id="cargo-1/rear"] td[data-key="state_label"]')).to_have_text("已断开")
    expect(page.locator("#live")).to_be_visible()
    assert page.locator("#timezone").inner_text() == "Asia/Ho_Chi_Minh"
