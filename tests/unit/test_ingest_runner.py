"""merge_by_time replay, SourceRunner threads, and the open_source factory."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from appliance.errors import SourceError
from appliance.ingest import (
    BoundedFrameQueue,
    DropPolicy,
    FolderSource,
    Frame,
    MotionGate,
    SourceRunner,
    StreamSource,
    TaggedFrame,
    VideoFileSource,
    merge_by_time,
    open_source,
)

START = 1_795_000_000.0


def write_video(path: Path, n: int, fps: float, fourcc: str = "MJPG", moving_from: int | None = None) -> Path:
    size = (160, 96)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*fourcc), fps, size)
    assert writer.isOpened()
    for i in range(n):
        img = np.full((size[1], size[0], 3), 90, np.uint8)
        if moving_from is not None and i >= moving_from:
            x = 5 + 8 * (i - moving_from)
            cv2.rectangle(img, (x, 20), (x + 30, 70), (240, 240, 240), -1)
        writer.write(img)
    writer.release()
    return path


def write_kiosk(folder: Path, times_ms: list[int]) -> None:
    folder.mkdir()
    ok, buf = cv2.imencode(".png", np.full((20, 20, 3), 128, np.uint8))
    assert ok
    old = time.time() - 60
    for k, ms in enumerate(times_ms):
        p = folder / f"{ms}_D{k:03d}.png"
        p.write_bytes(buf.tobytes())
        os.utime(p, (old, old))


def test_merge_by_time_orders_two_videos_and_a_folder(tmp_path: Path) -> None:
    front = write_video(tmp_path / "front.avi", 12, 4.0)  # 0, 0.25, ... 2.75 s
    rear = write_video(tmp_path / "rear.mp4", 8, 3.0, "mp4v")  # starts 0.1 s later
    kiosk_ms = [int(START * 1000) + d for d in (-500, 1000, 1100, 2600, 9000)]
    write_kiosk(tmp_path / "kiosk", kiosk_ms)

    def sources() -> list:
        return [
            VideoFileSource("front", front, start_time=START),
            VideoFileSource("rear", rear, start_time=START + 0.1),
            FolderSource("kiosk", tmp_path / "kiosk", move_processed=False),
        ]

    frames = list(merge_by_time(sources()))
    assert len(frames) == 12 + 8 + 5
    ts = [f.ts for f in frames]
    assert ts == sorted(ts)
    per_source = {sid: [f.index for f in frames if f.source_id == sid] for sid in ("front", "rear", "kiosk")}
    assert per_source == {"front": list(range(12)), "rear": list(range(8)), "kiosk": list(range(5))}
    assert frames[0].source_id == "kiosk" and frames[-1].source_id == "kiosk"
    # Equal timestamps (front frame 4 and kiosk 1000 ms are both START + 1.0): source order wins.
    at_one = [f.source_id for f in frames if f.ts == START + 1.0]
    assert at_one == ["front", "kiosk"]
    # Deterministic: a second replay gives the same sequence.
    again = [(f.source_id, f.index) for f in merge_by_time(sources())]
    assert again == [(f.source_id, f.index) for f in frames]


def test_merge_by_time_closes_sources_when_stopped_early(tmp_path: Path) -> None:
    a = VideoFileSource("a", write_video(tmp_path / "a.avi", 10, 5.0), start_time=START)
    b = VideoFileSource("b", write_video(tmp_path / "b.avi", 10, 5.0), start_time=START)
    it = merge_by_time([a, b])
    assert next(it).source_id == "a"
    it.close()
    assert a.closed and b.closed


def test_merge_by_time_refuses_live_sources(tmp_path: Path) -> None:
    live = StreamSource("cam", "http://127.0.0.1:9/none")
    with pytest.raises(SourceError, match="live"):
        list(merge_by_time([live]))


def test_runner_tags_frames_with_motion_and_closes_the_queue(tmp_path: Path) -> None:
    path = write_video(tmp_path / "lane.avi", 30, 10.0, moving_from=15)
    q: BoundedFrameQueue[TaggedFrame] = BoundedFrameQueue(100, DropPolicy.BLOCK)
    runner = SourceRunner(VideoFileSource("front", path, start_time=START), q, MotionGate(), threading.Event())
    runner.start()
    items = list(q)  # ends when the runner closes the queue
    runner.join(5)
    assert not runner.is_alive()
    assert [it.frame.index for it in items] == list(range(30))
    moving = [it.motion.moving for it in items if it.motion is not None]
    assert len(moving) == 30
    assert not any(moving[:15]) and all(moving[17:])
    assert runner.frames_read == 30 and runner.frames_queued == 30
    assert runner.status()["source"]["frames"] == 30


def test_runner_skip_idle_queues_only_moving_frames(tmp_path: Path) -> None:
    path = write_video(tmp_path / "lane.avi", 30, 10.0, moving_from=15)
    q: BoundedFrameQueue[TaggedFrame] = BoundedFrameQueue(100, DropPolicy.BLOCK)
    runner = SourceRunner(VideoFileSource("f", path, start_time=START), q, MotionGate(), skip_idle=True)
    runner.start()
    items = list(q)
    assert items and all(it.motion is not None and it.motion.moving for it in items)
    assert min(it.frame.index for it in items) >= 15


def test_realtime_runner_drops_instead_of_blocking(tmp_path: Path) -> None:
    path = write_video(tmp_path / "a.avi", 60, 10.0)
    q: BoundedFrameQueue[TaggedFrame] = BoundedFrameQueue(5, DropPolicy.DROP_OLDEST)
    runner = SourceRunner(VideoFileSource("a", path, start_time=START), q, None, close_queue=False)
    runner.start()
    runner.join(5)  # nobody consumes: a blocking put would hang here
    assert not runner.is_alive()
    s = q.stats()
    assert runner.frames_read == 60 and s.dropped_oldest == 55 and len(q) == 5
    assert [q.get().frame.index for _ in range(5)] == [55, 56, 57, 58, 59]


def test_stop_event_ends_a_runner_blocked_on_a_live_folder(tmp_path: Path) -> None:
    stop = threading.Event()
    q: BoundedFrameQueue[TaggedFrame] = BoundedFrameQueue(10)
    src = FolderSource("kiosk", tmp_path, follow=True, poll_interval_s=5.0)
    runner = SourceRunner(src, q, None, stop)
    runner.start()
    time.sleep(0.2)
    assert runner.is_alive()
    t0 = time.monotonic()
    stop.set()
    runner.join(3)
    assert not runner.is_alive()
    assert time.monotonic() - t0 < 2.0  # did not wait for the 5 s poll
    assert src.closed and q.closed


def test_runner_reports_a_source_that_cannot_open(tmp_path: Path) -> None:
    q: BoundedFrameQueue[TaggedFrame] = BoundedFrameQueue(10)
    runner = SourceRunner(VideoFileSource("x", tmp_path / "missing.avi"), q)
    runner.start()
    runner.join(5)
    assert runner.error is not None and "missing.avi" in runner.error
    assert q.closed and runner.frames_read == 0


def test_open_source_factory(tmp_path: Path) -> None:
    video = write_video(tmp_path / "v.avi", 3, 5.0)
    src = open_source("video_file", id="front", path=str(video), start_time=START)
    assert isinstance(src, VideoFileSource)
    frame = src.read()
    assert isinstance(frame, Frame) and frame.ts == START
    src.close()
    assert isinstance(open_source("folder", id="k", path=str(tmp_path)), FolderSource)
    # The simulator's lane.yaml spellings.
    assert isinstance(open_source("video", id="f", path=str(video), fps=5.0, start_time=START), VideoFileSource)
    assert isinstance(open_source("image_folder", id="k", path=str(tmp_path)), FolderSource)
    stream = open_source("stream", id="cam", url="rtsp://user:secret@10.0.0.5/ch1")
    assert isinstance(stream, StreamSource) and stream.live
    assert "secret" not in str(stream.status())
    usb = open_source("usb", id="usb", device=0)
    assert isinstance(usb, StreamSource) and usb.target == 0
    with pytest.raises(SourceError, match="unknown source type"):
        open_source("webcam", id="x")
    with pytest.raises(SourceError, match=r"unknown parameter.*colour"):
        open_source("video_file", id="x", path="a.avi", colour="red")
    with pytest.raises(SourceError, match=r"missing parameter.*path"):
        open_source("folder", id="x")
