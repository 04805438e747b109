from __future__ import annotations

from fastapi.testclient import TestClient

from appliance.store.db import Store
from appliance.web.app import WebServices, create_app
from tests.web.auth_helpers import logged_in


def client(store: Store) -> TestClient:
    app = create_app(WebServices(store, "VNHNG", {"lanes": {"cargo-1": {"state": "running"}}}))
    return logged_in(app, store)


def test_api_lists_and_filters(store: Store) -> None:
    c = client(store)
    rows = c.get("/api/crossings").json()
    assert [r["id"] for r in rows] == ["cargo-1-3", "cargo-1-2", "cargo-1-1"]
    held = c.get("/api/crossings", params={"decision": "HOLD"}).json()
    assert [r["id"] for r in held] == ["cargo-1-2"]
    assert held[0]["reasons"][0]["code"] == "seal_mismatch"
    assert c.get("/api/crossings", params={"decision": "MAYBE"}).status_code == 422
    assert c.get("/api/crossings", params={"limit": 0}).status_code == 422


def test_api_detail_has_observations(store: Store) -> None:
    body = client(store).get("/api/crossings/cargo-1-2").json()
    assert body["decision"] == "HOLD"
    assert body["observations"][0]["kind"] == "plate"
    assert client(store).get("/api/crossings/nope").status_code == 404


def test_status(store: Store) -> None:
    body = client(store).get("/api/status").json()
    assert body["counts"] == {"CLEAR": 1, "HOLD": 1, "REVIEW": 1}
    assert body["lanes"]["cargo-1"]["state"] == "running"


def test_evidence_served_by_hash_only(store: Store) -> None:
    c = client(store)
    sha = c.get("/api/crossings/cargo-1-1").json()["summary"]["tractor_plate"]["evidence"]
    resp = c.get(f"/evidence/{sha}")
    assert resp.status_code == 200 and resp.content[:2] == b"\xff\xd8"
    assert c.get("/evidence/..%2F..%2Fetc%2Fpasswd").status_code in (404, 422)
    assert c.get("/evidence/" + "0" * 64).status_code == 404


def test_pages_in_three_languages(store: Store) -> None:
    c = client(store)
    assert "TẠM GIỮ" in c.get("/").text
    assert "HOLD" in c.get("/?lang=en").text
    assert "扣留" in c.get("/?lang=zh").text
    page = c.get("/crossings/cargo-1-2?lang=en").text
    assert "seal_mismatch" in page and "VNH7654321" in page
    assert c.get("/crossings/missing").status_code == 404
