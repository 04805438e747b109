"""FolderSource: scanner image drops with done/ and rejected/ folders."""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from appliance.errors import SourceError
from appliance.ingest.sources import FolderSource

T0_MS = 1_795_000_000_000


def png_bytes(value: int, size: tuple[int, int] = (40, 30)) -> bytes:
    img = np.full((size[1], size[0], 3), value, np.uint8)
    ok, buf = cv2.imencode(".png", img)
    assert ok
    return buf.tobytes()


def jpg_bytes(value: int) -> bytes:
    ok, buf = cv2.imencode(".jpg", np.full((30, 40, 3), value, np.uint8))
    assert ok
    return buf.tobytes()


def age(path: Path, seconds: float = 60.0) -> None:
    """Make a file look finished long ago (quiet for longer than settle_s)."""
    t = time.time() - seconds
    os.utime(path, (t, t))


def drain(src: FolderSource) -> list:
    out = []
    while (f := src.read()) is not None:
        out.append(f)
    return out


def test_name_order_timestamps_and_done_folder(tmp_path: Path) -> None:
    names = [f"{T0_MS + 2500}_K0002.png", f"{T0_MS}_K0001.png", "scan_no_time.jpg"]
    for i, name in enumerate(names):
        (tmp_path / name).write_bytes(png_bytes(10 * i) if name.endswith(".png") else jpg_bytes(99))
        age(tmp_path / name)
    mtime = 1_700_000_000.5
    os.utime(tmp_path / "scan_no_time.jpg", (mtime, mtime))
    (tmp_path / "notes.txt").write_text("not an image")
    src = FolderSource("kiosk", tmp_path)
    frames = drain(src)
    assert [f.name for f in frames] == sorted(names)
    assert [f.index for f in frames] == [0, 1, 2]
    by_name = {f.name: f for f in frames}
    assert by_name[f"{T0_MS}_K0001.png"].ts == T0_MS / 1000
    assert by_name[f"{T0_MS + 2500}_K0002.png"].ts == (T0_MS + 2500) / 1000
    assert by_name["scan_no_time.jpg"].ts == pytest.approx(mtime)
    assert all(f.image.shape == (30, 40, 3) for f in frames)
    assert sorted(p.name for p in (tmp_path / "done").iterdir()) == sorted(names)
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["notes.txt"]
    assert src.status()["delivered"] == 3


