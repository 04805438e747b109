"""Hot swap while a lane runs: a simulated lane is replayed through the real appliance wiring
(``init_services`` + ``run_lane`` + the model watcher); after the first crossing a broken package is
refused and another detector version is activated through the registry. Every frame must be analysed
exactly once, each frame and each verdict must name the versions that made it, and nothing restarts.

Real OpenCV decoding, real ONNX Runtime, real SQLite; nothing mocked.
"""

from __future__ import annotations

import itertools
import json
import logging
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import cv2
import pytest

from appliance.analyzers.line_memory import MemoryLink
from appliance.app import init_services, run_lane
from appliance.config import load_config
from appliance.errors import ModelError
from appliance.ingest.frames import Frame
from appliance.lanes.analysis import FrameAnalyzer
from appliance.lanes.assembly import Settled
from appliance.lanes.crossing import Crossing
from appliance.publish.events import decode_event
from appliance.reads import BBox, Observation
from appliance.sim import simulate
from appliance.verdicts.rules import Verdict
from tests.integration.model_packages import INT8, REC, build_store, install_version

pytestmark = pytest.mark.slow

DET = "text-detection"
NEW = "text-detection/ppocrv4-det@2"
WORKERS = 2


@pytest.fixture(scope="module")
def lane_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sim")
    simulate(out, 3, seed=5, width=1280, height=720, gap_s=3.0, night_share=0.0, mismatch_share=0.0)
    return out


class RecordingAnalyzer(FrameAnalyzer):
    """The lane's real analyzer, also noting each analysed frame, the versions it used and its thread."""

    def __init__(self, inner: FrameAnalyzer):
        super().__init__(inner.readers, inner.store, inner.detector_max_side)
        self.frames: list[tuple[str, int, dict[str, str], str]] = []
        self._lock = threading.Lock()

    def analyze(self, role: str, frame: Frame, roi: BBox | None = None,
                settled: Settled | None = None, memory: MemoryLink | None = None) -> list[Observation]:
        assert self.readers.models is not None
        with self.readers.models.frame() as used:  # the analyzer's own frame scope nests into this one
            observations = super().analyze(role, frame, roi=roi, settled=settled, memory=memory)
        with self._lock:
            self.frames.append((frame.source_id, frame.index, dict(used), threading.current_thread().name))
        return observations


def frame_count(video: Path) -> int:
    cap = cv2.VideoCapture(str(video))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n


