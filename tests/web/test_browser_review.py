"""The review workflow in a real headless Chromium: queue, keyboard decisions, corrections, search,
hostile reads. Screenshots go to the test's tmp dir."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Page

from appliance.store.db import Store
from tests.web.review_helpers import CONTROL, IMG, SCRIPT, SQL, add_crossing, add_hostile_crossing
from tests.web.test_browser import sign_in


def test_inspector_approves_from_the_queue_with_the_keyboard(page: Page, live_server: str, store: Store,
                                                             tmp_path: Path) -> None:
    add_crossing(store, "cargo-1-7", "HOLD")  # the newest: first in the queue
    sign_in(page, live_server)
    assert page.locator("#crossings tbody tr").first.get_attribute("data-id") == "cargo-1-7"
    assert page.locator("#pending").inner_text() == "3"
    page.keyboard.press("j")
    assert page.locator("#crossings tbody tr.selected").get_attribute("data-id") == "cargo-1-7"
    page.keyboard.press("Enter")
    page.wait_for_url("**/crossings/cargo-1-7*")
    # Both crops are loaded, each with its reads' boxes drawn over it.
    assert page.locator("figure.crop").count() == 2 and page.locator("rect.read-box").count() == 4
    assert page.locator("figure.crop img.evidence, figure.crop svg image").count() == 2
    assert page.locator("#comparison img.evidence").first.evaluate("img => img.complete && img.naturalWidth > 0")
    page.locator("figure.crop").first.click()
    assert page.locator("figure.crop.zoomed").count() == 1
    page.screenshot(path=str(tmp_path / "zoomed.png"))
    page.keyboard.press("Escape")
    assert page.locator("figure.crop.zoomed").count() == 0
    page.keyboard.press("?")
    assert page.locator("#help").is_visible()
    page.keyboard.press("?")
    assert not page.locator("#help").is_visible()
    page.keyboard.press("a")
    assert page.evaluate("document.activeElement.id") == "approve-reason"
    assert page.locator("#approve-reason").input_value() == ""  # the shortcut key is not typed
    page.keyboard.type("Niêm phong đúng, đã kiểm tra tại chỗ")
    page.keyboard.press("Enter")
    page.wait_for_url("**/crossings/cargo-1-7?*done=approve*")
    assert page.get_by_role("status").inner_text() == "Đã cho qua lượt này."
    assert page.locator("#review-state").inner_text() == "Đã cho qua"
    history = page.locator("#history-table tbody tr")
    assert history.count() == 1 and "Niêm phong đúng, đã kiểm tra tại chỗ" in history.inner_text()
    page.screenshot(path=str(tmp_path / "approved.png"), full_page=True)
    page.keyboard.press("n")  # on to the next crossing still to review
    page.wait_for_url("**/crossings/cargo-1-3*")
    page.goto(live_server + "/")
    assert page.locator("#pending").inner_text() == "2"
    assert page.locator("#crossings tbody tr.pending").count() == 2
    assert (tmp_path / "approved.png").stat().st_size > 10_000


def test_container_correction_checks_the_digit(page: Page, live_server: str, store: Store, tmp_path: Path) -> None:
    page.expected_console.append("status of 400")  # type: ignore[attr-defined]  # a refused form, on purpose
    add_crossing(store, "cargo-1-7", "REVIEW", container="MSKU1234565")
    sign_in(page, live_server, path="/crossings/cargo-1-7?lang=en")
    page.keyboard.press("c")
    assert page.evaluate("document.activeElement.id") == "correct-target"
    page.locator("#correct-target").select_option("container:0")
    page.locator("#correct-value").fill("MSKU1234566")
    page.locator("#correct-reason").fill("paint read on the door")
    page.locator("form#correct button[type=submit]").click()
    alert = page.get_by_role("alert")
    assert alert.inner_text() == "Invalid container number: the ISO 6346 check digit does not match."
    assert page.locator("#correct-value").input_value() == "MSKU1234566"
    page.screenshot(path=str(tmp_path / "bad-check-digit.png"))
    assert store.query("SELECT COUNT(*) FROM decisions")[0][0] == 0
    page.locator("#correct-value").fill("MSKU1234570")
    page.locator("form#correct button[type=submit]").click()
    page.wait_for_url("**done=correct*")
    assert page.get_by_role("status").inner_text() == "Correction saved."
    row = page.locator('#comparison tr[data-field="containers"]')
    assert row.locator("b.corrected").inner_text() == "MSKU1234570"
    assert row.locator("s.original").inner_text() == "MSKU1234565"
    assert "MSKU1234565 → MSKU1234570" in page.locator("#history-table").inner_text()
    assert tuple(store.query("SELECT read_value, value FROM labels")[0]) == ("MSKU1234565", "MSKU1234570")


def test_search_for_a_plate(page: Page, live_server: str, store: Store) -> None:
    add_crossing(store, "cargo-1-7", "CLEAR", plate="29C-123.45")
    sign_in(page, live_server)
    page.get_by_role("link", name="Tra cứu").click()
    page.wait_for_url("**/search*")
    page.get_by_label("Biển số, container, niêm phong, tờ khai").fill("12c 123 45")
    page.get_by_label("Tìm trong").select_option("plate")
    page.locator("form#search select[name=match]").select_option("exact")
    page.get_by_role("button", name="Tra cứu").click()
    page.wait_for_url("**/search?*q=12c*")
    rows = page.locator("#results tbody tr")
    assert rows.count() == 1 and rows.first.get_attribute("data-id") == "cargo-1-1"
    rows.first.locator("a").click()
    page.wait_for_url("**/crossings/cargo-1-1*")
    assert page.locator("#crossing-id").inner_text().startswith("cargo-1-1")


def test_hostile_reads_are_shown_never_run(page: Page, live_server: str, store: Store, tmp_path: Path) -> None:
    sign_in(page, live_server)
    # Arrives while the queue is open: queue.js draws it from /api/queue.
    add_hostile_crossing(store)
    page.wait_for_selector('#crossings tbody tr[data-id="cargo-1-evil"]', timeout=15_000)
    first = page.locator("#crossings tbody tr").first
    assert first.get_attribute("data-id") == "cargo-1-evil"
    assert first.locator("td").nth(4).inner_text() == SCRIPT
    assert page.locator("#pending").inner_text() == "3"
    assert page.evaluate("typeof window.__pwned") == "undefined"
    first.locator("a").click()
    page.wait_for_url("**/crossings/cargo-1-evil*")
    plate = page.locator('#comparison tr[data-field="tractor_plate"]')
    assert plate.locator("b.value").inner_text() == SCRIPT
    assert plate.locator("td.expected").inner_text() == IMG
    assert page.locator('#comparison tr[data-field="seal"] b.value').inner_text() == SQL
    expected_seal = page.locator('#comparison tr[data-field="seal"] td.expected').inner_text()
    assert expected_seal == "A⟨U+0000⟩B⟨U+001B⟩[31mC⟨U+202E⟩D⟨U+0007⟩"  # CONTROL, made visible
    assert CONTROL not in page.content()
    assert IMG in page.locator("figure.crop figcaption").first.inner_text()
    assert page.locator("img[src=x]").count() == 0 and page.locator("main script").count() == 0
    page.screenshot(path=str(tmp_path / "hostile.png"), full_page=True)
    page.goto(live_server + "/search?q=DROP")
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert store.query("SELECT COUNT(*) FROM crossings")[0][0] == 4
