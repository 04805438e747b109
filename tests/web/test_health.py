"""/healthz and /readyz on a real store: no session needed, 503 listing each failing check."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from appliance.config import HealthConfig
from appliance.lifecycle.watchdog import Heartbeats
from appliance.store.db import Store
from appliance.web.app import WebServices, create_app
from appliance.web.health import OpsView


def _status() -> dict[str, Any]:
    return {
        "models": [{"task": "text-recognition", "name": "ppocrv4-rec", "version": "1",
                    "provider": "CPUExecutionProvider"}],
        "lanes": {"cargo-1": {"sources": {"front": {"state": "connected", "fps": 5.0, "frames_read": 10},
                                          "kiosk": {"state": "waiting", "frames_read": 0}}}},
    }


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture()
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "gate.db", tmp_path / "evidence")
    yield s
    s.close()


def _client(view: OpsView) -> TestClient:
    return TestClient(create_app(WebServices(view.store, "VNHNG", view.status, ops=view)))


def test_healthz_answers_without_a_session(store: Store) -> None:
    client = _client(OpsView(store, _status(), lanes=["cargo-1"]))
    response = client.get("/healthz", follow_redirects=False)
    assert response.status_code == 200 and response.json() == {"status": "ok"}
    assert client.get("/api/status", follow_redirects=False).status_code == 401  # the login wall still stands


def test_readyz_is_200_when_every_check_passes(store: Store) -> None:
    beats = Heartbeats()
    beats.beat("cargo-1")
    response = _client(OpsView(store, _status(), lanes=["cargo-1"], heartbeats=beats)).get("/readyz")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["ready"] is True and "failing" not in body
    assert {c["name"] for c in body["checks"]} == {"sources", "lanes", "models", "store", "outbox"}


def test_readyz_lists_a_disconnected_source_and_a_lane_that_has_not_started(store: Store) -> None:
    status = _status()
    status["lanes"]["cargo-1"]["sources"]["front"] = {"state": "disconnected", "error": "timeout after 5 s"}
    response = _client(OpsView(store, status, lanes=["cargo-1", "cargo-2"])).get("/readyz")
    assert response.status_code == 503
    failing = {c["name"]: c["detail"] for c in response.json()["failing"]}
    assert list(failing) == ["sources"]
    assert "cargo-1/front is disconnected (timeout after 5 s)" in failing["sources"]
    assert "lane cargo-2 has not started" in failing["sources"]


def test_readyz_fails_a_stalled_lane(store: Store) -> None:
    clock = Clock()
    beats = Heartbeats(clock=clock)
    beats.beat("cargo-1")
    view = OpsView(store, _status(), settings=lambda: HealthConfig(lane_stall_s=5), lanes=["cargo-1"],
                   heartbeats=beats)
    client = _client(view)
    assert client.get("/readyz").status_code == 200
    clock.now += 6
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["failing"] == [{"name": "lanes", "ok": False,
                                           "detail": "no progress for over 5 s: cargo-1"}]


def test_readyz_fails_without_models_and_on_a_full_disk(store: Store) -> None:
    status = _status()
    status["models"] = []
    view = OpsView(store, status, settings=lambda: HealthConfig(min_free_disk_mb=1e12), lanes=["cargo-1"])
    response = _client(view).get("/readyz")
    assert response.status_code == 503
    failing = {c["name"]: c["detail"] for c in response.json()["failing"]}
    assert set(failing) == {"models", "store"}
    assert failing["models"] == "no model loaded"
    assert "under the 1e+12 MB floor" in failing["store"]


def test_readyz_fails_when_the_store_folder_is_gone(store: Store, tmp_path: Path) -> None:
    view = OpsView(store, _status(), lanes=["cargo-1"])
    client = _client(view)
    (tmp_path / "evidence").rmdir()  # e.g. an unmounted data disk
    response = client.get("/readyz")
    assert response.status_code == 503
    assert "evidence does not accept files" in response.json()["failing"][0]["detail"]


def test_readyz_fails_when_the_outbox_backlog_is_over_the_limit(store: Store) -> None:
    store.register_sink("central")
    for i in range(4):
        store.enqueue_event({"id": f"ev-{i}", "type": "test"}, "cargo-1")
    view = OpsView(store, _status(), settings=lambda: HealthConfig(max_outbox_backlog=3), lanes=["cargo-1"])
    response = _client(view).get("/readyz")
    assert response.status_code == 503
    assert response.json()["failing"] == [{"name": "outbox", "ok": False,
                                           "detail": "central has 4 undelivered (limit 3)"}]
    store.mark_delivered("central", [r.id for r in store.pending("central")][:1])
    assert _client(view).get("/readyz").status_code == 200
