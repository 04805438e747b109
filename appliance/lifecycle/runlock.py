"""The lock a running appliance holds on its store, so that ``appliance store restore`` cannot swap the
database under it. An advisory ``flock`` on ``<db>.run.lock``: the kernel drops it when the process
dies (even by SIGKILL), so a crash never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from appliance.errors import StoreError


def lock_path(db: Path) -> Path:
    return db.with_name(db.name + ".run.lock")


class RunLock:
    """Held from ``acquire()`` to ``release()``; ``acquire`` raises StoreError when another process holds it."""

    def __init__(self, db: Path) -> None:
        self.path = lock_path(db)
        self._fd: int | None = None

    def acquire(self, purpose: str = "the appliance runs") -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o640)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another process"
            os.close(fd)
            raise StoreError(f"{self.path}: the store is in use ({holder}); stop the appliance first "
                             "(systemctl stop gate-appliance)") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}: {purpose}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None

    def __enter__(self) -> RunLock:
        return self if self._fd is not None else self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
