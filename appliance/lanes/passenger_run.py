"""Running passenger lanes: the face services they share, and one lane's loop.

``init_face_services`` opens what every passenger lane of a box shares: the face key (from
``$CREDENTIALS_DIRECTORY/face-key`` or ``faces.key_file``), the encrypted template store, the
face watchlist index built from it, and the embedding model, validated like every other model
(signature, contract, golden cases). A box without passenger lanes opens none of it.

``run_passenger_lane`` feeds a lane's kiosk scans and face frames, in time order, to a
``PassengerLane`` and stores each passage with its outbox event in one transaction. Expired
templates and crops are purged when the lane starts and every ``PURGE_EVERY_S`` after.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from appliance.config import AppConfig, FacesConfig, LaneConfig
from appliance.faces.crypto import FaceKey, face_key_path
from appliance.faces.documents import DocumentReader, FileDropReader
from appliance.faces.embed import FaceEmbedder
from appliance.faces.templates import TemplateStore
from appliance.faces.watchlist import FaceWatchlistIndex
from appliance.inference.session import OnnxModel
from appliance.lanes.passenger import PassageResult, PassengerLane
from appliance.lifecycle import faults

if TYPE_CHECKING:
    from appliance.app import Services

log = logging.getLogger(__name__)

PURGE_EVERY_S = 3600.0


@dataclass
class FaceServices:
    """What the passenger lanes of one box share."""

    config: FacesConfig
    key: FaceKey
    templates: TemplateStore
    watchlist: FaceWatchlistIndex
    model: OnnxModel
    documents: DocumentReader | None = None
    _purge_lock: threading.Lock = field(default_factory=threading.Lock)
    _last_purge: float = 0.0

    def purge_if_due(self, now: float | None = None) -> dict[str, int] | None:
        """Purge expired templates and crops when the last purge is older than ``PURGE_EVERY_S``."""
        now = time.time() if now is None else now
        with self._purge_lock:
            if self._last_purge and now - self._last_purge < PURGE_EVERY_S:
                return None
            self._last_purge = now
        removed = self.templates.purge(now)
        if any(removed.values()):
            self.watchlist.rebuild_from(self.templates)
            log.info("face data retention: purged %s", removed)
        return removed

    def close(self) -> None:
        self.templates.close()


def open_face_model(config: AppConfig) -> OnnxModel:
    """The configured face-embedding model, through every validation check (prepared from its wheel if needed)."""
    from appliance.inference.store import ModelStore
    from appliance.inference.validation import validate_package, validation_policy

    store = ModelStore(config.models.root) if config.models.root else ModelStore()
    ref = store.get("face-embedding", config.faces.embedder)
    if not ref.file.is_file() and ref.manifest.source is not None:
        store.prepare(ref)  # converted from its installed wheel (no download), then checked like any other
    return validate_package(ref.folder, validation_policy(config), store_root=store.root).model


def init_face_services(config: AppConfig) -> FaceServices | None:
    """The shared face services, or None when the config has no passenger lane."""
    if not any(lane.kind == "passenger" for lane in config.lanes):
        return None
    faces = config.faces
    key = FaceKey.load(face_key_path(faces.key_file))
    model = open_face_model(config)  # a bad model stops the boot before any face data is opened
    templates = TemplateStore(faces.store_path, key)
    watchlist = FaceWatchlistIndex()
    documents = FileDropReader(faces.document_reader_dir) if faces.document_reader_dir is not None else None
    services = FaceServices(faces, key, templates, watchlist, model, documents)
    services.purge_if_due()
    log.info("face services: key %s, %d watchlist template(s), model %s", key.key_id,
             watchlist.rebuild_from(templates), model.manifest.name)
    return services


def build_passenger_lane(lane: LaneConfig, services: Services, faces: FaceServices,
                         on_passage: Callable[[PassageResult], None] | None = None) -> PassengerLane:
    from appliance.analyzers.codes import CodeReader
    from appliance.faces.pipeline import DlibFacePipeline

    embedder = FaceEmbedder(faces.model)
    return PassengerLane(
        lane, faces.config, DlibFacePipeline(faces.config, embedder.chip_size, embedder.padding), embedder,
        faces.templates, services.watchlist, person_ref=faces.key.person_ref, face_watchlist=faces.watchlist,
        documents=faces.documents, codes=services.analyzer.readers.codes or CodeReader(), on_passage=on_passage,
    )


def run_passenger_lane(
    lane: LaneConfig,
    services: Services,
    stop: threading.Event | None = None,
    on_passage: Callable[[PassageResult], None] | None = None,
) -> None:
    """Run a passenger lane's sources until they end (or ``stop`` is set); every passage is stored."""
    from appliance.app import open_lane_sources
    from appliance.ingest.runner import merge_by_time
    from appliance.lanes.health import LaneHealth
    from appliance.publish.passage_events import PassageEventBuilder
    from appliance.store.passages import save_passage

    faces = services.faces
    if faces is None:
        raise RuntimeError(f"lane {lane.id}: a passenger lane needs the face services (init_face_services)")
    events = PassageEventBuilder.like(services.store.event_builder, services.config.site.gate)
    lane_status = services.status.setdefault("lanes", {}).setdefault(lane.id, {})
    count = 0

    def keep(result: PassageResult) -> None:
        nonlocal count
        save_passage(services.store, result, events)
        count += 1
        lane_status["passages"] = count
        if on_passage is not None:
            on_passage(result)

    passenger = build_passenger_lane(lane, services, faces, keep)
    sources = open_lane_sources(lane)
    lane_status["state"] = "running"
    health = LaneHealth(lane.id, sources, lane_status, services.thumbnails)
    services.heartbeats.beat(lane.id)  # the systemd watchdog follows each lane's progress
    try:
        for frame in merge_by_time(sources):
            if stop is not None and stop.is_set():
                break
            faults.maybe_hang(lane.id)  # test-only fault injection (GATE_TEST_HANG_FILE); a no-op on a box
            passenger.feed(frame)
            services.heartbeats.beat(lane.id)
            lane_status["last_frame_ts"] = frame.ts
            health.on_frame(frame)
            faces.purge_if_due()
    finally:
        passenger.finish()
        services.heartbeats.done(lane.id)
        for source in sources:
            source.close()
        health.finish()
        lane_status.update(state="finished", passages=count)
