"""The inspector's pages in a real headless Chromium (Debian's package, driven by Playwright)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from appliance.store.db import Store
from appliance.store.users import Accounts
from tests.web.auth_helpers import TEST_PASSWORD


def sign_in(page: Page, base: str, username: str = "inspector", path: str = "/") -> None:
    """Log in through the real form (the live server has users "inspector" and "admin")."""
    page.goto(base + path)
    page.wait_for_url("**/login?next=*")
    page.locator('input[name="username"]').fill(username)
    page.locator('input[name="password"]').fill(TEST_PASSWORD)
    page.locator('form.login button[type="submit"]').click()
    page.wait_for_url(base + path)


def test_inspector_finds_the_held_crossing_and_its_reason(browser: Browser, live_server: str, tmp_path: Path) -> None:
    page = browser.new_page()
    sign_in(page, live_server)
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
    sign_in(page, live_server)
    page.get_by_role("link", name=lang.upper(), exact=True).click()
    assert page.locator("h2").first.inner_text() == word


def test_login_form_cookie_and_forbidden_admin_page(browser: Browser, live_server: str) -> None:
    page = browser.new_page()
    page.goto(live_server + "/?decision=HOLD")
    page.wait_for_url("**/login?next=*")
    assert page.locator("h2").inner_text() == "Đăng nhập"  # Vietnamese first
    page.get_by_label("Tên đăng nhập").fill("inspector")
    page.get_by_label("Mật khẩu").fill("not the password at all")
    page.get_by_role("button", name="Đăng nhập").click()
    assert page.get_by_role("alert").inner_text() == "Tên đăng nhập hoặc mật khẩu không đúng."
    sign_in(page, live_server, "inspector", "/?decision=HOLD")
    assert page.locator("#crossings tbody tr").count() == 1
    cookie = next(c for c in page.context.cookies() if c["name"] == "gate_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/"
    assert "gate_session" not in page.evaluate("document.cookie")  # scripts cannot read it
    assert page.get_by_role("link", name="Người dùng").count() == 0  # no admin link for an inspector
    response = page.goto(live_server + "/admin/users")
    assert response is not None and response.status == 403
    assert page.locator("#forbidden").inner_text() == "Không có quyền truy cập"
    page.get_by_role("button", name="Đăng xuất").click()
    page.wait_for_url("**/login*")
    page.goto(live_server + "/")
    assert "/login?next=" in page.url


def test_admin_creates_a_user_in_the_browser(browser: Browser, live_server: str, store: Store) -> None:
    page = browser.new_page()
    sign_in(page, live_server, "admin", "/admin/users?lang=en")
    form = page.locator("form.login")
    form.get_by_label("Username").fill("thu.tran")
    form.get_by_label("Role").select_option("supervisor")
    form.get_by_label("New password").fill("a long passphrase for thu")
    form.get_by_role("button", name="Create user").click()
    page.wait_for_url("**/admin/users?done=created*")
    assert page.get_by_role("status").inner_text() == "User created."
    assert page.locator('#users tr[data-username="thu.tran"]').count() == 1
    row = Accounts(store).get("thu.tran")
    assert row is not None and row.role == "supervisor"


ATTACK = b"""<!doctype html><html><body>
<form id="f" method="post" action="%s/admin/users">
<input name="username" value="mallory"><input name="role" value="admin">
<input name="password" value="mallory's long password"></form>
<script>document.getElementById("f").submit()</script></body></html>"""


def test_cross_site_form_post_is_refused(browser: Browser, live_server: str, store: Store) -> None:
    """A page on another origin (same site: 127.0.0.1, another port) auto-posts to the admin form."""
    page = browser.new_page()
    sign_in(page, live_server, "admin", "/admin/users")

    class Attacker(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = ATTACK % live_server.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    evil = HTTPServer(("127.0.0.1", 0), Attacker)
    threading.Thread(target=evil.serve_forever, daemon=True).start()
    try:
        target = live_server + "/admin/users"
        with page.expect_response(lambda r: r.url == target and r.request.method == "POST") as info:
            page.goto(f"http://127.0.0.1:{evil.server_address[1]}/")
        # The session cookie went along (same site), so only the CSRF check stopped it: 403, not a login redirect.
        assert info.value.status == 403
        assert info.value.request.headers["origin"] == f"http://127.0.0.1:{evil.server_address[1]}"
    finally:
        evil.shutdown()
        evil.server_close()
    assert Accounts(store).get("mallory") is None
