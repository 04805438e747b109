"""The login wall, roles, CSRF, rate limiting and sessions of the web UI (TestClient)."""

from __future__ import annotations

import re
import time

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from appliance.store.db import Store
from appliance.store.users import LoginPolicy
from appliance.web.app import WebServices, create_app
from appliance.web.auth import AuthSettings, safe_next
from appliance.web.i18n import LANGUAGES, TEXT
from tests.web.auth_helpers import TEST_PASSWORD, add_user, form_token, login

FAILED = "Tên đăng nhập hoặc mật khẩu không đúng."
LOCKED = "Đăng nhập sai quá nhiều lần"
NEW_PASSWORD = "another long passphrase"


def csrf(client: TestClient) -> str:
    return str(client.get("/api/me").json()["csrf_token"])


def try_login(client: TestClient, username: str, password: str, **extra: str) -> httpx.Response:
    token = form_token(client.get("/login").text)
    return client.post("/login", data={"username": username, "password": password, "csrf_token": token, **extra},
                       follow_redirects=False)


def evidence_sha(store: Store) -> str:
    row = store.get_crossing("cargo-1-1")
    assert row is not None
    return str(row.summary["tractor_plate"]["evidence"])


# --- the login wall ---------------------------------------------------------------------------------


def test_everything_but_login_and_static_needs_a_session(web_app: FastAPI, store: Store) -> None:
    c = TestClient(web_app)
    for path in ["/", "/crossings/cargo-1-2", "/admin/users", "/?decision=HOLD&lang=en"]:
        resp = c.get(path, follow_redirects=False)
        assert resp.status_code == 303, path
        assert resp.headers["location"].startswith("/login?next=%2F"), path
    assert "lang=en" in c.get("/?lang=en", follow_redirects=False).headers["location"]
    for path in ["/api/crossings", "/api/crossings/cargo-1-2", "/api/status", "/api/me", "/api/docs",
                 "/api/openapi.json", f"/evidence/{evidence_sha(store)}"]:
        resp = c.get(path, follow_redirects=False)
        assert resp.status_code == 401, path
        assert resp.json() == {"detail": "authentication required"}
    assert c.post("/api/crossings", follow_redirects=False).status_code == 401
    assert c.get("/login").status_code == 200
    assert c.get("/static/app.css").status_code == 200
    # A made-up cookie is no session.
    c.cookies.set("gate_session", "not-a-session")
    assert c.get("/api/status").status_code == 401


def test_login_sets_a_strict_httponly_cookie_and_redirects_to_next(web_app: FastAPI, store: Store) -> None:
    add_user(store, "inspector", "inspector")
    c = TestClient(web_app)
    resp = try_login(c, "Inspector ", TEST_PASSWORD, next="/crossings/cargo-1-2?lang=en")
    assert resp.status_code == 303
    assert resp.headers["location"] == "/crossings/cargo-1-2?lang=en"
    cookie = resp.headers["set-cookie"].lower()
    assert "gate_session=" in cookie and "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie
    assert "secure" not in cookie  # plain http (auto)
    page = c.get("/crossings/cargo-1-2?lang=en")
    assert page.status_code == 200 and "seal_mismatch" in page.text
    assert page.headers["cache-control"] == "no-store" and page.headers["x-frame-options"] == "DENY"
    assert c.get("/api/me").json()["username"] == "inspector"


def test_secure_cookie_over_https_or_when_configured(store: Store) -> None:
    add_user(store, "inspector", "inspector")
    https = TestClient(create_app(WebServices(store, "VNHNG")), base_url="https://testserver")
    assert "secure" in try_login(https, "inspector", TEST_PASSWORD).headers["set-cookie"].lower()
    http, tls = (Request({"type": "http", "scheme": scheme, "path": "/", "headers": [(b"host", b"gate")]})
                 for scheme in ("http", "https"))
    assert AuthSettings(secure_cookie="always").secure(http)  # behind a TLS proxy that does not say so
    assert not AuthSettings(secure_cookie="never").secure(tls)
    assert AuthSettings().secure(tls) and not AuthSettings().secure(http)


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "/\\evil.example", "javascript:x", "",
                                    "/ok\r\nSet-Cookie: x=1"])
