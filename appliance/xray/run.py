"""The lane's X-ray scanner inside the running appliance: drop folder -> ``XrayProcessor`` -> store + outbox.

``init_xray`` opens the configured ``xray-anomaly`` model through every validation check (signature,
contract, golden cases) and fails the boot with the reason when it cannot; ``run_xray`` then takes
each complete drop in name order. A drop that cannot be read is moved to ``rejected/`` with its
reason by the drop folder; a scan that cannot be processed (no calibration for its scanner, a row
count that does not match it) is logged with the reason and its files stay in ``done/``: nothing is
deleted, and the next scans go on.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from appliance.errors import ApplianceError
from appliance.xray.anomaly import AnomalyScorer
from appliance.xray.ingest import XrayDropFolder
from appliance.xray.results import XrayEventBuilder, XrayProcessor

if TYPE_CHECKING:
    from appliance.app import Services
    from appliance.config import AppConfig
    from appliance.store.db import Store

log = logging.getLogger(__name__)


def init_xray(config: AppConfig, store: Store) -> XrayProcessor | None:
    """The X-ray processor of the config, or None when it has no ``xray`` section."""
    if config.xray is None:
        return None
    from appliance.inference.store import ModelStore
    from appliance.inference.validation import validate_package, validation_policy

    models = ModelStore(config.models.root) if config.models.root else ModelStore()
    ref = models.get("xray-anomaly", config.xray.model)
    model = validate_package(ref.folder, validation_policy(config), store_root=models.root).model
    events = XrayEventBuilder.like(store.event_builder, config.site.gate)
    labels = [f"{ref.task}/{ref.name}@{ref.version}"]
    consistency = None
    if config.xray.consistency_model is not None:
        from appliance.xray.consistency import ConsistencyScorer

        cref = models.get("xray-consistency", config.xray.consistency_model)
        consistency = ConsistencyScorer.from_model(
            validate_package(cref.folder, validation_policy(config), store_root=models.root).model)
        labels.append(f"{cref.task}/{cref.name}@{cref.version}")
    return XrayProcessor(store, AnomalyScorer.from_model(model), config.xray.calibration_dir, events, labels,
                         config.xray.window_s, consistency, config.xray.pixel_m)


def run_xray(services: Services, stop: threading.Event | None = None) -> None:
    """Process the drop folder's scans until it is drained (``follow: false``) or ``stop`` is set."""
    config = services.config.xray
    processor = services.xray
    if config is None or processor is None:
        return
    folder = XrayDropFolder(config.drop_dir, follow=config.follow, default_utc_offset_h=config.default_utc_offset_h)
    status = services.status.setdefault("xray", {})
    processed = failed = 0
    if stop is not None:
        def close_on_stop() -> None:
            stop.wait()
            folder.close()

        threading.Thread(target=close_on_stop, name="xray-stop", daemon=True).start()
    for scan in folder:
        try:
            report = processor.process(scan)
            processed += 1
            status["last_scan"] = report.scan_id
        except ApplianceError as exc:
            failed += 1
            status["last_error"] = str(exc)
            log.error("x-ray scan %s (%s) not processed, its files are in %s: %s", scan.scan_id[:12],
                      scan.source, folder.done_path, exc)
        except Exception as exc:  # one scan's failure must not stop the scanner's next scans
            failed += 1
            status["last_error"] = f"{type(exc).__name__}: {exc}"
            log.exception("x-ray scan %s (%s) failed, its files are in %s", scan.scan_id[:12], scan.source,
                          folder.done_path)
        status.update(processed=processed, failed=failed, **{f"folder_{k}": v for k, v in folder.status().items()})
    log.info("x-ray drop folder %s drained: %d processed, %d failed", config.drop_dir, processed, failed)
