"""``appliance bench ui``: server time of the inspectors' pages on a store of 100,000 crossings.

Builds a temporary store (bulk INSERTs in one transaction: the crossings, three observations
each, a mix of verdicts with some already decided) plus one crossing with 12 evidence frames (real
JPEG crops cut as the lane cuts them), logs in through the real form, then times N requests of
each page with an in-process ``TestClient`` (routing, login wall, CSRF middleware, SQL, templates;
no network): the review page of that crossing, the queue's first and last pages, the queue poll,
and searches. Target: p95 < 300 ms per page. Baselines in the same run: the queue's SQL alone,
the same SQL with the index switched off (``NOT INDEXED``), and a substring search by ``LIKE`` over
the crossings' JSON instead of the search keys.
"""

from __future__ import annotations

import json
import logging
import random
import re
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from appliance.store.db import Store
from appliance.store.review_queue import QUEUE_IDS_SQL
from appliance.store.users import Accounts

TARGET_MS = 300.0
PAGE_SIZE = 50
PASSWORD = "bench password, not a secret"  # a throw-away user of a throw-away store
REVIEW_ID = "bench-lane-review"
BASE_TS = 1_790_000_000.0


@dataclass
class Measure:
    name: str
    samples_ms: list[float]
    target_ms: float | None = None

    def pct(self, q: float) -> float:
        data = sorted(self.samples_ms)
        if not data:
            return 0.0
        return data[min(len(data) - 1, max(0, round(q * (len(data) - 1))))]


@dataclass
class UiBench:
    crossings: int
    pending: int
    requests: int
    build_s: float
    db_bytes: int
    pages: list[Measure] = field(default_factory=list)
    baselines: list[Measure] = field(default_factory=list)


def _plate(i: int) -> str:
    return f"{10 + i % 89}C-{i // 100 % 1000:03d}.{i % 100:02d}"


def _container(i: int) -> str:
    from appliance.analyzers.iso6346 import check_digit

    prefix = f"{'MSK' if i % 2 else 'TGH'}U{i % 1_000_000:06d}"
    return prefix + str(check_digit(prefix))


def _summary(i: int) -> dict[str, Any]:
    def fr(value: str, conf: float) -> dict[str, Any]:
        return {"value": value, "confidence": conf, "votes": 3, "evidence": None, "method": "read"}

    return {"tractor_plate": fr(_plate(i), 0.93), "trailer_plate": None, "fleet_id": None,
            "containers": [fr(_container(i), 0.9)], "container_candidates": [], "size_types": ["22G1"],
            "seal": {"present": True, "serial": fr(f"VNH{i:07d}", 0.8)}, "declarations": [f"30{i:010d}"]}


def build_store(root: Path, crossings: int, seed: int = 7) -> Store:
    """A store with ``crossings`` crossings (bulk, one transaction) and the 12-frame review crossing."""
    rng = random.Random(seed)
    store = Store(root / "ui.db", root / "evidence")
    rows, obs = [], []
    for i in range(crossings):
        roll = rng.random()
        decision = "HOLD" if roll < 0.05 else "REVIEW" if roll < 0.15 else "CLEAR"
        ended = BASE_TS + i * 20.0
        reviewed = ended + 600 if decision != "CLEAR" and rng.random() < 0.7 else None
        summary = _summary(i)
        reasons = [] if decision == "CLEAR" else [{"code": "seal_unread", "severity": decision, "field": "seal",
                                                   "read": None, "expected": f"VNH{i:07d}"}]
        rows.append((f"cargo-{1 + i % 4}-{i}", f"cargo-{1 + i % 4}", ended - 8, ended, decision,
                     summary["declarations"][0], json.dumps(reasons), json.dumps(summary), ended, reviewed,
                     "approve" if reviewed else None))
        cid = rows[-1][0]
        obs += [(cid, "front", ended - 6, "plate", _plate(i), 0.93, '{"x": 500, "y": 600, "w": 160, "h": 40}'),
                (cid, "side", ended - 4, "container", _container(i), 0.9, '{"x": 900, "y": 80, "w": 130, "h": 36}'),
                (cid, "rear", ended - 2, "seal", f"VNH{i:07d}", 0.8, None)]
    with store.transaction() as conn:
        conn.executemany("INSERT INTO crossings (id, lane_id, started_at, ended_at, decision, declaration, "
                         "reasons_json, summary_json, created_at, reviewed_at, review_action) "
                         "VALUES (?,?,?,?,?,?,?,?,?,?,?)", rows)
        conn.executemany("INSERT INTO observations (crossing_id, source_id, ts, kind, value, confidence, bbox_json) "
                         "VALUES (?,?,?,?,?,?,?)", obs)
    add_review_crossing(store, BASE_TS + crossings * 20.0 + 20)
    with store.transaction() as conn:
        conn.execute("ANALYZE")
    return store


