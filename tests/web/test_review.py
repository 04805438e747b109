"""The review queue, the crossing page and inspectors' decisions, through the real app (TestClient)."""

from __future__ import annotations

import json
import re

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI
from fastapi.testclient import TestClient

from appliance.publish.decision_events import EVENT_TYPE, DecisionEventBuilder
from appliance.publish.events import decode_event, verify_event
from appliance.store.db import Store
from appliance.web.app import WebServices, create_app
from tests.web.auth_helpers import form_token, logged_in
from tests.web.review_helpers import IMG, SCRIPT, SQL, add_crossing, add_hostile_crossing

CONTAINER_OK, CONTAINER_BAD = "TGHU9876542", "TGHU9876543"


def counts(store: Store) -> tuple[int, int, int]:
    """(decisions, audit entries, outbox rows)."""
    return (int(store.query("SELECT COUNT(*) FROM decisions")[0][0]),
            int(store.query("SELECT COUNT(*) FROM audit_log")[0][0]), store.outbox_count())


def post_decision(client: TestClient, crossing_id: str, lang: str = "vi", **fields: str) -> object:
    token = form_token(client.get(f"/crossings/{crossing_id}").text)
    data = {"csrf_token": token, "lang": lang, **fields}
    return client.post(f"/crossings/{crossing_id}/decisions", data=data, follow_redirects=False)


def queue_ids(client: TestClient, **params: str) -> list[str]:
    return [r["id"] for r in client.get("/api/queue", params=params).json()["rows"]]


def test_queue_puts_undecided_review_and_hold_first_newest_first(inspector: TestClient, store: Store) -> None:
    add_crossing(store, "cargo-1-4", "CLEAR", ended_at=1_795_000_100.0)  # the newest of all, but clear
    add_crossing(store, "cargo-1-5", "HOLD", ended_at=1_794_000_000.0)  # the oldest, but held
    assert queue_ids(inspector) == ["cargo-1-3", "cargo-1-2", "cargo-1-5", "cargo-1-4", "cargo-1-1"]
    html = inspector.get("/").text
    assert re.findall(r'<tr data-id="([^"]+)"', html) == queue_ids(inspector)
    assert '<strong id="pending">3</strong>' in html
    # Deciding one moves it into the rest (by time): it no longer waits.
    resp = post_decision(inspector, "cargo-1-3", action="approve", reason="documents checked at the kiosk")
    assert resp.status_code == 303
    assert queue_ids(inspector) == ["cargo-1-2", "cargo-1-5", "cargo-1-4", "cargo-1-3", "cargo-1-1"]
    body = inspector.get("/api/queue").json()
    assert body["pending"] == 2 and body["rows"][3]["state"] == "Đã cho qua"


def test_queue_pages_and_poll(inspector: TestClient, store: Store) -> None:
    for i in range(60):
        add_crossing(store, f"cargo-2-{i}", "CLEAR", lane_id="cargo-2", ended_at=1_794_000_000.0 + i, frames=1)
    first = inspector.get("/api/queue").json()
    second = inspector.get("/api/queue", params={"page": "2"}).json()
    assert len(first["rows"]) == 50 and first["has_next"] and len(second["rows"]) == 13 and not second["has_next"]
    assert not {r["id"] for r in first["rows"]} & {r["id"] for r in second["rows"]}
    assert 'rel="next" href="/?page=2&amp;lang=vi"' in inspector.get("/").text
    assert inspector.get("/api/queue", params={"since": first["stamp"]}).json() == {"changed": False,
                                                                                   "stamp": first["stamp"]}
    add_crossing(store, "cargo-1-9", "HOLD", frames=1)
    polled = inspector.get("/api/queue", params={"since": first["stamp"]}).json()
    assert polled["changed"] and polled["rows"][0]["id"] == "cargo-1-9"
    assert inspector.get("/?page=0").status_code == 422


def test_crossing_page_shows_crops_boxes_reads_and_manifest(store: Store) -> None:
    from appliance.verdicts.manifest import Manifest, ManifestContainer, ManifestEntry, ManifestIndex

    add_crossing(store, "cargo-1-7", "HOLD", plate="29C-123.45", container="MSKU1234565", seal="VNH1234567",
                 declaration="301234567897")
    entry = ManifestEntry(declaration="301234567897", tractor_plate="29C12345",
                          containers=(ManifestContainer(number=CONTAINER_OK),), seals=("VNH1234567",))
    app = create_app(WebServices(store, "VNHNG", manifest=ManifestIndex(Manifest(entries=(entry,)))))
    html = logged_in(app, store).get("/crossings/cargo-1-7?lang=en").text
    # Two crops (plate, container), each with its read's box drawn over it, the container's clipped at the edge.
    assert html.count('<figure class="crop"') == 2 and html.count('class="read-box"') == 4
    assert re.search(r'<rect class="read-box" x="44" y="14" width="160" height="40">', html)
    # Reads with confidence and alternatives; manifest values side by side, mismatch marked.
    assert "0.74" in html and "<code>MSKU1234570</code>" in html
    rows = {name: status for status, name in re.findall(r'<tr class="cmp (\w+)" data-field="(\w+)">', html)}
    assert rows == {"tractor_plate": "match", "containers": "mismatch", "seal": "match", "declaration": "match"}
    assert f'<td class="expected">{CONTAINER_OK}</td>' in html
    assert "<kbd>a</kbd>" in html and 'id="help"' in html and "/static/review.js" in html


