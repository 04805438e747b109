"""The model engineer's page /models on a real SQLite store, a real model store (the shipped packages plus
made-up versions) and the real registry with its validation: who may see it, activation, refusals,
forced activation, rollback, shadow, CSRF, and one activation in a real headless Chromium."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from playwright.sync_api import Page, expect

from appliance.inference.registry import ModelRegistry
from appliance.store.db import Store
from appliance.web.app import WebServices, create_app
from tests.integration.model_packages import build_store, config_of, install_version, write_config
from tests.web.auth_helpers import add_user, form_token, logged_in
from tests.web.conftest import free_port, serving
from tests.web.test_browser import sign_in

DET = "text-detection"
REC = "text-recognition"


@dataclass
class Env:
    app: FastAPI
    store: Store
    registry: ModelRegistry
    root: Path  # the model store


@pytest.fixture()
def env(tmp_path: Path, store: Store) -> Env:
    """The shipped models, an unsigned ppocrv4-det@2 and a corrupt ppocrv4-det@3 (its file no longer matches)."""
    root = tmp_path / "models"
    build_store(root)
    install_version(root, DET, "ppocrv4-det", "1", "2")
    install_version(root, DET, "ppocrv4-det", "1", "3", corrupt=True)
    registry = ModelRegistry(store, config_of(write_config(tmp_path, root)))
    return Env(create_app(WebServices(store, "VNHNG", models=registry)), store, registry, root)


@pytest.fixture()
def engineer(env: Env) -> TestClient:
    """A client logged in as user "model_engineer" (role model_engineer)."""
    return logged_in(env.app, env.store, "model_engineer")


def post(client: TestClient, path: str, **data: str) -> httpx.Response:
    """A form POST with the session's CSRF token (taken from the page, as a browser would)."""
    token = form_token(client.get("/models").text)
    return client.post(path, data={"csrf_token": token, "lang": "vi", **data}, follow_redirects=False)


def active(env: Env, task: str = DET) -> str:
    return env.registry.state()[task].active.label


def test_inspectors_are_refused_and_get_no_link(env: Env) -> None:
    inspector = logged_in(env.app, env.store, "inspector")
    assert inspector.get("/models").status_code == 403
    token = form_token(inspector.get("/status").text)
    resp = inspector.post(f"/models/{DET}/activate", data={"csrf_token": token, "name": "ppocrv4-det", "version": "2"},
                          follow_redirects=False)
    assert resp.status_code == 403
    assert active(env) == "ppocrv4-det-int8@1" and env.registry.history() == []
    assert 'href="/models' not in inspector.get("/status").text


def test_engineer_and_admin_see_the_active_versions_and_the_store(env: Env, engineer: TestClient) -> None:
    resp = engineer.get("/models")
    assert resp.status_code == 200
    html = resp.text
    assert 'href="/models?lang=vi"' in html  # the nav link
    det = html[html.index('id="task-text-detection"'):html.index('id="task-text-recognition"')]
    sha = env.registry.state()[DET].active.sha256
    assert re.search(r'data-key="active"><b class="value">ppocrv4-det-int8@1</b>', det)
    assert f"sha256 {sha[:12]}" in det and "theo cấu hình" in det  # the config's choice, no registry row yet
    for label in ("ppocrv4-det-int8@1", "ppocrv4-det@1", "ppocrv4-det@2", "ppocrv4-det@3"):
        assert f'data-version="{label}"' in det
    assert "Apache-2.0 (PaddleOCR)" in det and "held_out_binarized_agreement: 0.999595" in det
    assert det.count(">Đã ký<") == 2 and det.count(">Chưa ký<") == 2  # the shipped ones are signed
    assert "ppocrv4-rec@1" in html[html.index('id="task-text-recognition"'):]
    assert "Chưa có thay đổi mô hình nào." in html
    english = engineer.get("/models?lang=en").text
    assert "from the config" in english and "Installed versions" in english
    assert "模型注册表" not in english and "影子候选版本" in engineer.get("/models?lang=zh").text
    admin = logged_in(env.app, env.store, "admin")
    assert admin.get("/models").status_code == 200


