"""The passenger-lane passages pages on a real SQLite store and a real encrypted faces store: the list
(newest first, decision filter, reasons in vi/en/zh, times in the site's zone), a passage's page (its
facts, nothing biometric), and the face crop: supervisors and admins only, every view and every
refusal in the audit log, purged / expired / unreadable crops a clear 410 / 404, never a 500."""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import cv2
import numpy as np
import pytest
from babel.dates import format_datetime
from fastapi import FastAPI
from fastapi.testclient import TestClient

from appliance.faces.crypto import FaceKey
from appliance.faces.templates import TemplateStore
from appliance.lanes.passenger import PassageResult
from appliance.store.db import Store
from appliance.store.passages import get_passage, list_passages, page_passages, passage_counts, save_passage
from appliance.verdicts.passage import PassageFacts, PassageReason, PassageVerdict, decide_passage
from appliance.web.app import WebServices, create_app
from tests.web.auth_helpers import add_user, logged_in, login

BASE = 1_795_000_000.0
TTL = 30 * 24 * 3600.0
PERSON_REF = "pref:4f1c2a9be07d3c55"  # the opaque token a passage row keeps; no page may show it
MODEL = "face-embedding/dlib-resnet-v1@1"
MATCH, WATCH = 0.6, 0.5  # the thresholds decide_passage is given here


def face_jpeg(seed: int, size: tuple[int, int] = (96, 80)) -> bytes:
    """A real JPEG (a noisy gradient, different per seed so each crop has its own sha256)."""
    rng = np.random.default_rng(seed)
    h, w = size
    img = (np.linspace(0, 200, w, dtype=np.float32)[None, :, None] + rng.integers(0, 50, (h, w, 3))).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", img)
    assert ok
    return buf.tobytes()


GOOD = PassageFacts(document_read=True, reference="ok", reference_detail="enrolled template", frames_with_face=6,
                    most_faces=1, live=True, match_distance=0.312, watchlist_distance=0.874)
LISTED = PassageFacts(document_read=True, document_listed=True, reference="ok", frames_with_face=5, most_faces=1,
                      live=True, match_distance=0.29)
SPOOF = PassageFacts(document_read=True, reference="missing", reference_detail="no enrolled template",
                     frames_with_face=4, most_faces=1, quality_reasons=("blur",), live=False,
                     liveness_reasons=("screen_moire", "no_motion"))


def add_passage(store: Store, pid: str, facts: PassageFacts, started: float, crop: str | None,
                verdict: PassageVerdict | None = None) -> PassageResult:
    """Save one passage the way the lane does (appliance/lanes/passenger.py), with no outbox event."""
    result = PassageResult(pid, "passenger-1", started, started + 4.0, PERSON_REF, facts,
                           verdict or decide_passage(facts, MATCH, WATCH), crop, (MODEL,))
    save_passage(store, result, None)
    return result


@dataclass
class Env:
    app: FastAPI
    store: Store
    faces: TemplateStore
    jpeg: bytes  # the crop of "p-open", as put


def seed_passages(store: Store, faces: TemplateStore, tmp_path: Path) -> bytes:
    """p-manual (oldest), p-deny, p-open (newest, its crop readable), p-purged, p-expired, p-otherkey, p-nocrop."""
    jpeg = face_jpeg(1)
    add_passage(store, "p-manual", SPOOF, BASE, faces.put_crop(face_jpeg(2), "p-manual", TTL))
    add_passage(store, "p-deny", LISTED, BASE + 60, faces.put_crop(face_jpeg(3), "p-deny", TTL))
    add_passage(store, "p-open", GOOD, BASE + 120, faces.put_crop(jpeg, "p-open", TTL))
    # Purged by retention: put long ago, then the purge really deleted it.
    purged = faces.put_crop(face_jpeg(4), "p-purged", 60.0, now=1000.0)
    assert faces.purge()["crops"] == 1
    add_passage(store, "p-purged", GOOD, BASE - 600, purged)
    # Expired, not yet purged.
    add_passage(store, "p-expired", GOOD, BASE - 700, faces.put_crop(face_jpeg(5), "p-expired", 60.0, now=1000.0))
    # Sealed with another face key (a restored backup of another box): does not open with this one.
    with TemplateStore(faces.path, FaceKey.generate(tmp_path / "other.key")) as other:
        add_passage(store, "p-otherkey", GOOD, BASE - 800, other.put_crop(face_jpeg(6), "p-otherkey", TTL))
    add_passage(store, "p-nocrop", PassageFacts(document_read=False), BASE - 900, None)
    return jpeg


