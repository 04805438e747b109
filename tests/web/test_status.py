"""The lane status page: ``/status``, ``/api/status``, ``/api/status/view`` and the thumbnails."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient

from appliance.app import Services, init_services, run_lane
from appliance.config import parse_config
from appliance.ingest.sources import VideoFileSource
from appliance.lanes.health import LaneHealth, source_state
from appliance.lanes.thumbnails import Thumbnails
from appliance.publish.events import VerdictEventBuilder
from appliance.store.db import Store
from appliance.web.app import WebServices, create_app
from tests.web.auth_helpers import logged_in
from tests.web.review_helpers import add_crossing

T0 = 1_795_000_000.0  # 2026-11-18 11:06:40 UTC


def write_video(path: Path, frames: int = 12, size: tuple[int, int] = (640, 360)) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 10.0, size)
    for i in range(frames):
        image = np.full((size[1], size[0], 3), 60, np.uint8)
        cv2.putText(image, str(i), (50, 200), cv2.FONT_HERSHEY_SIMPLEX, 3, (255, 255, 255), 4)
        writer.write(image)
    writer.release()
    return path


def lane_status(frames_read: int = 100) -> dict[str, Any]:
    return {
        "lanes": {"cargo-1": {"state": "running", "last_frame_ts": T0, "crossings": 3, "sources": {
            "front": {"type": "stream", "state": "connected", "fps": 12.5, "frames_read": frames_read,
                      "frames_dropped": 2, "last_frame_ts": T0, "last_frame_at": T0, "error": None},
            "rear": {"type": "stream", "state": "disconnected", "fps": 0.0, "frames_read": 0, "frames_dropped": 0,
                     "last_frame_ts": None, "last_frame_at": None, "error": "connection refused"},
        }}},
        "models": [{"task": "text-detection", "name": "ppocrv4-det", "version": "1",
                    "providers": ["CUDAExecutionProvider", "CPUExecutionProvider"]}],
        "inbound": {"applied": 4, "duplicates": 0, "dead_letters": 2, "last_dead_letter": "signature: unknown key"},
    }


@pytest.fixture()
def thumbnails() -> Thumbnails:
    thumbs = Thumbnails()
    thumbs.offer("cargo-1", "front", np.zeros((720, 1280, 3), np.uint8), T0)
    return thumbs


@pytest.fixture()
def status_app(store: Store, thumbnails: Thumbnails) -> Any:
    return create_app(WebServices(store, "VNHNG", lane_status(), thumbnails=thumbnails))


def test_everything_on_the_status_page_needs_a_login(status_app: Any) -> None:
    anonymous = TestClient(status_app)
    page = anonymous.get("/status", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"].startswith("/login?next=%2Fstatus")
    for path in ("/api/status", "/api/status/view", "/status/thumb/cargo-1/front.jpg"):
        resp = anonymous.get(path, follow_redirects=False)
        assert resp.status_code == 401, path
        assert resp.json() == {"detail": "authentication required"}


@pytest.mark.parametrize("role", ["inspector", "model_engineer", "supervisor", "admin"])
def test_any_role_sees_lanes_sources_models_outbox_and_inbound(status_app: Any, store: Store, role: str) -> None:
    page = logged_in(status_app, store, role).get("/status?lang=en")
    assert page.status_code == 200
    html = page.text
    assert re.search(r'<tr data-id="cargo-1" class="state-running">', html)
    front = re.search(r'<tr data-id="cargo-1/front".*?</tr>', html, re.S)
    rear = re.search(r'<tr data-id="cargo-1/rear".*?</tr>', html, re.S)
    assert front is not None and rear is not None
    assert ">Connected<" in front.group(0) and ">12.5<" in front.group(0) and ">100<" in front.group(0)
    assert 'src="/status/thumb/cargo-1/front.jpg?v=1"' in front.group(0)
    assert ">Disconnected<" in rear.group(0) and 'title="connection refused"' in rear.group(0)
    assert "CUDAExecutionProvider, CPUExecutionProvider" in html and "ppocrv4-det" in html
    assert "No sinks configured" in html  # the test store has no outbox sink
    assert re.search(r'data-inbound="dead_letters">2<', html)
    assert '<a href="/status?lang=en">Lane status</a>' in html  # in the nav, for every role
    assert '<script src="/static/status.js" defer></script>' in html and "<script>" not in html


def test_status_page_in_three_languages(status_app: Any, store: Store) -> None:
    client = logged_in(status_app, store)
    assert "Tình trạng làn" in client.get("/status").text and "Đã kết nối" in client.get("/status").text
    assert "车道状态" in client.get("/status?lang=zh").text and "已断开" in client.get("/status?lang=zh").text
    view = client.get("/api/status/view", params={"lang": "zh"}).json()
    assert view["sources"][0]["state_label"] == "已连接" and view["timezone"] == "Asia/Ho_Chi_Minh"
    assert view["sources"][0]["last_frame"].startswith("2026年11月18日 18:06:40")  # UTC+7


def test_api_status_keeps_its_keys_and_adds_the_health(status_app: Any, store: Store) -> None:
    body = logged_in(status_app, store, "model_engineer").get("/api/status").json()
    assert body["gate"] == "VNHNG" and body["counts"] == {"CLEAR": 1, "HOLD": 1, "REVIEW": 1}
    assert body["outbox"] == [] and body["lanes"]["cargo-1"]["state"] == "running"
    assert body["lanes"]["cargo-1"]["sources"]["front"]["frames_read"] == 100
    assert body["models"][0]["providers"][0] == "CUDAExecutionProvider"
    assert body["inbound"]["dead_letters"] == 2 and body["timezone"] == "Asia/Ho_Chi_Minh"


def test_outbox_backlog_oldest_and_last_ack(tmp_path: Path) -> None:
    store = Store(tmp_path / "o.db", tmp_path / "ev",
                  event_builder=VerdictEventBuilder("VNHNG", "box-1", Ed25519PrivateKey.generate()))
    store.register_sink("central-mqtt")
    store.register_sink("lane-http", "cargo-1")
    for i in range(3):  # three verdict events, for both sinks
        add_crossing(store, f"cargo-1-{i}", frames=1)
    first, second, _ = store.pending("central-mqtt")
    store.mark_delivered("central-mqtt", [first.id], now=T0 + 60)
    store.record_failure("central-mqtt", second.id, "broker down", 0)
    client = logged_in(create_app(WebServices(store, "VNHNG", {})), store)
    rows = {r["sink"]: r for r in client.get("/api/status/view?lang=zh").json()["outbox"]}
    assert rows["central-mqtt"]["backlog"] == "2" and rows["central-mqtt"]["last_error"] == "broker down"
    assert rows["central-mqtt"]["last_ack"] == "2026年11月18日 18:07:40"
    assert rows["lane-http"]["backlog"] == "3" and rows["lane-http"]["lane"] == "cargo-1"
    assert rows["lane-http"]["last_ack"] == "从未" and rows["lane-http"]["oldest"] != "-"
    raw = {r["sink"]: r for r in client.get("/api/status").json()["outbox"]}
    assert raw["central-mqtt"]["backlog"] == 2 and raw["central-mqtt"]["last_ack_at"] == T0 + 60
    html = client.get("/status?lang=en").text
    assert re.search(r'<tr data-id="lane-http" class="state-behind">', html) and ">Never<" in html
    store.close()


def test_thumbnail_route_serves_the_latest_jpeg(status_app: Any, store: Store) -> None:
    client = logged_in(status_app, store, "model_engineer")
    resp = client.get("/status/thumb/cargo-1/front.jpg")
    assert resp.status_code == 200 and resp.headers["content-type"] == "image/jpeg"
    image = cv2.imdecode(np.frombuffer(resp.content, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None and image.shape[:2] == (180, 320)  # 1280x720 scaled to 320 wide
    assert resp.headers["cache-control"] == "no-store"
    assert client.get("/status/thumb/cargo-1/rear.jpg").status_code == 404
    assert client.get("/status/thumb/cargo-9/front.jpg").status_code == 404


def test_thumbnails_are_encoded_at_most_once_a_second() -> None:
    now = [100.0]
    thumbs = Thumbnails(clock=lambda: now[0])
    image = np.zeros((100, 200, 3), np.uint8)
    assert thumbs.offer("l", "s", image, 1.0)
    now[0] += 0.5
    assert not thumbs.offer("l", "s", image, 2.0)
    assert thumbs.offer("l", "other", image, 2.0)  # per source
    now[0] += 0.6
    assert thumbs.offer("l", "s", image, 3.0)
    thumb = thumbs.get("l", "s")
    assert thumb is not None and thumb.frame_ts == 3.0 and thumb.seq == 3


def test_lane_health_counts_a_real_video(tmp_path: Path) -> None:
    source = VideoFileSource("front", write_video(tmp_path / "front.avi"), start_time=T0)
    status: dict[str, Any] = {}
    thumbs = Thumbnails()
    health = LaneHealth("cargo-1", [source], status, thumbs)
    assert status["sources"]["front"]["state"] == "waiting"
    while (frame := source.read()) is not None:
        health.on_frame(frame)
    health.finish()
    front = status["sources"]["front"]
    assert front["frames_read"] == 12 and front["frames_dropped"] == 0 and front["state"] == "ended"
    assert front["last_frame_ts"] == pytest.approx(T0 + 1.1)
    assert thumbs.get("cargo-1", "front") is not None


def test_source_states() -> None:
    assert source_state({"connected": True}, 5) == "connected"
    assert source_state({"connected": False, "last_error": "timeout"}, 5) == "disconnected"
    assert source_state({"error": "no such file"}, 0) == "disconnected"
    assert source_state({"ended": True}, 12) == "ended"
    assert source_state({}, 0) == "waiting"


@pytest.fixture()
def ran_lane(tmp_path: Path) -> Iterator[Services]:
    """A real lane (init_services, run_lane) over a 12-frame video."""
    write_video(tmp_path / "front.avi")
    config = parse_config(
        "site: {gate: VNHNG, box_id: t1, timezone: Asia/Shanghai}\n"
        "lanes:\n  - id: cargo-1\n    sources:\n"
        f"      - {{id: front, role: front, type: video_file, path: front.avi, start_time: {T0}}}\n"
        "storage: {path: gate.db, evidence_dir: ev}\n", "lane.yaml", base=tmp_path)
    services = init_services(config)
    run_lane(config.lanes[0], services)
    yield services
    services.store.close()


def test_a_lane_that_ran_shows_on_the_status_page(ran_lane: Services) -> None:
    s = ran_lane
    lane = s.status["lanes"]["cargo-1"]
    assert lane["state"] == "finished" and lane["sources"]["front"]["frames_read"] == 12
    a = s.config.analyzers
    assert {m["name"] for m in s.status["models"]} == {a.ocr_detector, a.ocr_recognizer}
    assert all(m["provider"] == m["providers"][0] and m["providers"] for m in s.status["models"])
    web = WebServices(s.store, s.config.site.gate, s.status, thumbnails=s.thumbnails, timezone=s.config.site.timezone)
    client = logged_in(create_app(web), s.store, "inspector")
    thumb = client.get("/status/thumb/cargo-1/front.jpg")
    assert thumb.status_code == 200 and thumb.content[:3] == b"\xff\xd8\xff"
    image = cv2.imdecode(np.frombuffer(thumb.content, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None and image.shape[1] == 320
    view = client.get("/api/status/view?lang=en").json()
    assert view["timezone"] == "Asia/Shanghai"
    assert view["sources"][0]["state_label"] == "Ended" and view["sources"][0]["frames_read"] == "12"
    assert view["sources"][0]["last_frame"].startswith("Nov 18, 2026, 7:06:41")  # UTC+8
