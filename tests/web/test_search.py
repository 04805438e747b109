"""``/search``: by plate, container, seal, declaration (exact or substring, normalised), lane, time, verdict."""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient

from appliance.store.db import Store
from appliance.store.search import SearchQuery, search
from tests.web.review_helpers import add_crossing

T0 = 1_795_100_000.0


def ids(client: TestClient, **params: str) -> list[str]:
    resp = client.get("/search", params=params)
    assert resp.status_code == 200, resp.text
    return re.findall(r'<tr data-id="([^"]+)"', resp.text)


def local(ts: float) -> str:
    """What an inspector types: the gate's local time (site.timezone, Asia/Ho_Chi_Minh by default)."""
    return dt.datetime.fromtimestamp(ts, ZoneInfo("Asia/Ho_Chi_Minh")).strftime("%Y-%m-%dT%H:%M")


@pytest.fixture()
def searchable(store: Store) -> Store:
    add_crossing(store, "lane2-a", "HOLD", lane_id="cargo-2", plate="29C-123.45", container="TGHU9876542",
                 seal="VNH0000001", declaration="301111111111", ended_at=T0, frames=1)
    add_crossing(store, "lane2-b", "CLEAR", lane_id="cargo-2", plate="29C-128.45", container="MSKU1234565",
                 seal="VNH0000002", declaration="302222222222", ended_at=T0 + 3600, frames=1)
    add_crossing(store, "lane3-c", "REVIEW", lane_id="cargo-3", plate="桂A·12345", container="MSKU1234570",
                 seal="VNH0000003", declaration="303333333333", ended_at=T0 + 7200, frames=1)
    return store


def test_plate_exact_is_normalised(inspector: TestClient, searchable: Store) -> None:
    for typed in ("29C-123.45", "29c12345", "29C 123 45"):
        assert ids(inspector, q=typed, field="plate", match="exact") == ["lane2-a"]
    assert ids(inspector, q="桂A12345", field="plate", match="exact") == ["lane3-c", "cargo-1-3"]  # 桂A·12345, 桂A12345
    assert ids(inspector, q="29C1234", field="plate", match="exact") == []


def test_substring_newest_first(inspector: TestClient, searchable: Store) -> None:
    assert ids(inspector, q="29C-12", field="plate") == ["lane2-b", "lane2-a"]
    assert ids(inspector, q="8.45") == ["lane2-b"]


def test_container_seal_declaration(inspector: TestClient, searchable: Store) -> None:
    assert ids(inspector, q="MSKU 123456 5", field="container", match="exact") == ["lane2-b"]
    assert ids(inspector, q="MSKU123", field="container") == ["lane3-c", "lane2-b"]
    assert ids(inspector, q="VNH0000003", field="seal", match="exact") == ["lane3-c"]
    assert ids(inspector, q="302222222222", field="declaration", match="exact") == ["lane2-b"]
    assert ids(inspector, q="302222222222", field="seal") == []  # only the chosen field


def test_lane_verdict_and_time_range(inspector: TestClient, searchable: Store) -> None:
    assert ids(inspector, lane="cargo-2") == ["lane2-b", "lane2-a"]
    assert ids(inspector, verdict="HOLD") == ["lane2-a", "cargo-1-2"]
    assert ids(inspector, lane="cargo-2", verdict="CLEAR") == ["lane2-b"]
    assert ids(inspector, **{"from": local(T0 + 60), "to": local(T0 + 7200)}) == ["lane2-b"]
    assert ids(inspector, q="29C", **{"from": local(T0 - 60)}) == ["lane2-b", "lane2-a"]
    bad = inspector.get("/search", params={"from": "yesterday"})
    assert bad.status_code == 400 and "Thời gian không hợp lệ." in bad.text


def test_empty_form_lists_nothing_and_punctuation_matches_nothing(inspector: TestClient, searchable: Store) -> None:
    assert ids(inspector) == []
    assert ids(inspector, q="--") == []
    assert "Không tìm thấy lượt nào." in inspector.get("/search", params={"q": "ZZZ999"}).text
    assert ids(inspector, q="%") == []  # no LIKE wildcards: keys are letters and digits only


def test_pages(inspector: TestClient, store: Store) -> None:
    for i in range(55):
        add_crossing(store, f"p-{i:02d}", "CLEAR", lane_id="cargo-9", plate=f"51R-{i:03d}.00", ended_at=T0 + i,
                     frames=1)
    first = inspector.get("/search", params={"lane": "cargo-9"}).text
    assert len(re.findall(r"<tr data-id=", first)) == 50 and 'rel="next"' in first
    assert "page=2" in re.search(r'rel="next" href="([^"]+)"', first).group(1)  # type: ignore[union-attr]
    assert ids(inspector, lane="cargo-9", page="2") == ["p-04", "p-03", "p-02", "p-01", "p-00"]


def test_search_uses_the_indexes(store: Store) -> None:
    plans = []
    for query in (SearchQuery("29C12345", "plate", exact=True), SearchQuery(lane="cargo-1"),
                  SearchQuery(verdict="HOLD")):
        search(store, query)  # runs
    for sql in ("SELECT crossing_id FROM search_keys WHERE kind IN ('plate') AND key = '29C12345'",
                "SELECT id FROM crossings WHERE lane_id = 'cargo-1' ORDER BY ended_at DESC, id DESC"):
        plans.append(" ".join(r[3] for r in store.query("EXPLAIN QUERY PLAN " + sql)))
    assert "USING PRIMARY KEY (kind=? AND key=?)" in plans[0]
    assert "USING INDEX crossings_by_lane" in plans[1]