def test_inspector_approves_with_reason(inspector: TestClient, store: Store) -> None:
    before = counts(store)
    resp = post_decision(inspector, "cargo-1-2", action="approve", reason="seal re-checked by hand: VNH1234567")
    assert resp.status_code == 303 and resp.headers["location"].startswith("/crossings/cargo-1-2?lang=vi&done=approve")
    assert counts(store) == (before[0] + 1, before[1] + 1, before[2] + 1)
    row = store.query("SELECT * FROM decisions")[0]
    assert (row["action"], row["username"], row["role"], row["field"]) == ("approve", "inspector", "inspector", None)
    assert store.query("SELECT review_action FROM crossings WHERE id = 'cargo-1-2'")[0][0] == "approve"
    audit = store.query("SELECT actor, action, target, details_json FROM audit_log ORDER BY id DESC LIMIT 1")[0]
    assert tuple(audit)[:3] == ("inspector", "decision_approve", "cargo-1-2")
    assert json.loads(audit["details_json"])["decision_id"] == row["id"]
    assert store.verify_audit_chain() is None
    event = decode_event(store.query("SELECT payload FROM outbox ORDER BY id DESC LIMIT 1")[0][0])
    assert event["type"] == EVENT_TYPE and event["id"] == row["event_id"] and event["subject"] == "cargo-1-2"
    assert event["data"]["action"] == "approve" and event["data"]["machine_decision"] == "HOLD"
    page = inspector.get(resp.headers["location"]).text
    assert "Đã cho qua lượt này." in page and "seal re-checked by hand: VNH1234567" in page


def test_hold(inspector: TestClient, store: Store) -> None:
    assert post_decision(inspector, "cargo-1-3", action="hold", reason="container not read").status_code == 303
    assert store.query("SELECT review_action FROM crossings WHERE id = 'cargo-1-3'")[0][0] == "hold"
    assert "cargo-1-3" not in [r["id"] for r in inspector.get("/api/queue").json()["rows"] if r["pending"]]


def test_correct_plate_is_a_label_and_searchable(web_app: FastAPI, inspector: TestClient, store: Store) -> None:
    add_crossing(store, "cargo-1-8", "REVIEW", plate="29C-123.45")
    resp = post_decision(inspector, "cargo-1-8", action="correct", target="tractor_plate", value="29c-128.45",
                         reason="8 read as 3")
    assert resp.status_code == 303
    label = store.query("SELECT * FROM labels")[0]
    plate_crop = store.query("SELECT evidence_sha256 FROM observations WHERE crossing_id = 'cargo-1-8' "
                             "AND kind = 'plate' LIMIT 1")[0][0]
    assert (label["field"], label["read_value"], label["value"], label["evidence_sha256"]) == (
        "tractor_plate", "29C-123.45", "29C-128.45", plate_crop)
    # A correction does not decide the crossing: it still waits for approve or hold.
    assert store.query("SELECT reviewed_at FROM crossings WHERE id = 'cargo-1-8'")[0][0] is None
    page = inspector.get("/crossings/cargo-1-8").text
    assert '<b class="value corrected"' in page and "29C-128.45" in page
    found = inspector.get("/search", params={"q": "29C12845", "match": "exact"}).text
    assert 'data-id="cargo-1-8"' in found
    assert logged_in(web_app, store, "model_engineer").get("/api/labels").json()[0]["value"] == "29C-128.45"
    assert inspector.get("/api/labels").status_code == 403


@pytest.mark.parametrize(("lang", "message"), [
    ("vi", "Số container không hợp lệ: sai chữ số kiểm tra (ISO 6346)."),
    ("en", "Invalid container number: the ISO 6346 check digit does not match."),
    ("zh", "集装箱号无效：ISO 6346校验位不符。"),
])
def test_container_correction_with_bad_check_digit_is_refused(inspector: TestClient, store: Store, lang: str,
                                                              message: str) -> None:
    before = counts(store)
    resp = post_decision(inspector, "cargo-1-3", lang, action="correct", target="container:0", value=CONTAINER_BAD,
                         reason="painted number")
    assert resp.status_code == 400
    assert message in resp.text and f'value="{CONTAINER_BAD}"' in resp.text  # the form keeps what was typed
    assert counts(store) == before


def test_container_correction_with_good_check_digit(inspector: TestClient, store: Store) -> None:
    resp = post_decision(inspector, "cargo-1-3", action="correct", target="container:0",
                         value=" tghu 987654 2 ", reason="painted number")
    assert resp.status_code == 303
    assert tuple(store.query("SELECT read_value, value FROM labels")[0]) == ("MWCU6059784", CONTAINER_OK)