def add_review_crossing(store: Store, ended: float, frames: int = 12) -> None:
    """A HOLD crossing whose plate and container were each read on ``frames // 2`` frames, with crops."""
    import cv2
    import numpy as np

    from appliance.lanes.analysis import crop_jpeg
    from appliance.lanes.crossing import Crossing, FieldResult, SealState
    from appliance.reads import BBox, ContainerRead, Observation, PlateRead
    from appliance.verdicts.rules import Reason, Verdict

    observations = []
    for f in range(frames):
        image = np.full((1080, 1920, 3), 70 + 10 * f, np.uint8)
        box = BBox(300 + 40 * f, 700 - 20 * f, 220, 60) if f % 2 == 0 else BBox(1400 + 20 * f, 120, 300, 70)
        cv2.rectangle(image, (box.x, box.y), (box.x + box.w, box.y + box.h), (230, 230, 230), -1)
        text = "29C-123.45" if f % 2 == 0 else "MSKU1234565"
        cv2.putText(image, text, (box.x + 6, box.y + box.h - 14), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (20, 20, 20), 2)
        data = crop_jpeg(image, box)
        assert data is not None
        sha = store.put_evidence(data)
        read: PlateRead | ContainerRead = (
            PlateRead(text, "VN", "one_line", "yellow", 0.8, box, raw_text=text) if f % 2 == 0
            else ContainerRead(text, 0.7, box, "22G1", candidates=(text, "MSKU1234570"), verified=False))
        observations.append(Observation("front" if f % 2 == 0 else "side", ended - 6 + f * 0.4, read, sha))
    crossing = Crossing(
        REVIEW_ID, "cargo-1", ended - 8, ended,
        tractor_plate=FieldResult("29C-123.45", 0.8, frames // 2, observations[0].evidence_sha256),
        containers=(FieldResult("MSKU1234565", 0.7, frames // 2, observations[1].evidence_sha256),),
        seal=SealState(True, None), declarations=("301234567890",), observations=tuple(observations),
    )
    reasons = (Reason("seal_unread", "REVIEW", "seal", None, "VNH1234567"),
               Reason("container_mismatch", "HOLD", "container", "MSKU1234565", "TGHU9876542"))
    store.save_crossing(crossing, Verdict("HOLD", reasons, "301234567890"))


def _time(fn: Callable[[], Any], n: int, warmup: int = 3) -> list[float]:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    return samples


def bench_ui(crossings: int = 100_000, requests: int = 50, baseline_requests: int | None = None) -> UiBench:
    from fastapi.testclient import TestClient

    from appliance.web.app import WebServices, create_app

    for name in ("httpx", "httpx2"):  # one INFO line per request would drown the table
        logging.getLogger(name).setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="bench-ui-") as tmp:
        t0 = time.perf_counter()
        store = build_store(Path(tmp), crossings)
        build_s = time.perf_counter() - t0
        try:
            Accounts(store).create_user("bench", PASSWORD, "inspector", actor="bench")
            client = TestClient(create_app(WebServices(store, "VNHNG")))
            token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text)
            assert token is not None
            resp = client.post("/login", data={"username": "bench", "password": PASSWORD,
                                                "csrf_token": token.group(1)}, follow_redirects=False)
            assert resp.status_code == 303, resp.text

            total = crossings + 1
            last_page = (total + PAGE_SIZE - 1) // PAGE_SIZE
            pending = int(store.query("SELECT COUNT(*) FROM crossings WHERE decision IN ('REVIEW', 'HOLD') "
                                      "AND reviewed_at IS NULL")[0][0])
            stamp = client.get("/api/queue").json()["stamp"]

            def get(url: str, check: Callable[[str], bool] | None = None) -> Callable[[], None]:
                def fn() -> None:
                    r = client.get(url)
                    assert r.status_code == 200, (url, r.status_code)
                    assert check is None or check(r.text), url
                return fn

            review_page = get(f"/crossings/{REVIEW_ID}", lambda html: html.count('class="read-box"') == 12)
            plate = _plate(crossings // 3)
            pages = [
                Measure(f"review page, 12 evidence frames: /crossings/{REVIEW_ID}", _time(review_page, requests),
                        TARGET_MS),
                Measure("queue, first page: /", _time(get("/", lambda h: REVIEW_ID in h), requests), TARGET_MS),
                Measure(f"queue, last page: /?page={last_page}", _time(get(f"/?page={last_page}"), requests),
                        TARGET_MS),
                Measure("queue poll, nothing changed: /api/queue?since=", _time(get(f"/api/queue?since={stamp}"),
                                                                                  requests), TARGET_MS),
                Measure("search, plate exact", _time(get(f"/search?q={plate}&field=plate&match=exact",
                                                         lambda h: "results" in h), requests), TARGET_MS),
                Measure("search, plate substring", _time(get("/search?q=C123&field=plate"), requests), TARGET_MS),
                Measure("search, lane + verdict + time range", _time(get(
                    "/search?lane=cargo-2&verdict=HOLD&from=2026-09-20T00:00&to=2026-10-20T00:00"), requests),
                    TARGET_MS),
            ]
            n = baseline_requests or requests
            deep = (last_page - 1) * PAGE_SIZE
            no_index = QUEUE_IDS_SQL.replace("FROM crossings", "FROM crossings NOT INDEXED")
            like = ("SELECT id FROM crossings WHERE summary_json LIKE ? ORDER BY ended_at DESC, id DESC LIMIT 51")
            baselines = [
                Measure("queue SQL alone, first page (crossings_queue index)",
                        _time(lambda: store.query(QUEUE_IDS_SQL, (PAGE_SIZE + 1, 0)), n)),
                Measure("queue SQL alone, last page (crossings_queue index)",
                        _time(lambda: store.query(QUEUE_IDS_SQL, (PAGE_SIZE + 1, deep)), n)),
                Measure("queue SQL, first page, NOT INDEXED", _time(lambda: store.query(no_index, (PAGE_SIZE + 1, 0)),
                                                                    n)),
                Measure("queue SQL, last page, NOT INDEXED",
                        _time(lambda: store.query(no_index, (PAGE_SIZE + 1, deep)), n)),
                Measure("plate substring by LIKE on summary_json (no search keys)",
                        _time(lambda: store.query(like, ("%C-123%",)), n)),
            ]
            db_bytes = sum(p.stat().st_size for p in Path(tmp).glob("ui.db*"))
            return UiBench(crossings, pending, requests, build_s, db_bytes, pages, baselines)
        finally:
            store.close()


def format_ui_bench(r: UiBench) -> str:
    def row(m: Measure, target: bool) -> str:
        verdict = ("ok" if m.pct(0.95) < (m.target_ms or 0) else "MISSED") if target and m.target_ms else ""
        goal = f"< {m.target_ms:.0f}" if target and m.target_ms else ""
        return (f"{m.name:66s} {statistics.median(m.samples_ms):9.2f} {m.pct(0.95):9.2f} {max(m.samples_ms):9.2f} "
                f"{goal:>8s} {verdict:6s}")

    header = f"{'measure':66s} {'p50 ms':>9s} {'p95 ms':>9s} {'max ms':>9s} {'target':>8s}"
    return "\n".join([
        f"ui benchmark: {r.crossings:,} crossings + 1 with 12 evidence frames, {r.pending:,} still to review; "
        f"store built in {r.build_s:.1f} s ({r.db_bytes / 1e6:.0f} MB); {r.requests} requests each",
        "server time: in-process TestClient, logged in (login wall, CSRF middleware, SQL, templates; no network)",
        "",
        header,
        *(row(m, True) for m in r.pages),
        "",
        "baselines (same store, same run):",
        *(row(m, False) for m in r.baselines),
    ])
