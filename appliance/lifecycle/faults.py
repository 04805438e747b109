"""Test-only fault injection: make a lane's pipeline hang, to prove the systemd watchdog restarts it.

Inactive unless ``GATE_TEST_HANG_FILE`` is set in the environment (never set it on a box). When it is
set, ``maybe_hang(lane_id)`` -- called once per frame by the lane loops -- blocks for as long as that
file exists and contains the lane's id (or ``*``), exactly like a pipeline stuck in a read or a model
call: the lane makes no progress, its heartbeat goes stale and the watchdog pings stop.
tests/integration/test_watchdog.py uses it.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

log = logging.getLogger(__name__)

HANG_FILE_ENV = "GATE_TEST_HANG_FILE"
_POLL_S = 0.1


def _hang_file() -> Path | None:
    value = os.environ.get(HANG_FILE_ENV)
    return Path(value) if value else None


def _wants_hang(path: Path, lane_id: str) -> bool:
    try:
        names = path.read_text(encoding="utf-8").split()
    except OSError:
        return False
    return lane_id in names or "*" in names


def maybe_hang(lane_id: str) -> None:
    """Block while the test's hang file names ``lane_id`` (no-op without ``GATE_TEST_HANG_FILE``)."""
    path = _hang_file()
    if path is None or not _wants_hang(path, lane_id):
        return
    log.warning("lane %s: hanging on purpose (%s=%s, test-only fault injection)", lane_id, HANG_FILE_ENV, path)
    while _wants_hang(path, lane_id):
        time.sleep(_POLL_S)
    log.warning("lane %s: hang released", lane_id)