@pytest.mark.parametrize("reason", ["", "   "])
def test_reason_is_required(inspector: TestClient, store: Store, reason: str) -> None:
    before = counts(store)
    resp = post_decision(inspector, "cargo-1-2", action="approve", reason=reason)
    assert resp.status_code == 400 and "Phải nhập lý do." in resp.text
    assert counts(store) == before


def test_model_engineer_cannot_decide(web_app: FastAPI, store: Store) -> None:
    engineer = logged_in(web_app, store, "model_engineer")
    token = engineer.get("/api/me").json()["csrf_token"]
    before = counts(store)
    resp = engineer.post("/crossings/cargo-1-2/decisions", data={"csrf_token": token, "action": "approve",
                                                                 "reason": "not mine to decide"})
    assert resp.status_code == 403
    assert engineer.get("/crossings/cargo-1-2").status_code == 403
    assert counts(store) == before


def test_supervisor_can_decide(web_app: FastAPI, store: Store) -> None:
    supervisor = logged_in(web_app, store, "supervisor")
    assert post_decision(supervisor, "cargo-1-2", action="hold", reason="second opinion").status_code == 303
    assert store.query("SELECT role FROM decisions")[0][0] == "supervisor"


def test_decision_without_csrf_token_is_refused(inspector: TestClient, store: Store) -> None:
    before = counts(store)
    resp = inspector.post("/crossings/cargo-1-2/decisions", data={"action": "approve", "reason": "no token"})
    assert resp.status_code == 403
    resp = inspector.post("/crossings/cargo-1-2/decisions", data={"action": "approve", "reason": "bad token",
                                                                  "csrf_token": "forged"})
    assert resp.status_code == 403
    assert counts(store) == before


def test_unknown_target_and_crossing(inspector: TestClient, store: Store) -> None:
    resp = post_decision(inspector, "cargo-1-2", action="correct", target="password", value="x1", reason="r")
    assert resp.status_code == 400 and "Hãy chọn trường cần sửa." in resp.text
    token = inspector.get("/api/me").json()["csrf_token"]
    resp = inspector.post("/crossings/nope/decisions", data={"csrf_token": token, "action": "approve", "reason": "r"})
    assert resp.status_code == 404


def test_decision_event_is_signed_like_verdicts(store: Store) -> None:
    key = Ed25519PrivateKey.generate()
    app = create_app(WebServices(store, "VNHNG", decision_events=DecisionEventBuilder("VNHNG", "box-7", key)))
    client = logged_in(app, store)
    assert post_decision(client, "cargo-1-2", action="hold", reason="x-ray").status_code == 303
    event = decode_event(store.query("SELECT payload FROM outbox ORDER BY id DESC LIMIT 1")[0][0])
    verify_event(event, key.public_key())
    assert event["source"] == "smartgate/VNHNG/cargo-1/box-7" and event["data"]["inspector"]["username"] == "inspector"


def test_hostile_reads_are_escaped(inspector: TestClient, store: Store) -> None:
    add_hostile_crossing(store)
    html = inspector.get("/crossings/cargo-1-evil").text
    assert SCRIPT not in html and IMG not in html
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=&#34;window.__pwned=2&#34;&gt;" in html
    assert html.count(SQL.replace("'", "&#39;")) >= 2  # the seal read and its reason
    assert "\x00" not in html and "\x1b" not in html and "\u202e" not in html
    assert "A⟨U+0000⟩B⟨U+001B⟩[31mC⟨U+202E⟩D⟨U+0007⟩" in html  # control characters are shown, not acted on
    assert "<script" not in html.replace('<script src="/static/review.js" defer></script>', "")
    queue = inspector.get("/").text
    assert "&lt;script&gt;" in queue and SCRIPT not in queue
    assert inspector.get("/api/queue").json()["rows"][0]["plate"] == SCRIPT  # JSON is data: queue.js uses textContent
    assert store.query("SELECT COUNT(*) FROM crossings")[0][0] == 4  # and nothing was dropped


def test_security_headers(web_app: FastAPI, inspector: TestClient) -> None:
    for path in ("/", "/crossings/cargo-1-2", "/static/review.js", "/api/queue", "/search"):
        resp = inspector.get(path)
        csp = resp.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "script-src 'self'" in csp and "'unsafe-inline'" not in csp
        assert resp.headers["x-content-type-options"] == "nosniff" and resp.headers["x-frame-options"] == "DENY"
        assert resp.headers["referrer-policy"] == "same-origin"
    anonymous = TestClient(web_app).get("/", follow_redirects=False)
    assert anonymous.status_code == 303 and "default-src 'self'" in anonymous.headers["content-security-policy"]


def test_no_inline_script_or_style_in_pages(inspector: TestClient, store: Store) -> None:
    add_crossing(store, "cargo-1-7", "HOLD")
    for path in ("/", "/crossings/cargo-1-7", "/search?q=29C", "/login"):
        html = inspector.get(path).text
        assert not re.search(r"<script(?![^>]*\bsrc=\"/static/)", html), path
        assert " style=" not in html and "<style" not in html and " on" + "click=" not in html, path
        assert "http://" not in html and "https://" not in html, path  # nothing from outside the appliance