def test_activating_through_the_form_changes_the_registry_and_the_history(env: Env, engineer: TestClient) -> None:
    resp = post(engineer, f"/models/{DET}/activate", name="ppocrv4-det", version="2", reason="night glare")
    assert resp.status_code == 303 and resp.headers["location"] == "/models?done=activated&lang=vi"
    state = env.registry.state()[DET]
    assert state.active.label == "ppocrv4-det@2" and state.previous is not None
    assert state.previous.label == "ppocrv4-det-int8@1" and not state.configured
    entry = env.registry.history()[0]
    assert (entry.action, entry.label, entry.actor, entry.reason, entry.forced) == (
        "activate", "ppocrv4-det@2", "model_engineer", "night glare", False)
    html = engineer.get("/models?done=activated&lang=vi").text
    assert "Đã kích hoạt phiên bản mô hình." in html
    assert "theo sổ đăng ký mô hình, lần thay đổi 1" in html
    row = html[html.index('<tr class="action-activate">'):]
    assert "model_engineer" in row[:row.index("</tr>")] and "night glare" in row[:row.index("</tr>")]


def test_a_refused_activation_shows_the_error_and_changes_nothing(env: Env, engineer: TestClient) -> None:
    resp = post(engineer, f"/models/{DET}/activate", name="ppocrv4-det", version="3", reason="try it")
    assert resp.status_code == 400
    html = resp.text
    assert "Sổ đăng ký mô hình đã từ chối thay đổi:" in html and "sha256" in html
    assert 'value="try it"' in html  # the form keeps what was typed
    assert active(env) == "ppocrv4-det-int8@1"
    entry = env.registry.history()[0]
    assert (entry.action, entry.label, entry.actor) == ("refused", "ppocrv4-det@3", "model_engineer")
    # The registry's message is data: it is escaped, never markup.
    resp = post(engineer, f"/models/{DET}/activate", name="<script>alert(1)</script>", version="1")
    assert resp.status_code == 400
    assert "<script>alert(1)" not in resp.text and "&lt;script&gt;alert(1)" in resp.text
    # Only plain names reach the store: no paths.
    resp = post(engineer, f"/models/{DET}/shadow", name="../text-detection/ppocrv4-det", version="2")
    assert resp.status_code == 400 and "must be a plain name" in resp.text
    assert active(env) == "ppocrv4-det-int8@1" and env.registry.state()[DET].shadow is None


def test_the_regression_gate_and_force_with_a_reason(env: Env, engineer: TestClient) -> None:
    for version, agreement in (("4", 0.90), ("5", 0.99)):
        install_version(env.root, DET, "ppocrv4-det", "1", version, eval_set="lane-sim-seed-8",
                        metrics={"held_out_binarized_agreement": agreement})
    assert post(engineer, f"/models/{DET}/activate", name="ppocrv4-det", version="5").status_code == 303
    resp = post(engineer, f"/models/{DET}/activate", name="ppocrv4-det", version="4", reason="smaller")
    assert resp.status_code == 400 and "refused by the regression gate" in resp.text
    assert "held_out_binarized_agreement 0.99 -&gt; 0.9" in resp.text
    resp = post(engineer, f"/models/{DET}/activate", name="ppocrv4-det", version="4", force="1", reason="  ")
    assert resp.status_code == 400 and "Kích hoạt cưỡng chế phải có lý do." in resp.text
    assert 'name="force" value="1" checked' in resp.text  # the form keeps the box ticked
    resp = post(engineer, f"/models/{DET}/activate", name="ppocrv4-det", version="4", force="1", reason="x" * 1001)
    assert resp.status_code == 400 and "Lý do quá dài" in resp.text
    assert active(env) == "ppocrv4-det@5"
    resp = post(engineer, f"/models/{DET}/activate", name="ppocrv4-det", version="4", force="1",
                reason="the eval set misses rain")
    assert resp.status_code == 303
    entry = env.registry.history()[0]
    assert entry.forced and entry.reason == "the eval set misses rain" and active(env) == "ppocrv4-det@4"
    assert entry.details["regressions_overridden"]
    html = engineer.get("/models").text
    assert '<td data-key="forced">Cưỡng chế</td>' in html


