"""The systemd watchdog contract, on the real appliance in a subprocess.

The test plays systemd: it listens on a unix datagram socket, starts `appliance run` with
NOTIFY_SOCKET and WATCHDOG_USEC pointing at it, and reads what the appliance sends. A pipeline hang is
simulated with the test-only hook appliance/lifecycle/faults.py (GATE_TEST_HANG_FILE): the lane thread
blocks as if stuck in a read. The WATCHDOG=1 pings must stop -- that is what makes systemd (WatchdogSec=)
kill and restart the service -- and resume once the lane moves again. Real process, real signals,
real socket; systemd itself is not run here.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


def blank_video(path: Path, frames: int, fps: float = 5.0) -> Path:
    """A still grey video: the motion gate never fires, so no model runs and the test stays cheap."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (160, 120))
    for _ in range(frames):
        writer.write(np.full((120, 160, 3), 90, np.uint8))
    writer.release()
    return path


def lane_config(tmp_path: Path, video: Path, extra: str = "") -> Path:
    config = tmp_path / "lane.yaml"
    config.write_text(
        "site: {gate: VNHNG, box_id: test-box}\n"
        "lanes:\n  - id: cargo-1\n    sources:\n"
        f"      - {{id: front, type: video_file, role: front, path: {video}, realtime: true}}\n"
        f"storage: {{path: {tmp_path / 'gate.db'}, evidence_dir: {tmp_path / 'evidence'}}}\n"
        "health: {lane_stall_s: 2}\n" + extra,
        encoding="utf-8",
    )
    return config


class NotifyListener:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.messages: list[tuple[float, str]] = []

    def receive(self, seconds: float) -> list[str]:
        """Every assignment received within ``seconds``."""
        got: list[str] = []
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                break
            for line in data.decode().splitlines():
                got.append(line)
                self.messages.append((time.monotonic(), line))
        return got

    def wait_for(self, assignment: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if assignment in self.receive(min(1.0, deadline - time.monotonic())):
                return
        raise AssertionError(f"no {assignment} within {timeout} s; got {[m for _, m in self.messages]}")

    def close(self) -> None:
        self.sock.close()


def start_appliance(config: Path, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    full_env = {**os.environ, "ORT_DISABLE_TELEMETRY": "1", "YOLO_OFFLINE": "1", **env}
    return subprocess.Popen([sys.executable, "-m", "appliance", "run", "--config", str(config), "--no-web"],
                            cwd=ROOT, env=full_env, stdout=log.open("wb"), stderr=subprocess.STDOUT)


def test_watchdog_pings_stop_when_a_pipeline_hangs(tmp_path: Path) -> None:
    video = blank_video(tmp_path / "front.avi", frames=5 * 60)
    config = lane_config(tmp_path, video)
    listener = NotifyListener(tmp_path / "notify.sock")
    hang = tmp_path / "hang"
    log = tmp_path / "appliance.log"
    proc = start_appliance(config, {"NOTIFY_SOCKET": str(listener.path), "WATCHDOG_USEC": "1000000",
                                    "GATE_TEST_HANG_FILE": str(hang)}, log)
    try:
        listener.wait_for("READY=1", timeout=90)
        pings = listener.receive(2.0).count("WATCHDOG=1")
        assert pings >= 3, f"expected a ping every 0.5 s while the lane runs, got {pings}"

        hang.write_text("cargo-1\n")  # the lane thread now blocks inside its loop
        listener.receive(2.0 + 1.5)  # lane_stall_s (2 s) must pass before the pings stop
        silent = listener.receive(3.0)
        assert "WATCHDOG=1" not in silent, "a hung pipeline must stop the watchdog pings"
        assert proc.poll() is None, "the process itself stays up: systemd is the one to kill it"

        hang.unlink()  # the lane moves again: the pings come back (it was the hang that stopped them)
        assert listener.receive(3.0).count("WATCHDOG=1") >= 2

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        listener.receive(0.5)  # what it sent while draining is still in the socket's buffer
        assert "STOPPING=1" in [m for _, m in listener.messages]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        listener.close()
    text = log.read_text(encoding="utf-8", errors="replace")
    assert "made no progress" in text and "watchdog pings stopped" in text


def test_no_notify_socket_means_no_watchdog(tmp_path: Path) -> None:
    """Outside systemd (no NOTIFY_SOCKET) the appliance runs the same and still drains on SIGTERM."""
    config = lane_config(tmp_path, blank_video(tmp_path / "front.avi", frames=5 * 30))
    log = tmp_path / "appliance.log"
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC")}
    proc = subprocess.Popen([sys.executable, "-m", "appliance", "run", "--config", str(config), "--no-web"],
                            cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        while "opened" not in log.read_text(errors="replace") and time.monotonic() < deadline:
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "systemd watchdog" not in log.read_text(errors="replace")


pytestmark = pytest.mark.slow