def test_next_must_be_a_local_path(target: str) -> None:
    assert safe_next(target) == "/"
    assert safe_next("/crossings/a?lang=zh") == "/crossings/a?lang=zh"


def test_wrong_password_and_unknown_user_look_the_same(web_app: FastAPI, store: Store) -> None:
    add_user(store, "inspector", "inspector")
    add_user(store, "gone", "inspector")
    web_app.state.accounts.set_disabled("gone", True, actor="test")
    c = TestClient(web_app)
    wrong = try_login(c, "inspector", "not the password at all")
    unknown = try_login(c, "nobody", "not the password at all")
    disabled = try_login(c, "gone", TEST_PASSWORD)
    for resp in (wrong, unknown, disabled):
        assert resp.status_code == 401
        assert FAILED in resp.text
        assert "gate_session" not in resp.headers.get("set-cookie", "")
    assert wrong.text.replace("inspector", "X") == unknown.text.replace("nobody", "X")
    assert c.get("/api/status").status_code == 401


def test_repeated_failures_lock_the_account_and_survive_a_restart(web_app: FastAPI, store: Store) -> None:
    add_user(store, "inspector", "inspector")
    c = TestClient(web_app)
    for _ in range(5):
        assert try_login(c, "inspector", "wrong wrong wrong").status_code == 401
    locked = try_login(c, "inspector", TEST_PASSWORD)  # even the right password
    assert locked.status_code == 429 and LOCKED in locked.text
    # A restarted web app (same store) still refuses; once the window has passed, the login works.
    again = create_app(WebServices(store, "VNHNG"))
    assert try_login(TestClient(again), "inspector", TEST_PASSWORD).status_code == 429
    again.state.accounts.clock = lambda: time.time() + 16 * 60
    assert try_login(TestClient(again), "inspector", TEST_PASSWORD).status_code == 303


def test_failures_from_one_client_lock_that_client(store: Store) -> None:
    add_user(store, "inspector", "inspector")
    app = create_app(WebServices(store, "VNHNG", auth=AuthSettings(policy=LoginPolicy(max_failures_per_ip=3))))
    c = TestClient(app)
    for name in ["a-user", "b-user", "c-user"]:
        assert try_login(c, name, "wrong wrong wrong").status_code == 401
    assert try_login(c, "inspector", TEST_PASSWORD).status_code == 429


# --- roles ------------------------------------------------------------------------------------------


def test_inspector_cannot_do_admin_things(inspector: TestClient, store: Store, web_app: FastAPI) -> None:
    page = inspector.get("/admin/users")
    assert page.status_code == 403 and "Không có quyền truy cập" in page.text
    token = csrf(inspector)
    resp = inspector.post("/admin/users", data={"username": "mallory", "role": "admin", "password": "x" * 16,
                                                "csrf_token": token}, follow_redirects=False)
    assert resp.status_code == 403
    add_user(store, "admin", "admin")
    for action, data in [("disable", {}), ("password", {"password": "y" * 16})]:
        resp = inspector.post(f"/admin/users/admin/{action}", data={**data, "csrf_token": token})
        assert resp.status_code == 403
    accounts = web_app.state.accounts
    assert accounts.get("mallory") is None
    assert accounts.get("admin") is not None and not accounts.get("admin").disabled
    assert inspector.get("/").status_code == 200  # still an inspector


def test_role_grants(web_app: FastAPI, store: Store) -> None:
    add_user(store, "boss", "supervisor")
    add_user(store, "eng", "model_engineer")
    boss, eng = login(TestClient(web_app), "boss"), login(TestClient(web_app), "eng")
    assert boss.get("/api/crossings").status_code == 200
    assert boss.get("/admin/users").status_code == 403
    assert eng.get("/api/crossings").status_code == 403  # model engineers have their own pages
    assert eng.get("/api/status").status_code == 200


