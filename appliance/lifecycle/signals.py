"""What the signals mean to ``appliance run`` (installed by ``run_appliance(..., as_service=True)``).

- SIGTERM (``systemctl stop``) and SIGINT (Ctrl+C): drain. ``services.stop`` is set, each lane stops
  reading, finishes the analysis in flight, closes its open crossing and stores it with its outbox
  event; then the publisher and the web server stop and the process exits 0. A second signal while
  draining leaves at once (exit 130), as an impatient operator expects.
- SIGHUP (``systemctl reload``): the config is re-read in a thread (``ConfigReloader``).
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType
from typing import TYPE_CHECKING

from appliance.lifecycle.sd_notify import notify

if TYPE_CHECKING:
    from appliance.lifecycle.reload import ConfigReloader

log = logging.getLogger(__name__)


def install(stop: threading.Event, reloader: ConfigReloader | None) -> None:
    """Install the handlers (main thread only)."""

    def on_stop(signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if stop.is_set():
            log.warning("%s while draining: leaving now", name)
            raise KeyboardInterrupt
        log.info("%s: draining the lanes (open crossings are closed and stored), then exiting", name)
        notify("STOPPING=1", "STATUS=draining")
        stop.set()

    def on_reload(signum: int, frame: FrameType | None) -> None:
        if reloader is None:
            log.warning("SIGHUP: no config file to reload")
            return
        threading.Thread(target=reloader.reload, name="config-reload", daemon=True).start()

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGHUP, on_reload)