def test_rollback_and_shadow(env: Env, engineer: TestClient) -> None:
    resp = post(engineer, f"/models/{DET}/rollback", reason="nothing to go back to")
    assert resp.status_code == 400 and "no previous model" in resp.text
    assert post(engineer, f"/models/{DET}/activate", name="ppocrv4-det", version="1").status_code == 303
    resp = post(engineer, f"/models/{DET}/rollback", reason="worse at night")
    assert resp.status_code == 303
    state = env.registry.state()[DET]
    assert state.active.label == "ppocrv4-det-int8@1" and state.previous is not None
    assert state.previous.label == "ppocrv4-det@1"
    entry = env.registry.history()[0]
    assert (entry.action, entry.actor, entry.reason) == ("rollback", "model_engineer", "worse at night")

    assert post(engineer, f"/models/{DET}/shadow", name="ppocrv4-det", version="2").status_code == 303
    state = env.registry.state()[DET]
    assert state.shadow is not None and state.shadow.label == "ppocrv4-det@2"
    env.registry.save_shadow_stats(DET, state.shadow, {
        "samples": 40, "dropped": 2, "errors": 0, "agreement": 0.98765,
        "active_ms": {"p50": 88.5, "p95": 101.0}, "candidate_ms": {"p50": 140.0, "p95": 155.5}})
    html = engineer.get("/models?lang=en").text
    stats = html[html.index('id="shadow-text-detection"'):]
    assert '<td data-key="samples">40</td>' in stats and '<td data-key="agreement">0.9877</td>' in stats
    assert "88.5 / 101" in stats and "140 / 155.5" in stats
    assert "Shadow started" in html
    assert post(engineer, f"/models/{DET}/shadow/stop").status_code == 303
    assert env.registry.state()[DET].shadow is None
    assert env.registry.history()[0].action == "shadow-stop"
    resp = post(engineer, "/models/speech/rollback")
    assert resp.status_code == 404


def test_a_post_without_the_csrf_token_is_refused(env: Env, engineer: TestClient) -> None:
    resp = engineer.post(f"/models/{DET}/activate", data={"name": "ppocrv4-det", "version": "2"},
                         follow_redirects=False)
    assert resp.status_code == 403
    data = {"name": "ppocrv4-det", "version": "2", "csrf_token": "x" * 43}
    resp = engineer.post(f"/models/{DET}/activate", data=data, follow_redirects=False)
    assert resp.status_code == 403
    assert active(env) == "ppocrv4-det-int8@1" and env.registry.history() == []


def test_without_a_registry_the_page_says_so(store: Store) -> None:
    client = logged_in(create_app(WebServices(store, "VNHNG")), store, "model_engineer")
    html = client.get("/models").text
    assert "Sổ đăng ký mô hình không có trên thiết bị này." in html and "<form class=\"inline" not in html
    token = form_token(html)  # the logout form's
    resp = client.post(f"/models/{DET}/rollback", data={"csrf_token": token}, follow_redirects=False)
    assert resp.status_code == 404


# --- a real browser ------------------------------------------------------------------------------------


def test_engineer_activates_a_version_in_the_browser(page: Page, env: Env) -> None:
    add_user(env.store, "engineer", "model_engineer")
    with serving(env.app, free_port()) as base:
        sign_in(page, base, "engineer", "/models")
        assert page.locator("h2").first.inner_text() == "Mô hình"
        current = page.locator('#task-text-detection dd[data-key="active"] b.value')
        assert current.inner_text() == "ppocrv4-det-int8@1"
        row = page.locator('#versions-text-detection tr[data-version="ppocrv4-det@2"]')
        row.get_by_placeholder("Lý do (bắt buộc khi cưỡng chế)").fill("sharper at night")
        row.get_by_role("button", name="Kích hoạt").click()
        page.wait_for_url("**/models?done=activated&lang=vi")
        expect(page.get_by_role("status")).to_contain_text("Đã kích hoạt phiên bản mô hình.")
        expect(current).to_have_text("ppocrv4-det@2")
        expect(page.locator('#task-text-detection dd[data-key="previous"]')).to_contain_text("ppocrv4-det-int8@1")
        first = page.locator("#model-history tbody tr").first
        expect(first.locator('td[data-key="actor"]')).to_have_text("engineer")
        expect(first.locator('td[data-key="reason"]')).to_have_text("sharper at night")
    assert active(env) == "ppocrv4-det@2"
