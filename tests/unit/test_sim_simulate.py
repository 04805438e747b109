"""A small end-to-end simulate() run: the files of docs/SIMULATOR.md, readable and consistent."""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import pytest
import yaml
import zxingcpp

from appliance.errors import SimulationError
from appliance.sim import simulate


@pytest.fixture(scope="module")
def lane(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("lane")
    calls: list[tuple[int, int]] = []
    result = simulate(out, 3, 5, width=640, height=360, night_share=0.0, progress=lambda d, t: calls.append((d, t)))
    assert result.frames == json.loads((out / "truth.json").read_text(encoding="utf-8"))["frames"]
    assert calls and calls[-1][0] == calls[-1][1] == 2 * result.frames
    return out


def _read_video(path: Path) -> list:
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened(), path
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames


def test_layout_and_truth(lane: Path) -> None:
    truth = json.loads((lane / "truth.json").read_text(encoding="utf-8"))
    assert truth["seed"] == 5 and truth["fps"] == 5.0 and (truth["width"], truth["height"]) == (640, 360)
    assert [v["id"] for v in truth["vehicles"]] == ["V0001", "V0002", "V0003"]
    for v in truth["vehicles"]:
        assert truth["start_time"] <= v["t_enter"] < v["t_exit"] <= truth["start_time"] + truth["frames"] / 5.0
        assert v["expected_verdict"] == ("HOLD" if v["mismatches"] else "CLEAR")
    manifest = json.loads((lane / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["gate"] and isinstance(manifest["entries"], list)


def test_videos_are_readable_with_the_stated_frame_count(lane: Path) -> None:
    truth = json.loads((lane / "truth.json").read_text(encoding="utf-8"))
    front, rear = _read_video(lane / "cameras" / "front.mp4"), _read_video(lane / "cameras" / "rear.mp4")
    assert len(front) == len(rear) == truth["frames"]
    assert front[0].shape == rear[0].shape == (360, 640, 3)
    # A vehicle in view changes the picture; the empty lane between vehicles does not much.
    v = truth["vehicles"][0]
    mid = round((v["t_enter"] + v["t_exit"]) / 2 * 5 - truth["start_time"] * 5)
    diff_vehicle = cv2.absdiff(front[0], front[mid]).mean()
    diff_idle = cv2.absdiff(front[0], front[1]).mean()
    assert diff_vehicle > 3 * diff_idle


def test_kiosk_images_are_named_by_capture_time_and_decode(lane: Path) -> None:
    truth = json.loads((lane / "truth.json").read_text(encoding="utf-8"))
    declared = {v["id"]: v for v in truth["vehicles"] if v["declaration"]}
    files = sorted((lane / "kiosk").glob("*.png"))
    assert len(files) == len(declared)
    for path in files:
        match = re.fullmatch(r"(\d{13})_(V\d{4})\.png", path.name)
        assert match, path.name
        v = declared[match.group(2)]
        assert v["t_enter"] * 1000 <= int(match.group(1)) <= v["t_exit"] * 1000
        image = cv2.imread(str(path))
        assert [r.text for r in zxingcpp.read_barcodes(image)] == [v["declaration_payload"]]


def test_lane_yaml_points_at_the_outputs(lane: Path) -> None:
    doc = yaml.safe_load((lane / "lane.yaml").read_text(encoding="utf-8"))
    assert (lane / doc["manifest"]["file"]).is_file()
    sources = doc["lanes"][0]["sources"]
    assert {s["role"] for s in sources} == {"front", "rear", "kiosk"}
    assert all((lane / s["path"]).exists() for s in sources)


def test_lane_yaml_is_a_valid_appliance_config(lane: Path) -> None:
    config = pytest.importorskip("appliance.config")
    cfg = config.load_config(lane / "lane.yaml")
    sources = {s.id: s for s in cfg.lanes[0].sources}
    assert sources["front"].path == (lane / "cameras" / "front.mp4").resolve()
    assert sources["rear"].start_time == json.loads((lane / "truth.json").read_text())["start_time"]
    assert cfg.manifest.file == (lane / "manifest.json").resolve()


def test_refuses_a_non_empty_directory_unless_overwrite(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(SimulationError):
        simulate(tmp_path, 1, 1, width=320, height=180)
    result = simulate(tmp_path, 1, 1, width=320, height=180, overwrite=True)
    assert (tmp_path / "notes.txt").read_text() == "keep me"
    assert result.truth_path.is_file()


def test_same_seed_same_truth(tmp_path: Path) -> None:
    a = simulate(tmp_path / "a", 2, 9, width=320, height=180, night_share=0.0)
    b = simulate(tmp_path / "b", 2, 9, width=320, height=180, night_share=0.0)
    assert a.truth_path.read_bytes() == b.truth_path.read_bytes()
    assert a.manifest_path.read_bytes() == b.manifest_path.read_bytes()
