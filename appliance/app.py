"""Boot order of the appliance, top to bottom: config -> store -> manifest -> readers -> lanes -> web.

``run_appliance`` runs a config; ``run_demo`` simulates a lane first and runs the appliance on
it. Each ``init_*``/``start_*`` step does one thing and fails with a clear message.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from appliance.config import AppConfig, LaneConfig, load_config, verify_paths
from appliance.ingest.frames import Frame
from appliance.ingest.motion import MotionGate
from appliance.ingest.runner import merge_by_time
from appliance.ingest.sources import Source, open_source
from appliance.lanes.analysis import FrameAnalyzer, Readers
from appliance.lanes.crossing import Crossing
from appliance.lanes.health import LaneHealth
from appliance.lanes.pipeline import LanePipeline
from appliance.lanes.thumbnails import Thumbnails
from appliance.lifecycle import faults
from appliance.lifecycle.stage_latency import StageLatency
from appliance.lifecycle.watchdog import Heartbeats
from appliance.store.db import Store
from appliance.verdicts.manifest import ManifestIndex, load_manifest_file
from appliance.verdicts.rules import Verdict
from appliance.verdicts.watchlist import WatchlistIndex

if TYPE_CHECKING:
    from appliance.actuators.setup import LaneActuators
    from appliance.inference.registry import ModelRegistry
    from appliance.inference.watcher import ModelWatcher
    from appliance.lanes.passenger_run import FaceServices
    from appliance.retention.service import RetentionService
    from appliance.web.health import OpsView
    from appliance.web.scanner_upload import ScannerUpload
    from appliance.xray.results import XrayProcessor

log = logging.getLogger(__name__)

# Idle seconds between simulated vehicles in the demo and the sim evaluation: long enough for
# the motion gate and the lane to see the lane empty between two trucks.
DEMO_GAP_S = 3.0


@dataclass
class Services:
    """Everything the lanes and the web app share."""

    config: AppConfig
    store: Store
    manifest: ManifestIndex
    analyzer: FrameAnalyzer
    status: dict[str, Any] = field(default_factory=dict)
    watchlist: WatchlistIndex = field(default_factory=WatchlistIndex)
    thumbnails: Thumbnails = field(default_factory=Thumbnails)  # the latest frame of each source, for /status
    registry: ModelRegistry | None = None  # which model versions serve (appliance models activate|rollback|shadow)
    watcher: ModelWatcher | None = None  # follows the registry: hot swap and shadow, off the lane threads
    faces: FaceServices | None = None  # face key, encrypted templates, face watchlist (passenger lanes only)
    xray: XrayProcessor | None = None  # the lane's X-ray scanner (config.xray)
    # Lifecycle (appliance/lifecycle): set to drain and stop the lanes (SIGTERM); each lane's progress for the
    # systemd watchdog; per-stage latencies for /metrics; the running cargo pipelines (SIGHUP swaps their rules).
    stop: threading.Event = field(default_factory=threading.Event)
    heartbeats: Heartbeats = field(default_factory=Heartbeats)
    stages: StageLatency = field(default_factory=StageLatency)
    pipelines: dict[str, LanePipeline] = field(default_factory=dict)


def init_store(config: AppConfig) -> Store:
    from appliance.publish.setup import event_builder_from_config

    # Every verdict is written to the outbox in the crossing's own transaction.
    return Store(config.storage.path, config.storage.evidence_dir, event_builder=event_builder_from_config(config),
                 backlog_alarm_s=config.publish.backlog_alarm_s)


def init_manifest(config: AppConfig) -> ManifestIndex:
    if config.manifest.file is None:
        if config.inbound is None and any(lane.kind == "cargo" for lane in config.lanes):
            log.warning("no pre-arrival manifest configured: every crossing will be held (no_manifest_entry)")
        return ManifestIndex()
    index = ManifestIndex(load_manifest_file(config.manifest.file))
    log.info("loaded pre-arrival manifest with %d entries", len(index))
    return index


def init_services(config: AppConfig) -> Services:
    from appliance.inbound.setup import load_inbound_state
    from appliance.inference.inventory import model_status
    from appliance.inference.registry import ModelRegistry
    from appliance.inference.validation import session_options
    from appliance.inference.watcher import ModelWatcher
    from appliance.lanes.passenger_run import init_face_services

    faces = init_face_services(config)  # a missing face key or a bad face model stops the boot here
    store = init_store(config)
    manifest = init_manifest(config)
    watchlist = load_inbound_state(store, manifest)  # what central sent before this start
    registry = ModelRegistry(store, config)
    readers = Readers.from_config(config, registry)
    analyzer = FrameAnalyzer(readers, store, detector_max_side=config.analyzers.plates.detector_max_side)
    status: dict[str, Any] = {"models": model_status(readers)}
    watcher = None
    if readers.models is not None:
        def refresh_models() -> None:
            status["models"] = model_status(readers)

        m = config.models
        watcher = ModelWatcher(registry, readers.models, interval_s=m.watch_interval_s, shadow_every=m.shadow_every,
                               shadow_queue=m.shadow_queue,
                               options=session_options(config), on_change=refresh_models)
    from appliance.xray.run import init_xray

    return Services(config, store, manifest, analyzer, status=status, watchlist=watchlist, registry=registry,
                    watcher=watcher, faces=faces, xray=init_xray(config, store))


def open_lane_sources(lane: LaneConfig) -> list[Source]:
    sources: list[Source] = []
    for src in lane.sources:
        params = src.model_dump(exclude={"role", "roi", "plate_height_px"})  # those two: calibration checks
        kind = params.pop("type")
        sources.append(open_source(kind, **params))
    return sources


def run_lane(
    lane: LaneConfig,
    services: Services,
    workers: int = 1,
    stop: threading.Event | None = None,
    on_crossing: Callable[[Crossing, Verdict], None] | None = None,
    actuators: LaneActuators | None = None,
) -> None:
    """Run a lane's sources through its pipeline until they end (or ``stop`` is set)."""
    if actuators is not None:  # the barrier, lights and IGV fleet act on each verdict (appliance/actuators)
        on_crossing = actuators.chain(on_crossing)
    pipeline = LanePipeline(
        lane, services.analyzer, services.manifest, services.config.verdicts, services.store,
        workers=workers, on_crossing=on_crossing, watchlist=services.watchlist, stages=services.stages,
        join=actuators.join if actuators is not None else None,
    )
    services.pipelines[lane.id] = pipeline
    gates = {s.id: MotionGate() for s in lane.sources if s.role != "kiosk"}
    sources = open_lane_sources(lane)
    lane_status = services.status.setdefault("lanes", {}).setdefault(lane.id, {})
    lane_status["state"] = "running"
    health = LaneHealth(lane.id, sources, lane_status, services.thumbnails)
    frame: Frame
    services.heartbeats.beat(lane.id)
    try:
        for frame in merge_by_time(sources):
            if stop is not None and stop.is_set():
                break
            faults.maybe_hang(lane.id)  # test-only fault injection (GATE_TEST_HANG_FILE); a no-op on a box
            gate = gates.get(frame.source_id)
            started = time.perf_counter()
            motion = gate.update(frame.image) if gate is not None else None
            services.stages.observe(lane.id, "motion", time.perf_counter() - started)
            pipeline.feed(frame, motion is not None and motion.moving, motion.bbox if motion is not None else None)
            lane_status["last_frame_ts"] = frame.ts
            lane_status["crossings"] = pipeline.times.crossings
            lane_status["analysed_frames"] = pipeline.times.analysed_frames
            health.on_frame(frame)
            services.heartbeats.beat(lane.id)
    finally:
        pipeline.finish()
        services.heartbeats.done(lane.id)
        for source in sources:
            source.close()
        health.finish()
        lane_status.update(state="finished", crossings=pipeline.times.crossings,
                           analysed_frames=pipeline.times.analysed_frames)


