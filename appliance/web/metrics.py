"""Prometheus ``GET /metrics``: what the lanes, the store and the outbox are doing, in numbers.

A dedicated ``CollectorRegistry`` per app (never the global one: two apps in one process, as in the
tests, must not mix) with one collector that reads the running appliance at scrape time:

- ``gate_stage_latency_seconds`` (histogram; lane, stage = motion|analysis|verdict|store)
- ``gate_lane_analysed_fps``, ``gate_lane_analysed_frames_total``, ``gate_lane_crossings_total``,
  ``gate_lane_progress_age_seconds`` (since the lane last got a frame through its pipeline)
- ``gate_source_fps``, ``gate_source_frames_total``, ``gate_source_up``,
  ``gate_source_dropped_frames_total`` (lane, source, reason: drops|skipped_frames|rejected)
- ``gate_queue_depth`` (queue: ``analysis:<lane>``, ``source:<lane>/<source>``)
- ``gate_outbox_backlog``, ``gate_outbox_oldest_age_seconds``, ``gate_outbox_alarm`` (sink)
- ``gate_disk_free_bytes``, ``gate_disk_total_bytes``, ``gate_store_file_bytes`` (file: db|wal),
  ``gate_evidence_bytes``, ``gate_crossings_stored`` (decision)
- ``gate_model_info`` (task, name, version, provider) = 1

Numbers only: no plate, container, face or person value ever becomes a label. Access: outside the
login wall like the scanners' endpoint (Prometheus has no session); with ``health.metrics_token_file``
a bearer token is required (Prometheus ``authorization: {credentials_file: ...}``), compared in
constant time. The web UI listens on 127.0.0.1 by default, where the local Prometheus scrapes it.
"""

from __future__ import annotations

import hmac
import shutil
from collections.abc import Iterator
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from appliance.errors import ConfigError
from appliance.web.health import OpsView