@pytest.fixture()
def env(tmp_path: Path, store: Store) -> Iterator[Env]:
    faces = TemplateStore(tmp_path / "faces.db", FaceKey.generate(tmp_path / "face.key"))
    jpeg = seed_passages(store, faces, tmp_path)
    yield Env(create_app(WebServices(store, "VNHNG", face_crops=faces.get_crop)), store, faces, jpeg)
    faces.close()


def client(env: Env, role: str) -> TestClient:
    return logged_in(env.app, env.store, role)


def audit(store: Store, action: str | None = None) -> list[tuple[str, str, str]]:
    """(actor, action, target) of the face entries of the audit log, oldest first."""
    rows = store.query("SELECT actor, action, target FROM audit_log WHERE action LIKE 'face_crop.%' ORDER BY id")
    return [(r[0], r[1], r[2]) for r in rows if action is None or r[1] == action]


def row_ids(html: str) -> list[str]:
    return re.findall(r'<tr data-id="([^"]+)"', html)


# --- the store ----------------------------------------------------------------------------------------


def test_store_pages_filters_and_counts(env: Env) -> None:
    rows, more = page_passages(env.store, None, 0, 3)
    assert [r.id for r in rows] == ["p-open", "p-deny", "p-manual"] and more
    rows, more = page_passages(env.store, None, 6, 3)
    assert [r.id for r in rows] == ["p-nocrop"] and not more
    assert [r.id for r in page_passages(env.store, "DENY")[0]] == ["p-deny"]
    assert passage_counts(env.store) == {"OPEN": 4, "DENY": 1, "MANUAL": 2}
    assert [r.id for r in list_passages(env.store, 2)] == ["p-open", "p-deny"]
    p = get_passage(env.store, "p-manual")
    assert p is not None and p.decision == "MANUAL" and p.facts["liveness_reasons"] == ["screen_moire", "no_motion"]
    assert [r["code"] for r in p.reasons] == ["face_quality", "presentation_attack", "reference_missing"]
    assert get_passage(env.store, "nope") is None
    with pytest.raises(ValueError):
        page_passages(env.store, "CLEAR")


# --- the list -----------------------------------------------------------------------------------------


def test_list_newest_first_in_vietnamese_with_site_times(env: Env) -> None:
    resp = client(env, "inspector").get("/passages")
    assert resp.status_code == 200
    html = resp.text
    assert row_ids(html) == ["p-open", "p-deny", "p-manual", "p-purged", "p-expired", "p-otherkey", "p-nocrop"]
    assert 'href="/passages?lang=vi"' in html  # the nav link
    assert "Lượt qua làn hành khách" in html
    assert ">CHO QUA<" in html and ">TỪ CHỐI<" in html and ">KIỂM TRA THỦ CÔNG<" in html
    assert "Số giấy tờ có trong danh sách theo dõi" in html  # person_listed
    assert "Nghi giả mạo khuôn mặt (ảnh, màn hình, mặt nạ)" in html  # presentation_attack
    assert "Không đọc được giấy tờ (mã QR)" in html  # document_unreadable
    when = dt.datetime.fromtimestamp(BASE + 120, dt.UTC)
    local = format_datetime(when, "medium", tzinfo=ZoneInfo("Asia/Ho_Chi_Minh"), locale="vi")
    utc = format_datetime(when, "medium", tzinfo=ZoneInfo("UTC"), locale="vi")
    assert local != utc and local in html and utc not in html
    assert 'id="timezone">Asia/Ho_Chi_Minh<' in html