def test_admin_manages_users(admin: TestClient, web_app: FastAPI) -> None:
    token = csrf(admin)
    resp = admin.post("/admin/users", data={"username": "lan.nguyen", "role": "supervisor",
                                            "password": NEW_PASSWORD, "csrf_token": token}, follow_redirects=False)
    assert resp.status_code == 303 and resp.headers["location"].startswith("/admin/users?done=created")
    listing = admin.get("/admin/users?lang=en").text
    assert "lan.nguyen" in listing and "Supervisor" in listing
    short = admin.post("/admin/users", data={"username": "short", "role": "inspector", "password": "short",
                                             "csrf_token": token})
    assert short.status_code == 400 and "12" in short.text
    dupe = admin.post("/admin/users", data={"username": "lan.nguyen", "role": "inspector", "password": NEW_PASSWORD,
                                            "csrf_token": token})
    assert dupe.status_code == 400
    assert admin.post("/admin/users/admin/disable", data={"csrf_token": token}).status_code == 400  # not yourself

    lan = login(TestClient(web_app), "lan.nguyen", NEW_PASSWORD)
    assert lan.get("/").status_code == 200
    assert admin.post("/admin/users/lan.nguyen/password",
                      data={"password": "a third long passphrase", "csrf_token": token}).status_code == 200
    assert lan.get("/api/status").status_code == 401  # a reset ends the user's sessions
    lan = login(TestClient(web_app), "lan.nguyen", "a third long passphrase")
    assert admin.post("/admin/users/lan.nguyen/disable", data={"csrf_token": token}).status_code == 200
    assert lan.get("/api/status").status_code == 401
    assert try_login(TestClient(web_app), "lan.nguyen", "a third long passphrase").status_code == 401
    assert admin.post("/admin/users/nobody/disable", data={"csrf_token": token}).status_code == 404


# --- CSRF -------------------------------------------------------------------------------------------


def create(client: TestClient, username: str, headers: dict[str, str] | None = None, **data: str) -> int:
    form = {"username": username, "role": "inspector", "password": NEW_PASSWORD, **data}
    return client.post("/admin/users", data=form, headers=headers or {}, follow_redirects=False).status_code


def test_forged_posts_are_refused_even_with_a_session(admin: TestClient, web_app: FastAPI) -> None:
    token = csrf(admin)
    assert create(admin, "no-token") == 403
    assert create(admin, "bad-token", csrf_token="x" * len(token)) == 403
    assert create(admin, "other-sessions-token", csrf_token=form_token(TestClient(web_app).get("/login").text)) == 403
    assert create(admin, "foreign-origin", {"Origin": "http://evil.example"}, csrf_token=token) == 403
    assert create(admin, "null-origin", {"Origin": "null"}, csrf_token=token) == 403
    assert create(admin, "foreign-referer", {"Referer": "http://evil.example/form"}, csrf_token=token) == 403
    assert admin.post("/logout", follow_redirects=False).status_code == 403  # logout is a state change too
    accounts = web_app.state.accounts
    assert [u.username for u in accounts.list_users()] == ["admin"]
    # The same request with the token (field or header) and a same-origin Origin goes through.
    assert create(admin, "by-field", {"Origin": "http://testserver"}, csrf_token=token) == 303
    assert create(admin, "by-header", {"X-CSRF-Token": token, "Referer": "http://testserver/admin/users"}) == 303
    assert {"by-field", "by-header"} <= {u.username for u in accounts.list_users()}