class ApplianceCollector(Collector):
    def __init__(self, view: OpsView) -> None:
        self.view = view

    def collect(self) -> Iterator[Metric]:
        yield from self._stages()
        yield from self._lanes()
        yield from self._outbox()
        yield from self._disk()
        yield from self._models()

    def _stages(self) -> Iterator[Metric]:
        stages = self.view.stages
        hist = HistogramMetricFamily("gate_stage_latency_seconds", "Seconds per lane stage (one observation "
                                     "per frame for motion and analysis, per crossing for verdict and store).",
                                     labels=["lane", "stage"])
        fps = GaugeMetricFamily("gate_lane_analysed_fps", "Frames analysed per second (last 10 s).", labels=["lane"])
        if stages is not None:
            for (lane, stage), snap in sorted(stages.snapshot().items()):
                buckets = [("+Inf" if b == float("inf") else repr(b), n) for b, n in snap.buckets]
                hist.add_metric([lane, stage], buckets, snap.sum_s)
            for lane, value in sorted(stages.analysed_fps().items()):
                fps.add_metric([lane], value)
        yield hist
        yield fps

    def _lanes(self) -> Iterator[Metric]:
        lanes = self.view.status.get("lanes") or {}
        analysed = CounterMetricFamily("gate_lane_analysed_frames", "Frames sent to the readers.", labels=["lane"])
        crossings = CounterMetricFamily("gate_lane_crossings", "Crossings closed by the lane.", labels=["lane"])
        source_fps = GaugeMetricFamily("gate_source_fps", "Frames read per second (last 5 s).",
                                       labels=["lane", "source"])
        frames = CounterMetricFamily("gate_source_frames", "Frames read from the source.", labels=["lane", "source"])
        up = GaugeMetricFamily("gate_source_up", "1 when the source is connected (or a finished replay).",
                               labels=["lane", "source"])
        dropped = CounterMetricFamily("gate_source_dropped_frames", "Frames the source lost, by reason.",
                                      labels=["lane", "source", "reason"])
        depth = GaugeMetricFamily("gate_queue_depth", "Items waiting in a queue.", labels=["queue"])
        for lane_id, lane in sorted(lanes.items()):
            if "analysed_frames" in lane:
                analysed.add_metric([lane_id], float(lane["analysed_frames"]))
            if "crossings" in lane:
                crossings.add_metric([lane_id], float(lane["crossings"]))
            for source_id, src in sorted((lane.get("sources") or {}).items()):
                labels = [lane_id, source_id]
                source_fps.add_metric(labels, float(src.get("fps") or 0.0))
                frames.add_metric(labels, float(src.get("frames_read") or 0))
                up.add_metric(labels, 1.0 if src.get("state") in ("connected", "ended", "waiting") else 0.0)
                for reason, n in sorted((src.get("dropped_by_reason") or {}).items()):
                    dropped.add_metric([*labels, reason], float(n))
        for lane_id, pipeline in sorted(self.view.pipelines.items()):
            depth.add_metric([f"analysis:{lane_id}"], float(pipeline.in_flight))
        yield from (analysed, crossings, source_fps, frames, up, dropped, depth)
        progress = GaugeMetricFamily("gate_lane_progress_age_seconds",
                                     "Seconds since the lane last got a frame through its pipeline.", labels=["lane"])
        if self.view.heartbeats is not None:
            for lane_id, age in sorted(self.view.heartbeats.ages().items()):
                progress.add_metric([lane_id], age)
        yield progress

    def _outbox(self) -> Iterator[Metric]:
        backlog = GaugeMetricFamily("gate_outbox_backlog", "Undelivered events per sink.", labels=["sink"])
        oldest = GaugeMetricFamily("gate_outbox_oldest_age_seconds", "Age of the oldest undelivered event "
                                   "(0 when none).", labels=["sink"])
        alarm = GaugeMetricFamily("gate_outbox_alarm", "1 when the oldest undelivered event is older than "
                                  "publish.backlog_alarm_s.", labels=["sink"])
        for s in self.view.store.outbox_status():
            backlog.add_metric([s.sink], float(s.backlog))
            oldest.add_metric([s.sink], float(s.oldest_undelivered_age_s or 0.0))
            alarm.add_metric([s.sink], 1.0 if s.alarm else 0.0)
        yield from (backlog, oldest, alarm)

    def _disk(self) -> Iterator[Metric]:
        store = self.view.store
        free = GaugeMetricFamily("gate_disk_free_bytes", "Free bytes on the file system.", labels=["path"])
        total = GaugeMetricFamily("gate_disk_total_bytes", "Size of the file system.", labels=["path"])
        for name, folder in (("store", store.path.parent), ("evidence", store.evidence_dir)):
            try:
                usage = shutil.disk_usage(folder)
            except OSError:
                continue
            free.add_metric([name], float(usage.free))
            total.add_metric([name], float(usage.total))
        files = GaugeMetricFamily("gate_store_file_bytes", "Size of the SQLite store's files.", labels=["file"])
        for name, path in (("db", store.path), ("wal", Path(f"{store.path}-wal"))):
            try:
                files.add_metric([name], float(path.stat().st_size))
            except OSError:
                files.add_metric([name], 0.0)
        evidence = GaugeMetricFamily("gate_evidence_bytes", "Bytes of the evidence files the store references.")
        evidence.add_metric([], float(store.query("SELECT COALESCE(SUM(bytes), 0) FROM evidence")[0][0]))
        stored = GaugeMetricFamily("gate_crossings_stored", "Crossings in the store, by verdict.", labels=["decision"])
        for decision, n in sorted(store.counts().items()):
            stored.add_metric([decision], float(n))
        yield from (free, total, files, evidence, stored)

    def _models(self) -> Iterator[Metric]:
        info = GaugeMetricFamily("gate_model_info", "The models serving, with their version and execution provider.",
                                 labels=["task", "name", "version", "provider"])
        for m in self.view.status.get("models") or []:
            info.add_metric([str(m.get("task")), str(m.get("name")), str(m.get("version")), str(m.get("provider"))],
                            1.0)
        yield info


def read_token(path: Path | None) -> str | None:
    """The bearer token /metrics requires, from ``health.metrics_token_file`` (None: no token)."""
    if path is None:
        return None
    try:
        token = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"health.metrics_token_file: cannot read {path}: {exc.strerror or exc}") from exc
    if len(token) < 16:
        raise ConfigError(f"health.metrics_token_file: the token in {path} is shorter than 16 characters")
    return token


def metrics_router(view: OpsView, token: str | None = None) -> APIRouter:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ApplianceCollector(view))
    router = APIRouter()

    @router.get("/metrics")
    def metrics(request: Request) -> Response:
        if token is not None:
            given = request.headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                raise HTTPException(401, "metrics need the bearer token of health.metrics_token_file",
                                    headers={"WWW-Authenticate": "Bearer"})
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return router
