"""Dates and times in the gate's time zone (``site.timezone``) and the request's locale."""

from __future__ import annotations

import re
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient

from appliance.config import parse_config
from appliance.errors import ConfigError
from appliance.store.db import Store
from appliance.web import localtime
from appliance.web.app import WebServices, create_app
from tests.web.auth_helpers import logged_in

# cargo-1-2 of the test store ended at 1_795_000_013 = 2026-11-18 11:06:53 UTC.
SHOWN = {
    ("Asia/Ho_Chi_Minh", "vi"): "18:06:53 18 thg 11, 2026",
    ("Asia/Ho_Chi_Minh", "zh"): "2026年11月18日 18:06:53",
    ("Asia/Ho_Chi_Minh", "en"): "Nov 18, 2026, 6:06:53\u202fPM",
    ("Asia/Shanghai", "vi"): "19:06:53 18 thg 11, 2026",
    ("Asia/Shanghai", "zh"): "2026年11月18日 19:06:53",
}


def client(store: Store, zone: str) -> TestClient:
    return logged_in(create_app(WebServices(store, "VNHNG", timezone=zone)), store)


def queue_time(html: str, crossing_id: str) -> str:
    match = re.search(rf'<a href="/crossings/{crossing_id}\?lang=\w+">([^<]+)</a>', html)
    assert match is not None
    return match.group(1)


@pytest.mark.parametrize(("zone", "lang"), list(SHOWN))
def test_a_crossing_shows_at_the_gates_local_time(store: Store, zone: str, lang: str) -> None:
    c = client(store, zone)
    expected = SHOWN[(zone, lang)]
    assert queue_time(c.get(f"/?lang={lang}").text, "cargo-1-2") == expected
    rows = {r["id"]: r for r in c.get(f"/api/queue?lang={lang}").json()["rows"]}  # what queue.js draws
    assert rows["cargo-1-2"]["when"] == expected
    page = c.get(f"/crossings/cargo-1-2?lang={lang}").text
    assert f"&ndash; {expected}</p>" in page


def test_vietnam_is_the_default_zone(store: Store) -> None:
    c = logged_in(create_app(WebServices(store, "VNHNG")), store)
    assert queue_time(c.get("/").text, "cargo-1-2") == SHOWN[("Asia/Ho_Chi_Minh", "vi")]
    assert parse_config("site: {gate: VNHNG, box_id: b}\nlanes: [{id: l, sources: [{id: u, role: front, "
                        "type: usb, device: 0}]}]\n").site.timezone == "Asia/Ho_Chi_Minh"


def test_a_posted_forms_language_formats_its_page(store: Store) -> None:
    c = client(store, "Asia/Ho_Chi_Minh")
    token = re.search(r'name="csrf_token" value="([^"]+)"', c.get("/crossings/cargo-1-2").text)
    assert token is not None
    resp = c.post("/crossings/cargo-1-2/decisions", data={"action": "approve", "reason": "", "lang": "zh",
                                                          "csrf_token": token.group(1)})
    assert resp.status_code == 400 and f"&ndash; {SHOWN[('Asia/Ho_Chi_Minh', 'zh')]}</p>" in resp.text


def test_unknown_time_zone_is_refused_with_its_line() -> None:
    text = ("site:\n  gate: VNHNG\n  box_id: b\n  timezone: Asia/Hanoi\n"
            "lanes: [{id: l, sources: [{id: u, role: front, type: usb, device: 0}]}]\n")
    with pytest.raises(ConfigError) as info:
        parse_config(text, "gate.yaml")
    assert "gate.yaml:4: site.timezone:" in str(info.value) and "unknown IANA time zone 'Asia/Hanoi'" in str(info.value)


def test_typed_times_are_read_in_the_gates_zone() -> None:
    localtime.use(zone=ZoneInfo("Asia/Shanghai"))
    try:
        assert localtime.parse_local("2026-11-18T19:06") == 1_795_000_000 - 40
        assert localtime.parse_local("2026-11-18T11:06:40+00:00") == 1_795_000_000
        assert localtime.parse_local("  ") is None
        with pytest.raises(ValueError):
            localtime.parse_local("yesterday")
    finally:
        localtime.use(zone=ZoneInfo(localtime.DEFAULT_TIMEZONE), lang="vi")