def start_web(services: Services, host: str, port: int) -> threading.Thread:
    import uvicorn

    from appliance.web.app import WebServices, create_app
    from appliance.web.auth import AuthSettings
    from appliance.web.metrics import read_token

    web = WebServices(services.store, services.config.site.gate, services.status,
                      auth=AuthSettings.from_config(services.config.web), manifest=services.manifest,
                      thumbnails=services.thumbnails, timezone=services.config.site.timezone, models=services.registry,
                      face_crops=services.faces.templates.get_crop if services.faces is not None else None,
                      scanner_upload=_scanner_upload(services.config), ops=_ops_view(services),
                      metrics_token=read_token(services.config.health.metrics_token_file))
    server = uvicorn.Server(uvicorn.Config(create_app(web), host=host, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="web", daemon=True)
    thread.start()
    log.info("web UI on http://%s:%d", host, port)
    return thread


def _ops_view(services: Services) -> OpsView:
    """What /readyz and /metrics read (appliance/web/health.py, metrics.py)."""
    from appliance.web.health import OpsView

    return OpsView(services.store, services.status, settings=lambda: services.config.health,
                   lanes=[lane.id for lane in services.config.lanes], heartbeats=services.heartbeats,
                   stages=services.stages, pipelines=services.pipelines,
                   expects_models=any(lane.kind == "cargo" for lane in services.config.lanes))


def _scanner_upload(config: AppConfig) -> ScannerUpload | None:
    from appliance.web.scanner_upload import ScannerUpload

    x = config.xray
    if x is None or x.upload_token_file is None:
        return None
    return ScannerUpload.from_files(x.drop_dir, x.upload_token_file)


def start_retention(services: Services) -> RetentionService | None:
    """Disk budgets, alarms and eviction every retention.interval_s (docs/RETENTION.md)."""
    from appliance.retention.service import RetentionService

    if not services.config.retention.enabled:
        return None
    retention = RetentionService(services.config, services.store, services.status)
    retention.start()
    return retention


def run_appliance(config_path: Path, serve: bool = True, keep_serving: bool = True,
                  as_service: bool = False, on_start: Callable[[Services], None] | None = None) -> Services:
    """``as_service`` (``appliance run``): hold the store's run lock, drain on SIGTERM, reload on SIGHUP,
    notify systemd and feed its watchdog (appliance/lifecycle/service.py). ``on_start``: called once the
    lane threads run (the demo's X-ray scanner feeds its drop folder from it: appliance/sim/demo_xray.py)."""
    from appliance.inbound.setup import subscriber_from_config
    from appliance.lifecycle.runlock import RunLock
    from appliance.lifecycle.service import ServiceRuntime
    from appliance.publish.setup import publisher_from_config

    config = load_config(config_path)
    verify_paths(config, str(config_path))
    run_lock = RunLock(config.storage.path).acquire() if as_service else None
    services = init_services(config)
    runtime = ServiceRuntime.start(config_path, services) if as_service else None
    # Built first: a bad trusted key file stops the boot before any connection is opened.
    inbound = (subscriber_from_config(config, services.store, services.manifest, services.watchlist, services.status)
               if config.inbound is not None else None)
    publisher = publisher_from_config(config, services.store) if config.publish.sinks else None
    if publisher is not None:
        publisher.start()
    if inbound is not None:
        inbound.start()
    if services.watcher is not None:
        services.watcher.start()  # `appliance models activate|rollback|shadow` take effect without a restart
    retention = start_retention(services)
    from appliance.actuators.setup import start_actuators

    actuators = start_actuators(config, services.store, services.status)  # every barrier driven closed first
    try:
        web = start_web(services, config.web.host, config.web.port) if serve else None
        from appliance.lanes.passenger_run import run_passenger_lane
        from appliance.xray.run import run_xray

        lanes = [
            threading.Thread(target=run_passenger_lane if lane.kind == "passenger" else run_lane,
                             args=(lane, services),
                             kwargs={"stop": services.stop} | ({"actuators": actuators[lane.id]}
                                                              if lane.id in actuators else {}),
                             name=f"lane-{lane.id}",
                             daemon=True)
            for lane in config.lanes
        ]
        if services.xray is not None:
            lanes.append(threading.Thread(target=run_xray, args=(services, services.stop), name="xray", daemon=True))
        for thread in lanes:
            thread.start()
        if on_start is not None:
            on_start(services)
        if runtime is not None:
            runtime.ready()  # READY=1 and the watchdog (systemd)
        for thread in lanes:
            while thread.is_alive():
                thread.join(0.5)  # wakes up for signals (SIGTERM sets services.stop: the lanes drain)
        log.info("all lane sources ended; %s", services.store.counts())
        if web is not None and keep_serving:
            log.info("sources finished; still serving the web UI (Ctrl+C to stop)")
            while web.is_alive() and not services.stop.is_set():
                services.stop.wait(1.0)
    finally:
        for lane_actuators in actuators.values():
            lane_actuators.stop()
        if runtime is not None:
            runtime.close()
        if retention is not None:
            retention.stop()
        if services.watcher is not None:
            services.watcher.stop()
        if services.faces is not None:
            services.faces.close()
        if inbound is not None:
            inbound.stop()
        if publisher is not None:
            publisher.stop()
        if run_lock is not None:
            run_lock.release()
    return services


def run_demo(workdir: Path, vehicles: int, seed: int, port: int, keep_serving: bool = True,
             passengers: int = 12) -> Services:
    """Simulate a cargo lane and a passenger lane (once per seed) and run the appliance on them in real
    time with the web UI. ``passengers=0``: the cargo lane only."""
    import yaml

    from appliance.sim import simulate

    sim_dir = workdir / f"sim-{seed}-{vehicles}"
    if not (sim_dir / "truth.json").is_file():
        log.info("rendering the simulated gate (%d vehicles) into %s", vehicles, sim_dir)
        simulate(sim_dir, vehicles, seed, gap_s=DEMO_GAP_S, overwrite=True)
    # Each demo run replays the same simulated passages: start from an empty store.
    for stale in workdir.glob("appliance.db*"):
        stale.unlink()
    data = load_config(sim_dir / "lane.yaml").model_dump(mode="json")
    for lane in data["lanes"]:
        for src in lane["sources"]:
            if src["type"] == "video_file":
                src["realtime"] = True  # replay at camera speed, as a live lane would run
            if src["type"] == "folder":
                src["move_processed"] = False  # the demo can run again on the same files
    if passengers > 0:
        _add_demo_passenger_lane(data, workdir, passengers, seed)
    data["web"] = {"host": "127.0.0.1", "port": port}
    data["storage"] = {"path": str((workdir / "appliance.db").resolve()),
                       "evidence_dir": str((workdir / "evidence").resolve())}
    # The cargo lane's drive-through X-ray portal: a scan per container truck (appliance/sim/demo_xray.py).
    from appliance.sim.demo_xray import add_demo_xray

    xray = add_demo_xray(data, workdir, sim_dir, seed, stop_when_done=not keep_serving)
    # The cargo lane's barrier, lights and loops (a pymodbus server) and IGV fleet (on a demo broker, when
    # mosquitto is installed): appliance/sim/lane_devices.py, docs/ACTUATORS.md.
    from appliance.sim.lane_devices import LaneDevices

    cargo = data["lanes"][0]
    devices = LaneDevices.start(workdir, data["site"]["gate"], cargo["id"])
    try:
        cargo["actuators"] = devices.actuators_section()
        demo_path = workdir / "demo.yaml"
        demo_path.write_text("# Written by `appliance demo`.\n"
                             + yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
        from appliance.users_cli import create_demo_admin

        demo_config = load_config(demo_path)
        create_demo_admin(demo_config)  # demo only: a fresh admin, its random password printed once
        if passengers > 0:
            _enrol_demo_passengers(demo_config, workdir / f"passengers-{seed}-{passengers}")
        devices.feed_arrivals(sim_dir / "truth.json", float(cargo["sources"][0]["start_time"]))
        return run_appliance(demo_path, serve=True, keep_serving=keep_serving, on_start=xray.start)
    finally:
        xray.stop()
        devices.stop()


def _add_demo_passenger_lane(data: dict[str, Any], workdir: Path, passengers: int, seed: int) -> None:
    """The simulated passenger lane (docs/FACES.md) beside the cargo lane, with a demo face key."""
    from appliance.faces.crypto import FaceKey
    from appliance.sim.passengers import reset_document_reader, simulate_passengers

    sim_dir = (workdir / f"passengers-{seed}-{passengers}").resolve()
    if not (sim_dir / "truth.json").is_file():
        log.info("rendering the simulated passenger lane (%d passengers) into %s", passengers, sim_dir)
        simulate_passengers(sim_dir, passengers, seed, overwrite=True)
    reset_document_reader(sim_dir)  # the reader deletes each chip photo once read
    lane = load_config(sim_dir / "lane.yaml").model_dump(mode="json")
    for src in lane["lanes"][0]["sources"]:
        if src["type"] == "video_file":
            src["realtime"] = True
    data["lanes"].append(lane["lanes"][0])
    key_path = (workdir / "face.key").resolve()
    if not key_path.is_file():
        FaceKey.generate(key_path)  # demo only: a real box loads its key through systemd credentials
    for stale in workdir.glob("faces.db*"):
        stale.unlink()
    data["faces"] = {**lane["faces"], "key_file": str(key_path), "store_path": str((workdir / "faces.db").resolve())}


def _enrol_demo_passengers(config: AppConfig, sim_dir: Path) -> None:
    from appliance.faces.crypto import FaceKey, face_key_path
    from appliance.faces.embed import FaceEmbedder
    from appliance.faces.enrol import Enroller
    from appliance.faces.templates import TemplateStore
    from appliance.lanes.passenger_run import open_face_model

    key = FaceKey.load(face_key_path(config.faces.key_file))
    with TemplateStore(config.faces.store_path, key) as store:
        enroller = Enroller(FaceEmbedder(open_face_model(config)), store, key)
        done, problems = enroller.enrol_folder(sim_dir / "enrol", config.faces.template_retention_days * 86400)
    log.info("demo: enrolled %d simulated passenger template(s), %d refused", len(done), len(problems))