@pytest.mark.parametrize(("lang", "words"), [
    ("en", ["Passenger passages", ">OPEN<", ">DENY<", "Suspected presentation attack (photo, screen, mask)",
            "Document number is on the person watchlist", "All checks passed"]),
    ("zh", ["旅客通行记录", ">放行<", ">拒绝<", ">人工核查<", "疑似人脸伪造攻击（照片、屏幕、面具）", "全部检查通过"]),
])
def test_list_in_english_and_chinese(env: Env, lang: str, words: list[str]) -> None:
    html = client(env, "inspector").get(f"/passages?lang={lang}").text
    for word in words:
        assert word in html
    assert "Nghi giả mạo" not in html


def test_every_reason_code_has_words_in_each_language() -> None:
    from appliance.web.i18n import LANGUAGES, translator
    from appliance.web.passages import REASON_KEYS

    codes = {"document_unreadable", "document_invalid", "person_listed", "face_listed", "several_faces", "no_face",
             "face_quality", "presentation_attack", "liveness_undetermined", "reference_missing",
             "reference_unusable", "no_match_score", "face_mismatch", "all_checks_passed", "processing_error"}
    assert set(REASON_KEYS) == codes
    for lang in LANGUAGES:
        texts = {translator(lang)[REASON_KEYS[c]] for c in codes}
        assert len(texts) == len(codes)  # a different text for each code, none a bare key
        assert not texts & codes


def test_decision_filter(env: Env) -> None:
    inspector = client(env, "inspector")
    assert row_ids(inspector.get("/passages?decision=DENY").text) == ["p-deny"]
    assert row_ids(inspector.get("/passages?decision=MANUAL").text) == ["p-manual", "p-nocrop"]
    html = inspector.get("/passages?decision=OPEN").text
    assert row_ids(html) == ["p-open", "p-purged", "p-expired", "p-otherkey"]
    assert 'data-count="OPEN">4<' in html and 'data-count="DENY">1<' in html and 'data-count="MANUAL">2<' in html
    assert inspector.get("/passages?decision=CLEAR").status_code == 422
    assert inspector.get("/passages?decision=").status_code == 200  # the "all" filter


def test_empty_list_says_so(store: Store) -> None:
    app = create_app(WebServices(store, "VNHNG"))
    html = logged_in(app, store, "inspector").get("/passages?lang=en").text
    assert "No passages yet." in html and row_ids(html) == []


def test_list_and_detail_need_a_login_and_an_inspector_role(env: Env) -> None:
    anonymous = TestClient(env.app)
    resp = anonymous.get("/passages/p-open", follow_redirects=False)
    assert resp.status_code == 303 and resp.headers["location"].startswith("/login")
    engineer = client(env, "model_engineer")
    assert engineer.get("/passages").status_code == 403
    assert engineer.get("/passages/p-open").status_code == 403


# --- a passage's page ------------------------------------------------------------------------------


