"""StreamSource against a real MJPEG-over-HTTP camera served on 127.0.0.1 from a thread.

The camera goes away and comes back on the same port; the source must notice, report it, retry
with backoff, and deliver frames again, without raising out of read(). Loopback only.
"""

from __future__ import annotations

import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import cv2
import numpy as np
import pytest

from appliance.ingest.frames import Frame
from appliance.ingest.sources import StreamSource

BOUNDARY = b"frameboundary"


class MjpegCamera:
    """A tiny MJPEG (multipart/x-mixed-replace) camera on 127.0.0.1."""

    def __init__(self, port: int = 0, fps: float = 25.0) -> None:
        self.port = port
        self.fps = fps
        self.counter = 0
        self.stall = threading.Event()  # keep connections open but send nothing
        self._stop = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        camera = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY.decode()}")
                self.send_header("Cache-Control", "no-cache")
                self.end_headers()
                try:
                    while not camera._stop.is_set():
                        if camera.stall.is_set():
                            time.sleep(0.02)
                            continue
                        camera.counter += 1
                        img = np.full((120, 160, 3), camera.counter % 200 + 20, np.uint8)
                        ok, jpg = cv2.imencode(".jpg", img)
                        assert ok
                        body = jpg.tobytes()
                        self.wfile.write(
                            b"--" + BOUNDARY + b"\r\nContent-Type: image/jpeg\r\n"
                            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body + b"\r\n"
                        )
                        self.wfile.flush()
                        time.sleep(1.0 / camera.fps)
                except (BrokenPipeError, ConnectionResetError, OSError):
                    pass

        return Handler

    def start(self) -> MjpegCamera:
        self._stop.clear()
        self.stall.clear()
        server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="mjpeg-camera", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(2)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/video.mjpg"


class Reader:
    """Reads a source in a thread, like a SourceRunner, recording every frame."""

    def __init__(self, source: StreamSource) -> None:
        self.source = source
        self.frames: list[Frame] = []
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            while (frame := self.source.read()) is not None:
                self.frames.append(frame)
        except BaseException as exc:  # the test asserts there are none
            self.errors.append(exc)


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def camera() -> Iterator[MjpegCamera]:
    cam = MjpegCamera().start()
    yield cam
    cam.stop()


def make_source(url: str, **kw: Any) -> StreamSource:
    params: dict[str, Any] = {
        "open_timeout_s": 2.0,
        "read_timeout_s": 1.0,
        "backoff_initial_s": 0.1,
        "backoff_max_s": 0.8,
        "jitter": 0.2,
        "rng": random.Random(0),
    }
    params.update(kw)
    return StreamSource("gate-cam", url, **params)


def test_stream_drops_reports_and_reconnects_on_the_same_port(camera: MjpegCamera) -> None:
    src = make_source(camera.url)
    src.open()
    reader = Reader(src)
    try:
        wait_for(lambda: len(reader.frames) >= 5, 10, "first frames")
        st = src.status()
        assert st["connected"] and st["healthy"] and st["reconnects"] == 0
        first = reader.frames[0]
        assert first.source_id == "gate-cam" and first.image.shape == (120, 160, 3)
        assert abs(first.ts - time.time()) < 10  # wall clock

        camera.stop()
        wait_for(lambda: not src.status()["connected"], 5, "the source to notice the camera is gone")
        down_at = len(reader.frames)
        time.sleep(1.5)  # camera down: attempts at ~0.1, 0.3, 0.7, 1.5 s (jittered), not a busy loop
        st = src.status()
        assert not st["connected"] and not st["healthy"] and st["drops"] >= 1
        assert 2 <= st["failed_attempts"] <= 8, st
        assert st["last_frame_age_s"] >= 1.0
        assert "refused" in (st["last_error"] or "") or "open" in (st["last_error"] or "")
        assert len(reader.frames) == down_at
        assert reader.thread.is_alive() and not reader.errors

        camera.start()  # same port
        wait_for(lambda: len(reader.frames) >= down_at + 5, 10, "frames after the camera came back")
        st = src.status()
        assert st["connected"] and st["reconnects"] == 1 and st["last_frame_age_s"] < 1.0
        indices = [f.index for f in reader.frames]
        assert indices == list(range(len(indices)))  # the index keeps counting across reconnects
    finally:
        t0 = time.monotonic()
        src.close()
        reader.thread.join(5)
    assert not reader.thread.is_alive() and time.monotonic() - t0 < 3.0
    assert not reader.errors


def test_a_stalled_stream_is_dropped_by_the_read_timeout(camera: MjpegCamera) -> None:
    src = make_source(camera.url, read_timeout_s=0.7)
    reader = Reader(src)
    try:
        wait_for(lambda: len(reader.frames) >= 3, 10, "first frames")
        camera.stall.set()  # connection stays open, no more data
        t0 = time.monotonic()
        wait_for(lambda: src.status()["drops"] >= 1, 5, "the read timeout to fire")
        assert time.monotonic() - t0 < 3.0
        camera.stall.clear()
        n = len(reader.frames)
        wait_for(lambda: len(reader.frames) >= n + 3, 10, "frames after the stall")
        assert src.status()["reconnects"] >= 1
    finally:
        src.close()
        reader.thread.join(5)
    assert not reader.errors


def test_camera_that_starts_after_the_appliance() -> None:
    port = free_port()
    src = make_source(f"http://127.0.0.1:{port}/video.mjpg")
    src.open()  # nothing listens yet: logs, does not raise
    assert not src.status()["connected"]
    reader = Reader(src)
    camera = MjpegCamera(port=port)
    try:
        time.sleep(0.3)
        camera.start()
        wait_for(lambda: len(reader.frames) >= 3, 10, "frames once the camera is up")
        assert src.status()["connected"]
    finally:
        src.close()
        reader.thread.join(5)
        camera.stop()
    assert not reader.errors
