"""A full evidence disk while verdicts keep flowing: a real size-limited filesystem (tmpfs mounted with
``size=``), a real SQLite store on another filesystem, a real Mosquitto broker and publisher.

Where ``mount`` is refused (not root, no CAP_SYS_ADMIN), the evidence folder is an ordinary folder and the
disk-full phase cannot happen: the test then checks the budget smaller than the data only, and says so in
its output (``-rA``). The SQLite file never lives on the evidence disk (docs/RETENTION.md): a full evidence
disk costs images, never a verdict or its outbox event.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.config import parse_config
from appliance.lanes.crossing import Crossing, FieldResult
from appliance.publish.decision_events import DecisionEventBuilder
from appliance.publish.events import VerdictEventBuilder
from appliance.publish.publisher import Publisher
from appliance.reads import BBox, Observation, PlateRead
from appliance.retention.holds import set_hold
from appliance.retention.service import RetentionService
from appliance.store import decisions
from appliance.store.db import EvidenceWriteError, Store
from appliance.store.decisions import DecisionRequest
from appliance.verdicts.rules import Verdict
from tests.integration.mosquitto import Broker, wait_until
from tests.integration.test_outbox import FAST, KEY, Central, mqtt_sink

KB = 1024
DISK = 512 * KB
IMAGE = 16 * KB


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[tuple[Path, bool]]:
    """(evidence folder, whether it is a real size-limited mount)."""
    folder = tmp_path / "evidence"
    folder.mkdir()
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK // KB}k,mode=0700", "tmpfs", str(folder)],
                              capture_output=True, text=True, timeout=10)
        mounted = done.returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        mounted = False
    if not mounted:
        print("mount refused here: the evidence folder is not size-limited, only the budget is tested")
    try:
        yield folder, mounted
    finally:
        if mounted:
            subprocess.run(["umount", str(folder)], check=False, timeout=30)


def one_crossing(store: Store, i: int, decision: str) -> tuple[str, str | None]:
    """What a lane does: the image first (it may fail: disk full), then the verdict row and its event."""
    image = os.urandom(IMAGE)
    try:
        sha: str | None = store.put_evidence(image)
    except EvidenceWriteError:
        sha = None  # the lane keeps the read without its image (appliance/lanes/analysis.py)
    cid = f"c{i:04d}"
    obs = Observation("front", float(i), PlateRead("12C-123.45", "VN", "one_line", "yellow", 0.9,
                                                   BBox(1, 2, 3, 4)), sha)
    store.save_crossing(Crossing(id=cid, lane_id="l1", started_at=float(i), ended_at=i + 1.0,
                                 tractor_plate=FieldResult("12C-123.45", 0.9, 1, sha), observations=(obs,)),
                        Verdict(decision, (), None))
    return cid, sha


def test_full_disk_keeps_verdicts_flowing_and_held_evidence(tmp_path: Path, broker: Broker,
                                                           small_disk: tuple[Path, bool]) -> None:
    evidence_dir, mounted = small_disk
    cfg = parse_config(
        "site: {gate: VNHNG, box_id: box-1}\n"
        "lanes: [{id: l1, sources: [{id: front, type: video_file, path: x.mp4, role: front}]}]\n"
        f"storage: {{path: {tmp_path / 'db' / 'a.db'}, evidence_dir: {evidence_dir}}}\n"
        f"faces: {{store_path: {tmp_path / 'faces.db'}}}\n"
        "retention: {budgets: {evidence: 384KiB}, target_fraction: 0.5, alarm_fraction: 0.9, interval_s: 1}\n")
    store = Store(cfg.storage.path, cfg.storage.evidence_dir, event_builder=VerdictEventBuilder("VNHNG", "box-1", KEY))
    central = Central(broker.port)
    wait_until(lambda: central.client.is_connected(), 5, "the subscriber to connect")
    pub = Publisher(store, [mqtt_sink(broker.port)], default_policy=FAST)
    pub.start()
    status: dict[str, object] = {}
    retention = RetentionService(cfg, store, status)
    try:
        # 1. Only undecided REVIEW crossings: nothing may be evicted, the disk fills up.
        cid, held_sha = one_crossing(store, 0, "REVIEW")
        assert held_sha is not None
        set_hold(store, cid, "case 2026/17", "admin")
        held_file = store.evidence_path(held_sha)
        assert held_file is not None
        held_bytes = held_file.read_bytes()
        written, failed = [cid], 0
        for i in range(1, 60):
            cid, sha = one_crossing(store, i, "REVIEW")
            written.append(cid)
            failed += sha is None
            retention.run_once()
            if mounted and failed >= 3:
                break
        classes = status["retention"]["classes"]  # type: ignore[index]
        assert classes["evidence"]["state"] == "blocked", "over budget with everything held must say so"
        assert classes["evidence"]["evicted_files"] == 0
        if mounted:
            assert failed >= 3, "the size-limited disk never filled up"
            assert not list(evidence_dir.rglob("*.tmp")), "a failed write left a partial file"
        # every verdict is stored and published, with or without its image
        assert set(store.counts().values()) == {len(written)}
        wait_until(lambda: len(central.ids()) == len(written), 20, "every verdict at central")

        # 2. Inspectors decide; retention frees space oldest first, but never the legal hold.
        events = DecisionEventBuilder("VNHNG", "box-1", KEY)
        for c in written:
            decisions.record(store, c, "lan", "inspector", DecisionRequest("approve", "checked"), events)
        decided = len(written)
        wait_until(lambda: store.outbox_status()[0].backlog == 0, 20, "the decisions to be delivered")
        retention.run_once()
        assert status["retention"]["classes"]["evidence"]["state"] == "ok"  # type: ignore[index]

        # 3. Verdicts keep flowing with the retention thread running: no write fails any more.
        retention.start()
        for i in range(100, 140):
            cid, sha = one_crossing(store, i, "CLEAR")
            assert sha is not None, f"crossing {cid}: evidence write failed although retention runs"
            written.append(cid)
            wait_until(lambda: store.outbox_status()[0].backlog < 8, 10, "the publisher to keep up")
            retention.run_once()  # the thread runs too; a pass per crossing keeps the test short
        wait_until(lambda: len(central.ids()) == len(written) + decided, 20, "every verdict and decision at central")
        assert held_file.read_bytes() == held_bytes, "evidence on legal hold was touched"
        evicted = store.query("SELECT count(*) FROM crossings WHERE evidence_evicted_at IS NOT NULL")[0][0]
        assert evicted > 0
        assert store.query("SELECT evidence_evicted_at FROM crossings WHERE id = 'c0000'")[0][0] is None
        assert store.integrity_check() == "ok"
        assert sum(store.counts().values()) == len(written)
        # the evidence disk never went over the budget by more than one image per pass
        used = sum(p.stat().st_size for p in evidence_dir.rglob("*") if p.is_file())
        assert used <= 384 * KB + IMAGE
    finally:
        retention.stop()
        pub.stop()
        central.close()
        store.close()