def test_detail_shows_reasons_and_facts(env: Env) -> None:
    resp = client(env, "inspector").get("/passages/p-manual?lang=en")
    assert resp.status_code == 200
    html = resp.text
    assert 'id="passage-id">p-manual' in html and ">MANUAL CHECK<" in html
    for code in ("face_quality", "presentation_attack", "reference_missing"):
        assert f'data-code="{code}"' in html
    assert "Suspected presentation attack (photo, screen, mask)" in html
    facts = {
        "document_read": "Yes", "document_valid": "Yes", "document_listed": "No", "reference": "Missing",
        "frames_with_face": "4", "most_faces": "1", "quality_reasons": "blur", "live": "Not live",
        "liveness_reasons": "screen_moire, no_motion", "match_distance": "-", "watchlist_distance": "-",
        "models": MODEL,
    }
    for key, value in facts.items():
        assert f'data-key="{key}">{value}' in html, key
    assert "no enrolled template" in html  # the reference's detail
    good = client(env, "inspector").get("/passages/p-open?lang=vi").text
    assert 'data-key="match_distance">0.312<' in good and 'data-key="watchlist_distance">0.874<' in good
    assert 'data-key="live">Người thật<' in good and "Đạt mọi bước kiểm tra" in good
    unread = client(env, "inspector").get("/passages/p-nocrop?lang=zh").text
    assert 'data-key="document_read">否<' in unread and 'data-key="document_valid">-<' in unread
    assert "此通行记录没有保存人脸图像。" in unread


def test_unknown_passage_is_404(env: Env) -> None:
    assert client(env, "inspector").get("/passages/nope").status_code == 404
    supervisor = client(env, "supervisor")
    assert supervisor.get("/passages/nope/face").status_code == 404
    assert audit(env.store, "face_crop.view") == []


def test_detail_page_holds_no_biometric_data(env: Env) -> None:
    for role in ("inspector", "supervisor"):
        for query in ("", "?face=1"):
            html = client(env, role).get(f"/passages/p-open{query}").text
            assert PERSON_REF not in html and "descriptor" not in html.lower()
            assert "data:image" not in html and "base64" not in html
            assert env.jpeg.hex() not in html and env.jpeg[:64].decode("latin-1") not in html
            assert env.faces.counts()["crops"] == 5  # nothing purged or touched by looking


def test_inspector_sees_a_note_not_the_button(env: Env) -> None:
    html = client(env, "inspector").get("/passages/p-open?face=1").text
    assert "Chỉ giám sát viên mới được xem ảnh khuôn mặt." in html
    assert 'id="show-face"' not in html and "/face" not in html
    assert audit(env.store) == []  # no request for the face was made


def test_supervisor_gets_a_button_that_loads_nothing_until_pressed(env: Env) -> None:
    supervisor = client(env, "supervisor")
    html = supervisor.get("/passages/p-open").text
    assert 'id="show-face"' in html and "Xem ảnh khuôn mặt" in html
    assert 'id="face-crop"' not in html and "/passages/p-open/face" not in html  # not loaded automatically
    shown = supervisor.get("/passages/p-open?face=1").text
    assert '<img id="face-crop" src="/passages/p-open/face?lang=vi"' in shown
    assert audit(env.store) == []  # the pages themselves open nothing: only the image route does


# --- the face route ---------------------------------------------------------------------------------


def test_inspector_is_refused_and_the_refusal_is_audited(env: Env) -> None:
    resp = client(env, "inspector").get("/passages/p-open/face")
    assert resp.status_code == 403
    assert env.jpeg not in resp.content and resp.headers["content-type"].startswith("text/html")
    assert audit(env.store) == [("inspector", "face_crop.refused", "p-open")]
    # Any role short of supervisor, and whether or not the passage exists.
    assert client(env, "model_engineer").get("/passages/nope/face").status_code == 403
    assert audit(env.store)[-1] == ("model_engineer", "face_crop.refused", "nope")
    assert env.store.verify_audit_chain() is None


@pytest.mark.parametrize("role", ["supervisor", "admin"])
def test_supervisor_and_admin_get_the_exact_jpeg_and_each_view_is_audited(env: Env, role: str) -> None:
    viewer = client(env, role)
    for n in (1, 2):
        resp = viewer.get("/passages/p-open/face")
        assert resp.status_code == 200
        assert resp.content == env.jpeg
        assert resp.headers["content-type"] == "image/jpeg"
        assert resp.headers["cache-control"] == "no-store"
        assert audit(env.store) == [(role, "face_crop.view", "p-open")] * n
    details = env.store.query("SELECT details_json FROM audit_log WHERE action = 'face_crop.view'")[0][0]
    assert f'"role":"{role}"' in details and PERSON_REF not in details
    assert env.store.verify_audit_chain() is None


