"""``appliance run`` as a service: the pieces of appliance/lifecycle wired around the boot in app.py.

``ServiceRuntime.start`` (after the services are built, before the lanes start) installs the signal
handlers (SIGTERM drains, SIGHUP reloads); ``ready()`` (once lanes and web are up) tells systemd
READY=1 and starts the watchdog when systemd asked for one (``$WATCHDOG_USEC``); ``close()`` stops it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from appliance.lifecycle import signals
from appliance.lifecycle.reload import ConfigReloader
from appliance.lifecycle.sd_notify import notify, watchdog_interval_s
from appliance.lifecycle.watchdog import Watchdog

if TYPE_CHECKING:
    from appliance.app import Services

log = logging.getLogger(__name__)


class ServiceRuntime:
    def __init__(self, config_path: Path, services: Services) -> None:
        self.services = services
        self.reloader = ConfigReloader(config_path, services)
        self.watchdog: Watchdog | None = None

    @classmethod
    def start(cls, config_path: Path, services: Services) -> ServiceRuntime:
        runtime = cls(config_path, services)
        signals.install(services.stop, runtime.reloader)
        return runtime

    def ready(self) -> None:
        lanes = len(self.services.config.lanes)
        notify("READY=1", f"STATUS=running {lanes} lane(s)")
        timeout = watchdog_interval_s()
        if timeout is not None:
            status = self.services.status.setdefault("watchdog", {})
            self.watchdog = Watchdog(self.services.heartbeats, timeout / 2,
                                     lambda: self.services.config.health.lane_stall_s, status)
            self.watchdog.start()

    def close(self) -> None:
        if self.watchdog is not None:
            self.watchdog.stop()
        notify("STOPPING=1")
