"""systemd's notification protocol, implemented directly (one datagram per message, no dependency).

systemd passes ``$NOTIFY_SOCKET`` (a path, or ``@name`` for an abstract socket) to a ``Type=notify``
service; the service sends newline-separated ``KEY=VALUE`` assignments to it: ``READY=1`` once booted,
``WATCHDOG=1`` at least every ``WatchdogSec`` (``$WATCHDOG_USEC``), ``RELOADING=1``, ``STOPPING=1``,
``STATUS=...``. Outside systemd (no variable) every call is a no-op that returns False.
See sd_notify(3).
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger(__name__)


def notify_address(env: Mapping[str, str] | None = None) -> str | None:
    """The socket address of ``$NOTIFY_SOCKET`` (abstract names start with NUL), or None when unset/unusable."""
    value = (os.environ if env is None else env).get("NOTIFY_SOCKET", "")
    if not value:
        return None
    if value.startswith("@"):
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    log.warning("NOTIFY_SOCKET=%r is neither a path nor an abstract socket name; systemd is not notified", value)
    return None


def notify(*assignments: str, env: Mapping[str, str] | None = None) -> bool:
    """Send ``assignments`` (e.g. ``"READY=1"``, ``"STATUS=booted"``) to systemd; False when not under systemd.

    A send that fails is logged, never raised: the appliance must keep running (systemd then sees no
    ping and acts on its own).
    """
    address = notify_address(env)
    if address is None or not assignments:
        return False
    message = "\n".join(assignments).encode("utf-8")
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message)
    except OSError as exc:
        log.warning("sd_notify %s failed: %s", assignments[0].split("=", 1)[0], exc)
        return False
    return True


def watchdog_interval_s(env: Mapping[str, str] | None = None) -> float | None:
    """systemd's watchdog timeout in seconds (``$WATCHDOG_USEC``), None when the watchdog is off.

    ``$WATCHDOG_PID``, when set, must be this process (a child must not ping for its parent).
    """
    e = os.environ if env is None else env
    usec, pid = e.get("WATCHDOG_USEC", ""), e.get("WATCHDOG_PID", "")
    if not usec:
        return None
    if pid and pid != str(os.getpid()):
        return None
    try:
        value = int(usec)
    except ValueError:
        log.warning("WATCHDOG_USEC=%r is not a number; the watchdog is not pinged", usec)
        return None
    return value / 1e6 if value > 0 else None
