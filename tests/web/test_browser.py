"""The inspector's pages in a real headless Chromium (Debian's package, driven by Playwright)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-quic"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is not installed: run scripts/setup.sh (it installs it)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield b
        b.close()


def test_inspector_finds_the_held_crossing_and_its_reason(browser: Browser, live_server: str, tmp_path: Path) -> None:
    page = browser.new_page()
    page.goto(live_server + "/")
    rows = page.locator("#crossings tbody tr")
    assert rows.count() == 3
    assert page.locator("html").get_attribute("lang") == "vi"
    page.get_by_role("link", name="TẠM GIỮ (1)").click()
    assert page.locator("#crossings tbody tr").count() == 1
    page.locator("#crossings tbody tr a").first.click()
    page.wait_for_url("**/crossings/cargo-1-2*")
    assert "seal_mismatch" in page.locator(".reasons").inner_text()
    evidence = page.locator("img.evidence").first
    assert evidence.evaluate("img => img.complete && img.naturalWidth > 0")
    page.screenshot(path=str(tmp_path / "crossing.png"))
    assert (tmp_path / "crossing.png").stat().st_size > 1000


@pytest.mark.parametrize(("lang", "word"), [("en", "Crossings"), ("zh", "通行记录"), ("vi", "Lượt qua cổng")])
def test_language_switch(browser: Browser, live_server: str, lang: str, word: str) -> None:
    page = browser.new_page()
    page.goto(live_server + "/")
    page.get_by_role("link", name=lang.upper(), exact=True).click()
    assert page.locator("h2").first.inner_text() == word