def test_unreadable_images_go_to_rejected_with_a_reason(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    good = png_bytes(200)
    files = {
        f"{T0_MS}_good1.png": good,
        f"{T0_MS + 1}_garbage.png": b"this is a text file, not a PNG" * 10,
        f"{T0_MS + 2}_cut.png": good[: len(good) // 2],
        f"{T0_MS + 3}_cut.jpg": jpg_bytes(50)[:200],
        f"{T0_MS + 4}_empty.jpeg": b"",
        f"{T0_MS + 5}_good2.jpg": jpg_bytes(120),
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
        age(tmp_path / name)
    src = FolderSource("kiosk", tmp_path)
    with caplog.at_level(logging.WARNING, logger="appliance.ingest.sources"):
        frames = drain(src)
    assert [f.name for f in frames] == [f"{T0_MS}_good1.png", f"{T0_MS + 5}_good2.jpg"]
    rejected = tmp_path / "rejected"
    bad = [n for n in files if "good" not in n]
    for name in bad:
        assert (rejected / name).read_bytes() == files[name], "the rejected file is kept unchanged"
        reason = (rejected / f"{name}.reason.txt").read_text()
        assert name in reason and "reason:" in reason
    reasons = {n: (rejected / f"{n}.reason.txt").read_text() for n in bad}
    assert "decode" in reasons[f"{T0_MS + 1}_garbage.png"]
    assert "truncated PNG" in reasons[f"{T0_MS + 2}_cut.png"]
    assert "truncated JPEG" in reasons[f"{T0_MS + 3}_cut.jpg"]
    assert "empty" in reasons[f"{T0_MS + 4}_empty.jpeg"]
    assert src.status()["rejected"] == 4
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert all(any(n in m for m in messages) for n in bad)
    # Nothing lost: every input file is in done/ or rejected/.
    assert sorted(p.name for p in (tmp_path / "done").iterdir()) == [f"{T0_MS}_good1.png", f"{T0_MS + 5}_good2.jpg"]


def test_name_collisions_in_done_and_rejected_keep_both(tmp_path: Path) -> None:
    (tmp_path / "done").mkdir()
    (tmp_path / "done" / "a.png").write_bytes(b"older")
    (tmp_path / "rejected").mkdir()
    (tmp_path / "rejected" / "b.png").write_bytes(b"older")
    (tmp_path / "a.png").write_bytes(png_bytes(1))
    (tmp_path / "b.png").write_bytes(b"junk")
    for p in (tmp_path / "a.png", tmp_path / "b.png"):
        age(p)
    assert [f.name for f in drain(FolderSource("k", tmp_path))] == ["a.png"]
    assert (tmp_path / "done" / "a.png").read_bytes() == b"older"
    assert (tmp_path / "done" / "a__2.png").exists()
    assert (tmp_path / "rejected" / "b__2.png").read_bytes() == b"junk"
    assert "b.png" in (tmp_path / "rejected" / "b__2.png.reason.txt").read_text()


def test_keep_in_place_remembers_by_name(tmp_path: Path) -> None:
    (tmp_path / "1.png").write_bytes(png_bytes(5))
    age(tmp_path / "1.png")
    src = FolderSource("k", tmp_path, move_processed=False, follow=True, poll_interval_s=0.02)
    first = src.read()
    assert first is not None and first.name == "1.png"
    (tmp_path / "2.png").write_bytes(png_bytes(6))
    age(tmp_path / "2.png")
    second = src.read()
    assert second is not None and second.name == "2.png"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["1.png", "2.png"]
    assert not (tmp_path / "done").exists()
    threading.Timer(0.1, src.close).start()
    assert src.read() is None  # nothing new: polls until closed


def test_follow_waits_until_the_file_is_fully_written(tmp_path: Path) -> None:
    data = png_bytes(77, size=(200, 150))
    src = FolderSource("k", tmp_path, follow=True, poll_interval_s=0.02, settle_s=0.3)
    path = tmp_path / f"{T0_MS}_slow.png"
    results: list = []

    def consume() -> None:
        results.append(src.read())

    reader = threading.Thread(target=consume)
    with path.open("wb") as fh:
        fh.write(data[:100])
        fh.flush()
        reader.start()
        for i in range(100, len(data), 400):  # a slow writer: a chunk every 50 ms
            time.sleep(0.05)
            fh.write(data[i : i + 400])
            fh.flush()
    reader.join(5.0)
    assert not reader.is_alive()
    frame = results[0]
    assert frame is not None and frame.name == path.name
    assert int(frame.image.mean()) == 77
    assert not (tmp_path / "rejected").exists()
    src.close()


def test_finite_mode_waits_for_a_fresh_file_then_ends(tmp_path: Path) -> None:
    (tmp_path / "fresh.png").write_bytes(png_bytes(9))  # mtime = now
    src = FolderSource("k", tmp_path, settle_s=0.2, poll_interval_s=0.02)
    t0 = time.monotonic()
    frame = src.read()
    assert frame is not None and frame.name == "fresh.png"
    assert time.monotonic() - t0 >= 0.1
    assert src.read() is None


def test_a_file_still_written_holds_back_later_names(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(png_bytes(1))  # fresh: not yet settled
    (tmp_path / "b.png").write_bytes(png_bytes(2))
    age(tmp_path / "b.png")
    src = FolderSource("k", tmp_path, settle_s=0.2, poll_interval_s=0.02)
    assert [f.name for f in drain(src)] == ["a.png", "b.png"]


def test_missing_folder_raises(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="does not exist"):
        FolderSource("k", tmp_path / "nope").open()


def test_pattern_is_case_insensitive_and_configurable(tmp_path: Path) -> None:
    for name in ("A.PNG", "b.Jpg", "c.bmp", ".hidden.png"):
        (tmp_path / name).write_bytes(png_bytes(3))
        age(tmp_path / name)
    assert [f.name for f in drain(FolderSource("k", tmp_path, move_processed=False))] == ["A.PNG", "b.Jpg"]
    only_bmp = FolderSource("k2", tmp_path, pattern="*.bmp", move_processed=False)
    assert [f.name for f in drain(only_bmp)] == ["c.bmp"]


def test_a_file_with_a_future_mtime_is_read_once_it_stops_changing(tmp_path: Path) -> None:
    path = tmp_path / "skewed.png"
    path.write_bytes(png_bytes(4))
    future = time.time() + 3600  # the scanner PC's clock is an hour ahead
    os.utime(path, (future, future))
    src = FolderSource("k", tmp_path, settle_s=0.2, poll_interval_s=0.02)
    t0 = time.monotonic()
    frame = src.read()
    assert frame is not None and frame.name == "skewed.png"
    assert 0.15 <= time.monotonic() - t0 < 2.0
