"""Config reload on SIGHUP, without a restart and without losing a crossing.

The new file is validated like at boot (``load_config`` + ``verify_paths``) and the new manifest file
is read *before* anything changes: a bad config or manifest is refused with the reason in the log and
in ``/api/status`` (``config.last_reload``), and the running config stays. What can change safely while
crossings are in flight is then swapped in one assignment each:

- ``verdicts``: each lane pipeline's rules (a crossing is decided with either the old or the new rules,
  never with a mix; nothing in flight is dropped);
- ``manifest.file``: its entries are upserted into the live manifest index, and declarations that were
  in the previous file but are gone from the new one are removed (entries central pushed are kept);
- ``health``: the readiness and watchdog thresholds;
- ``publish.backlog_alarm_s``.

Any other difference (lanes, sources, storage, web, models, sinks, faces, X-ray, inbound) needs a
restart: it is named in a WARNING and the running value is kept.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from appliance.config import AppConfig, load_config, verify_paths
from appliance.errors import ApplianceError
from appliance.lifecycle.sd_notify import notify
from appliance.verdicts.manifest import load_manifest_file

if TYPE_CHECKING:
    from appliance.app import Services

log = logging.getLogger(__name__)

RESTART_SECTIONS = ("site", "lanes", "analyzers", "storage", "web", "models", "faces", "xray", "inbound")


def _file_declarations(config: AppConfig) -> set[str]:
    if config.manifest.file is None:
        return set()
    return {e.declaration for e in load_manifest_file(config.manifest.file).entries}


class ConfigReloader:
    """Re-reads ``path`` into the running ``services`` (see the module docstring). Thread-safe."""

    def __init__(self, path: Path, services: Services) -> None:
        self.path = path
        self.services = services
        self._lock = threading.Lock()
        self._declarations = _file_declarations(services.config)
        self.status: dict[str, Any] = services.status.setdefault("config", {})
        self.status.update(path=str(path), loaded_at=time.time(), reloads=0, last_reload=None)

    def reload(self) -> bool:
        """Apply the file's reloadable settings; False (and the running config kept) when it is invalid."""
        with self._lock:
            notify("RELOADING=1")
            try:
                return self._reload()
            finally:
                notify("READY=1")

    def _reload(self) -> bool:
        old = self.services.config
        try:
            new = load_config(self.path)
            verify_paths(new, str(self.path))
            manifest = load_manifest_file(new.manifest.file) if new.manifest.file is not None else None
        except (ApplianceError, OSError, ValueError) as exc:
            log.error("config reload refused, the running config stays: %s", exc)
            self.status["last_reload"] = {"at": time.time(), "ok": False, "error": str(exc)}
            return False
        needs_restart = [name for name in RESTART_SECTIONS if getattr(new, name) != getattr(old, name)]
        if new.publish.model_copy(update={"backlog_alarm_s": old.publish.backlog_alarm_s}) != old.publish:
            needs_restart.append("publish")
        applied = []
        if new.verdicts != old.verdicts:
            for pipeline in list(self.services.pipelines.values()):
                pipeline.verdicts = new.verdicts  # one assignment: the next crossing decided uses it
            applied.append("verdicts")
        if manifest is not None:
            index = self.services.manifest
            declarations = {e.declaration for e in manifest.entries}
            for entry in manifest.entries:
                index.upsert(entry)
            for gone in self._declarations - declarations:
                index.remove(gone)
            self._declarations = declarations
            applied.append("manifest")
        if new.health != old.health:
            applied.append("health")
        if new.publish.backlog_alarm_s != old.publish.backlog_alarm_s:
            self.services.store.backlog_alarm_s = new.publish.backlog_alarm_s
            applied.append("publish.backlog_alarm_s")
        self.services.config = old.model_copy(update={
            "verdicts": new.verdicts, "manifest": new.manifest, "health": new.health,
            "publish": old.publish.model_copy(update={"backlog_alarm_s": new.publish.backlog_alarm_s}),
        })
        if needs_restart:
            log.warning("config reload: %s changed and need a restart (systemctl restart gate-appliance); "
                        "the running values stay", ", ".join(needs_restart))
        log.info("config reloaded from %s: applied %s", self.path, ", ".join(applied) or "nothing (no change)")
        self.status["reloads"] = int(self.status.get("reloads") or 0) + 1
        self.status["last_reload"] = {"at": time.time(), "ok": True, "error": None, "applied": applied,
                                      "needs_restart": needs_restart}
        return True