def test_no_audit_entry_no_image(env: Env) -> None:
    """The view is audited before the bytes leave: when the audit log refuses the entry, no image leaves."""
    add_user(env.store, "supervisor", "supervisor")
    supervisor = login(TestClient(env.app, raise_server_exceptions=False), "supervisor")
    assert supervisor.get("/passages/p-open/face").content == env.jpeg  # with the audit log up
    with env.store.transaction() as conn:
        conn.execute("CREATE TRIGGER no_audit BEFORE INSERT ON audit_log BEGIN SELECT RAISE(ABORT, 'audit down'); END")
    resp = supervisor.get("/passages/p-open/face")
    assert resp.status_code == 500 and env.jpeg not in resp.content


@pytest.mark.parametrize(("pid", "status", "message"), [
    ("p-purged", 410, "Ảnh khuôn mặt đã bị xoá hoặc đã hết thời hạn lưu trữ."),
    ("p-expired", 410, "Ảnh khuôn mặt đã bị xoá hoặc đã hết thời hạn lưu trữ."),
    ("p-otherkey", 404, "Không mở được ảnh khuôn mặt (đã bị thay đổi hoặc được mã hoá bằng khoá khác)."),
    ("p-nocrop", 404, "Lượt qua này không lưu ảnh khuôn mặt."),
])
def test_unavailable_crops_give_a_clear_message(env: Env, pid: str, status: int, message: str,
                                                caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    resp = client(env, "supervisor").get(f"/passages/{pid}/face")
    assert resp.status_code == status
    assert resp.headers["content-type"].startswith("text/html")
    assert 'id="face-error"' in resp.text and message in resp.text
    assert f'id="passage-id">{pid}' in resp.text and 'id="face-crop"' not in resp.text
    assert audit(env.store, "face_crop.view") == []
    if pid != "p-nocrop":
        assert audit(env.store, "face_crop.unavailable") == [("supervisor", "face_crop.unavailable", pid)]
    assert PERSON_REF not in caplog.text


def test_no_face_store_on_this_box(store: Store, tmp_path: Path) -> None:
    with TemplateStore(tmp_path / "faces.db", FaceKey.generate(tmp_path / "face.key")) as faces:
        add_passage(store, "p-1", GOOD, BASE, faces.put_crop(face_jpeg(9), "p-1", TTL))
    app = create_app(WebServices(store, "VNHNG"))  # face_crops=None: a box without a passenger lane
    supervisor = logged_in(app, store, "supervisor")
    assert "Thiết bị này không có kho ảnh khuôn mặt." in supervisor.get("/passages/p-1").text
    resp = supervisor.get("/passages/p-1/face?lang=en")
    assert resp.status_code == 404 and "This appliance has no face image store." in resp.text


def test_logs_hold_no_crop_bytes_and_no_person_data(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    client(env, "supervisor").get("/passages/p-open/face")
    client(env, "inspector").get("/passages/p-open/face")
    text = caplog.text
    assert PERSON_REF not in text and env.jpeg.hex()[:32] not in text and repr(env.jpeg[:16])[2:-1] not in text


def test_verdict_reasons_are_stored_as_given(store: Store) -> None:
    """A verdict built by hand (not by decide_passage) shows its codes, even one the page has no words for."""
    verdict = PassageVerdict("DENY", (PassageReason("face_listed", "watchlist distance 0.201"),
                                      PassageReason("new_code", "")))
    add_passage(store, "p-x", GOOD, BASE, None, verdict)
    app = create_app(WebServices(store, "VNHNG"))
    html = logged_in(app, store, "inspector").get("/passages/p-x?lang=en").text
    assert "Face matches the face watchlist" in html and "watchlist distance 0.201" in html
    assert 'data-code="new_code"><b>new_code</b>' in html