def test_login_form_has_its_own_csrf_check(web_app: FastAPI, store: Store) -> None:
    add_user(store, "inspector", "inspector")
    c = TestClient(web_app)
    c.get("/login")
    resp = c.post("/login", data={"username": "inspector", "password": TEST_PASSWORD}, follow_redirects=False)
    assert resp.status_code == 403
    resp = try_login(c, "inspector", TEST_PASSWORD, next="/")
    assert resp.status_code == 303
    token = form_token(TestClient(web_app).get("/login").text)
    foreign = c.post("/login", data={"username": "inspector", "password": TEST_PASSWORD, "csrf_token": token},
                     headers={"Origin": "http://evil.example"}, follow_redirects=False)
    assert foreign.status_code == 403


# --- sessions ---------------------------------------------------------------------------------------


def test_logout_ends_the_session(inspector: TestClient, web_app: FastAPI) -> None:
    cookie = inspector.cookies["gate_session"]
    resp = inspector.post("/logout", data={"csrf_token": csrf(inspector)}, follow_redirects=False)
    assert resp.status_code == 303 and resp.headers["location"].startswith("/login")
    replay = TestClient(web_app)
    replay.cookies.set("gate_session", cookie)
    assert replay.get("/api/status").status_code == 401
    assert replay.get("/", follow_redirects=False).status_code == 303


def test_sessions_expire_when_idle_and_after_the_maximum(inspector: TestClient, web_app: FastAPI) -> None:
    accounts = web_app.state.accounts
    start = time.time()
    for minutes in (20, 40, 60):  # each request within the 30 min idle timeout keeps it alive
        accounts.clock = lambda m=minutes: start + m * 60
        assert inspector.get("/api/status").status_code == 200
    accounts.clock = lambda: start + 60 * 60 + 31 * 60
    assert inspector.get("/api/status").status_code == 401
    fresh = login(TestClient(web_app), "inspector")
    t = accounts.clock()
    for hours in range(1, 12):
        accounts.clock = lambda h=hours: t + h * 3600 - 60
        fresh.get("/api/status")
        accounts.clock = lambda h=hours: t + h * 3600
        fresh.get("/api/status")
    accounts.clock = lambda: t + 12 * 3600 + 1
    assert fresh.get("/api/status").status_code == 401


def test_audit_records_logins_and_account_changes(admin: TestClient, web_app: FastAPI, store: Store) -> None:
    token = csrf(admin)
    try_login(TestClient(web_app), "admin", "a wrong password here")
    create(admin, "hoa", csrf_token=token)
    admin.post("/admin/users/hoa/password", data={"password": "yet another passphrase", "csrf_token": token})
    admin.post("/admin/users/hoa/disable", data={"csrf_token": token})
    admin.post("/logout", data={"csrf_token": token})
    rows = store.query("SELECT actor, action, target, details_json FROM audit_log ORDER BY id")
    actions = [(r[0], r[1], r[2]) for r in rows]
    assert ("test", "user_created", "admin") in actions and ("admin", "login", "admin") in actions
    assert actions[-5:] == [("anonymous", "login_failed", "admin"), ("admin", "user_created", "hoa"),
                            ("admin", "password_reset", "hoa"), ("admin", "user_disabled", "hoa"),
                            ("admin", "logout", "admin")]
    dump = repr([tuple(r) for r in store.query("SELECT * FROM audit_log")])
    for secret in (TEST_PASSWORD, NEW_PASSWORD, "yet another passphrase", "a wrong password here", "$argon2"):
        assert secret not in dump
    assert store.verify_audit_chain() is None


def test_every_account_message_is_translated() -> None:
    import inspect

    from appliance.store import users
    from appliance.web import admin

    codes = {"login_failed", "login_locked", "forbidden", "forbidden_text", "cannot_disable_self"}
    for module in (users, admin):  # every AccountError code and page error is UI text
        src = inspect.getsource(module)
        codes |= set(re.findall(r'AccountError\("([a-z_]+)"', src)) | set(re.findall(r'error="([a-z_]+)"', src))
    codes |= {f"role_{r}" for r in users.ROLES} | {f"done_{d}" for d in ("created", "disabled", "password")}
    for code in codes:
        assert set(TEXT[code]) == set(LANGUAGES), code