def test_model_hot_swap_while_the_lane_runs(lane_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = tmp_path / "models"
    build_store(root)
    install_version(root, DET, "ppocrv4-det", "1", "2")  # the float detector as a new version
    install_version(root, DET, "ppocrv4-det", "1", "3", corrupt=True)  # its file does not match its sha256
    config_path = tmp_path / "lane.yaml"
    text = (lane_dir / "lane.yaml").read_text(encoding="utf-8").replace("path: ", f"path: {lane_dir}/")
    text = text.replace("file: manifest.json", f"file: {lane_dir}/manifest.json")
    # The int8 detector serves first; the float one is activated as version 2 mid-run.
    text = text.replace("analyzers:\n", "analyzers:\n  ocr_detector: ppocrv4-det-int8\n", 1)
    assert "ocr_detector: ppocrv4-det-int8" in text
    config_path.write_text(
        text + f"storage:\n  path: {tmp_path / 'gate.db'}\n  evidence_dir: {tmp_path / 'ev'}\n"
        f"models:\n  root: {root}\n  allow_unsigned: true\n  watch_interval_s: 0.05\n", encoding="utf-8")
    config = load_config(config_path)
    services = init_services(config)
    registry, watcher = services.registry, services.watcher
    assert registry is not None and watcher is not None
    recorder = RecordingAnalyzer(services.analyzer)
    services.analyzer = recorder
    slots = recorder.readers.models
    assert slots is not None
    slot, recognizer_model = slots[DET], slots["text-recognition"].active

    crossings: list[tuple[Crossing, Verdict]] = []
    first_closed, swapped = threading.Event(), threading.Event()

    def on_crossing(crossing: Crossing, verdict: Verdict) -> None:
        crossings.append((crossing, verdict))
        if len(crossings) == 1:
            first_closed.set()
        if len(crossings) == 2:
            swapped.wait(60)  # so the third passage runs after the swap however busy the machine is

    lane_runs: list[str] = []

    def lane() -> None:
        lane_runs.append(threading.current_thread().name)
        run_lane(config.lanes[0], services, workers=WORKERS, on_crossing=on_crossing)

    thread = threading.Thread(target=lane, name="lane-under-test")
    caplog.set_level(logging.INFO)
    watcher.start()
    try:
        thread.start()
        assert first_closed.wait(120), "the first crossing never closed"
        with pytest.raises(ModelError, match="sha256"):
            registry.activate(DET, "ppocrv4-det", "3", actor="test")
        assert registry.task_state(DET).active.label == "ppocrv4-det-int8@1"
        registry.activate(DET, "ppocrv4-det", "2", actor="test", reason="hot swap test")
        deadline = time.monotonic() + 60
        while slot.label != "ppocrv4-det@2" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert slot.label == "ppocrv4-det@2", "the watcher did not swap the model in"
        swapped.set()
        thread.join(300)
        assert not thread.is_alive()
    finally:
        swapped.set()
        watcher.stop()

    # Nothing failed, nothing was lost, nothing was analysed twice.
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    lane_status = services.status["lanes"]["sim-lane"]
    assert lane_status["state"] == "finished"
    for source in ("front", "rear"):
        assert lane_status["sources"][source]["frames_read"] == frame_count(lane_dir / "cameras" / f"{source}.mp4")
    analysed = Counter((source, index) for source, index, _, _ in recorder.frames)
    assert analysed and max(analysed.values()) == 1, "a frame was analysed twice"
    assert len(analysed) == lane_status["analysed_frames"], "a frame the lane sent for analysis was not analysed"
    assert all(name.startswith("lane-sim-lane") for *_, name in recorder.frames)  # on the lane's own workers

    # Each camera frame ran one detector version: the old one, then (after the swap) the new one.
    per_source: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for source, index, used, _ in recorder.frames:
        if source != "kiosk":
            per_source[source].append((index, used[DET]))
    for source, seq in per_source.items():
        versions = [v for _, v in sorted(seq)]
        assert set(versions) == {"ppocrv4-det-int8@1", "ppocrv4-det@2"}, source
        switches = sum(a != b for a, b in itertools.pairwise(versions))
        assert switches <= 3, f"{source}: versions flip back and forth: {versions}"  # 1, or 3 at the very seam
        assert versions[0] == "ppocrv4-det-int8@1" and versions[-1] == "ppocrv4-det@2"

    # Verdicts name the versions that made them.
    assert len(crossings) == 3
    models = [c.models for c, _ in crossings]
    assert models[0] == (INT8, REC)
    assert models[-1] == (NEW, REC)
    assert all(m and REC in m for m in models)
    rows = {r.id: r for r in services.store.list_crossings(limit=10)}
    for crossing, _ in crossings:
        assert rows[crossing.id].summary["models"] == list(crossing.models)
    events = [decode_event(bytes(r["payload"])) for r in services.store.query("SELECT payload FROM outbox")]
    assert sorted(tuple(e["data"]["models"]) for e in events) == sorted(models)
    _validate_events(events)
    extras = [json.loads(r["extras_json"]) for r in services.store.query(
        "SELECT extras_json FROM observations WHERE extras_json IS NOT NULL")]
    assert {e.get("models") for e in extras} >= {f"{INT8}, {REC}", f"{NEW}, {REC}"}

    # No restart: one lane run, one swap done by the watcher thread, the recogniser never reloaded.
    assert lane_runs == ["lane-under-test"] and watcher.swaps == 1 and slot.swaps == 1
    assert slots["text-recognition"].active is recognizer_model
    swaps = [r for r in caplog.records if "now serving ppocrv4-det@2" in r.getMessage()]
    assert len(swaps) == 1 and swaps[0].threadName == "model-watcher"
    assert {(m["name"], m["version"]) for m in services.status["models"]} == {("ppocrv4-det", "2"),
                                                                             ("ppocrv4-rec", "1")}
    history = registry.history(DET)
    assert [(h.action, h.label) for h in history] == [("activate", "ppocrv4-det@2"), ("refused", "ppocrv4-det@3")]
    services.store.close()


def _validate_events(events: list[dict[str, Any]]) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((Path(__file__).parents[2] / "docs/schemas/verdict-event.v1.json").read_text())
    for event in events:
        jsonschema.validate(event, schema)
