"""Users and logins for the web tests (imported by conftest.py and the test modules)."""

from __future__ import annotations

import re

from fastapi import FastAPI
from fastapi.testclient import TestClient

from appliance.store.db import Store
from appliance.store.users import Accounts

# Tests only: the product has no default password (see appliance/users_cli.py).
TEST_PASSWORD = "correct horse battery staple"


def add_user(store: Store, username: str, role: str, password: str = TEST_PASSWORD) -> None:
    """Create the user unless it exists (helpers may be called more than once per store)."""
    accounts = Accounts(store)
    if accounts.get(username) is None:
        accounts.create_user(username, password, role, actor="test")


def form_token(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match is not None, "no CSRF field in the page"
    return match.group(1)


def login(client: TestClient, username: str, password: str = TEST_PASSWORD) -> TestClient:
    """Log in through the real form (login CSRF token included); the client keeps the cookie."""
    token = form_token(client.get("/login").text)
    resp = client.post("/login", data={"username": username, "password": password, "csrf_token": token},
                       follow_redirects=False)
    assert resp.status_code == 303, resp.text
    return client


def logged_in(app: FastAPI, store: Store, role: str = "inspector") -> TestClient:
    """A TestClient logged in as a user named after ``role`` (created on first use)."""
    add_user(store, role, role)
    return login(TestClient(app), role)
