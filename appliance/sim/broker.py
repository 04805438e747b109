"""A throwaway Mosquitto broker on a free loopback port, for `appliance demo` (the simulated IGV fleet and the
lane's message board talk through it).

Demo only: plain TCP on 127.0.0.1, anonymous, no persistence. A real box talks to the gate's broker over
TLS (docs/ACTUATORS.md). ``mosquitto`` comes from scripts/setup.sh; without it the demo runs without the
fleet (``mosquitto_binary()`` is None) and says so.
"""

from __future__ import annotations

import contextlib
import ctypes
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from appliance.errors import ApplianceError

_PR_SET_PDEATHSIG = 1


def mosquitto_binary() -> str | None:
    found = shutil.which("mosquitto")
    if found is not None:
        return found
    return "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").is_file() else None


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """The broker goes when the demo goes, even when the demo is killed (Linux prctl)."""
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class DemoBroker:
    def __init__(self, workdir: Path, binary: str):
        self.binary = binary
        self.dir = workdir
        self.host = "127.0.0.1"
        self.port = free_port(self.host)
        self.log_path = workdir / "mosquitto.log"
        self.conf = workdir / "mosquitto.conf"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 10.0) -> DemoBroker:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.conf.write_text(f"# Written by `appliance demo`.\nlistener {self.port} {self.host}\nallow_anonymous true\n"
                             "persistence false\nlog_dest stderr\n", encoding="utf-8")
        with self.log_path.open("wb") as log_file:
            self.proc = subprocess.Popen([self.binary, "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                         stderr=log_file, preexec_fn=_die_with_parent)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                socket.create_connection((self.host, self.port), timeout=0.2).close()
                return self
            except OSError:
                if self.proc.poll() is not None:
                    raise ApplianceError(f"demo broker {self.binary} exited with {self.proc.returncode}; "
                                         f"its log: {self.log_path}") from None
                time.sleep(0.05)
        self.stop()
        raise ApplianceError(f"demo broker {self.binary} did not listen on {self.host}:{self.port} within "
                             f"{timeout_s} s; its log: {self.log_path}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None
