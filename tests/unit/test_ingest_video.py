"""VideoFileSource against real files written with cv2.VideoWriter (MJPG/.avi, mp4v/.mp4)."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from appliance.errors import SourceError
from appliance.ingest import sources as sources_mod
from appliance.ingest.sources import VideoFileSource

START = 1_795_000_000.0
SIZE = (96, 64)  # w, h


def frame_image(i: int) -> np.ndarray:
    """Frame i carries its number in the mean of the green channel (robust to JPEG loss)."""
    img = np.zeros((SIZE[1], SIZE[0], 3), np.uint8)
    img[:, :, 1] = (i * 8) % 248
    return img


def green_index(img: np.ndarray) -> int:
    return round(float(img[:, :, 1].mean()) / 8)


def write_video(path: Path, n: int, fps: float, fourcc: str) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*fourcc), fps, SIZE)
    assert writer.isOpened(), f"cannot write {path} with {fourcc}"
    for i in range(n):
        writer.write(frame_image(i))
    writer.release()
    return path


def read_all(src: VideoFileSource) -> list:
    out = []
    while (f := src.read()) is not None:
        out.append(f)
    return out


@pytest.mark.parametrize(("name", "fourcc", "fps"), [("a.avi", "MJPG", 10.0), ("b.mp4", "mp4v", 5.0)])
def test_timestamps_are_start_plus_index_over_fps(tmp_path: Path, name: str, fourcc: str, fps: float) -> None:
    path = write_video(tmp_path / name, 20, fps, fourcc)
    src = VideoFileSource("front", path, start_time=START)
    frames = read_all(src)
    assert [f.index for f in frames] == list(range(20))
    assert [f.ts for f in frames] == [START + i / fps for i in range(20)]
    assert all(f.source_id == "front" for f in frames)
    assert [green_index(f.image) for f in frames] == list(range(20))
    assert src.fps == pytest.approx(fps)
    assert src.read() is None  # stays ended
    st = src.status()
    assert st["frames"] == 20 and st["skipped_frames"] == 0 and st["missing_at_end"] == 0


def test_fps_override_changes_timestamps(tmp_path: Path) -> None:
    path = write_video(tmp_path / "a.avi", 5, 10.0, "MJPG")
    frames = read_all(VideoFileSource("cam", path, start_time=100.0, fps=2.0))
    assert [f.ts for f in frames] == [100.0, 100.5, 101.0, 101.5, 102.0]


def test_missing_fps_raises_naming_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_video(tmp_path / "nofps.avi", 3, 10.0, "MJPG")

    real_capture = cv2.VideoCapture

    class NoFpsCapture:
        """A capture whose container declares no frame rate (delegates everything else)."""

        def __init__(self, *args: object) -> None:
            self._cap = real_capture(*args)

        def get(self, prop: int) -> float:
            return 0.0 if prop == cv2.CAP_PROP_FPS else float(self._cap.get(prop))

        def __getattr__(self, name: str) -> object:
            return getattr(self._cap, name)

    monkeypatch.setattr(sources_mod.cv2, "VideoCapture", NoFpsCapture)
    with pytest.raises(SourceError, match=r"nofps\.avi.*frame rate"):
        VideoFileSource("cam", path, start_time=0.0).open()


def test_start_time_defaults_to_mtime_minus_duration(tmp_path: Path) -> None:
    import os

    path = write_video(tmp_path / "a.avi", 10, 5.0, "MJPG")
    os.utime(path, (START, START))
    frame = VideoFileSource("cam", path).read()
    assert frame is not None
    assert frame.ts == pytest.approx(START - 10 / 5.0)


def test_truncated_avi_delivers_frames_before_the_damage(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write_video(tmp_path / "cut.avi", 40, 10.0, "MJPG")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    src = VideoFileSource("rear", path, start_time=START)
    with caplog.at_level(logging.WARNING, logger="appliance.ingest.sources"):
        frames = read_all(src)
    assert 10 <= len(frames) < 40
    # Every delivered frame keeps its own index and timestamp; the last one may be partly decoded.
    assert [f.index for f in frames] == list(range(len(frames)))
    assert [green_index(f.image) for f in frames[:-1]] == list(range(len(frames) - 1))
    assert frames[-1].ts == START + frames[-1].index / 10.0
    assert src.status()["missing_at_end"] > 0
    assert any("cut.avi" in r.getMessage() and "truncated" in r.getMessage() for r in caplog.records)


def test_truncated_mp4_raises_clear_error(tmp_path: Path) -> None:
    path = write_video(tmp_path / "cut.mp4", 30, 10.0, "mp4v")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(SourceError) as info:
        VideoFileSource("rear", path, start_time=START).open()
    msg = str(info.value)
    assert str(path) in msg and "moov" in msg


def test_garbage_mp4_raises_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "garbage.mp4"
    rng = np.random.default_rng(3)
    path.write_bytes(b"this is not a video\n" * 50 + rng.integers(0, 256, 4000, dtype=np.uint8).tobytes())
    src = VideoFileSource("rear", path, start_time=START)
    with pytest.raises(SourceError, match=r"could not open .*garbage\.mp4"):
        src.read()  # read() opens lazily and raises the same error
    assert not src.healthy


@pytest.mark.parametrize(
    ("content", "pattern"),
    [(None, "does not exist"), (b"", "empty")],
)
def test_missing_or_empty_file(tmp_path: Path, content: bytes | None, pattern: str) -> None:
    path = tmp_path / "x.avi"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(SourceError, match=pattern):
        VideoFileSource("cam", path, start_time=0.0).open()


def _jpeg_starts(data: bytes) -> list[int]:
    return [i for i in range(len(data) - 3) if data[i : i + 3] == b"\xff\xd8\xff"]


def test_corrupt_frame_in_the_middle_is_skipped_and_later_frames_keep_their_times(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write_video(tmp_path / "bad.avi", 30, 10.0, "MJPG")
    data = bytearray(path.read_bytes())
    starts = _jpeg_starts(bytes(data))
    assert len(starts) == 30
    s, e = starts[10], starts[11]
    data[s : e - 8] = bytes(e - 8 - s)  # wipe frame 10's JPEG (keep the next chunk header)
    path.write_bytes(bytes(data))
    src = VideoFileSource("rear", path, start_time=START)
    with caplog.at_level(logging.WARNING, logger="appliance.ingest.sources"):
        frames = read_all(src)
    indices = [f.index for f in frames]
    assert indices == [i for i in range(30) if i != 10]
    assert all(green_index(f.image) == f.index for f in frames)
    assert all(f.ts == START + f.index / 10.0 for f in frames)
    assert src.status()["skipped_frames"] == 1
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("bad.avi" in m and "frame 10 " in m for m in warnings), warnings


def test_realtime_paces_to_the_video_clock(tmp_path: Path) -> None:
    path = write_video(tmp_path / "a.avi", 6, 20.0, "MJPG")
    src = VideoFileSource("cam", path, start_time=START, realtime=True)
    t0 = time.monotonic()
    frames = read_all(src)
    elapsed = time.monotonic() - t0
    assert len(frames) == 6
    assert elapsed >= 5 / 20.0 - 0.02
    fast = VideoFileSource("cam", path, start_time=START)
    t0 = time.monotonic()
    read_all(fast)
    assert time.monotonic() - t0 < elapsed


def test_close_from_another_thread_ends_a_paced_read(tmp_path: Path) -> None:
    path = write_video(tmp_path / "a.avi", 50, 2.0, "MJPG")  # 25 s of video at realtime
    src = VideoFileSource("cam", path, start_time=START, realtime=True)
    assert src.read() is not None
    threading.Timer(0.2, src.close).start()
    t0 = time.monotonic()
    assert src.read() is None
    assert time.monotonic() - t0 < 2.0
    assert src.read() is None
