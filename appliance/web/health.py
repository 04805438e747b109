"""Liveness and readiness for systemd, Docker, a load balancer or a person with curl.

``GET /healthz``: the process is alive and its web thread answers (200 ``{"status": "ok"}``); Docker's
HEALTHCHECK calls it. ``GET /readyz``: the box does its job: 200 ``{"ready": true, "checks": [...]}``,
else 503 with ``"failing"`` listing each failed check and why:

- ``sources``: every source of every running lane is connected (a lane that has not started fails);
- ``lanes``: no lane stalled (no frame through its pipeline for ``health.lane_stall_s``);
- ``models``: models are loaded and each runs on an execution provider;
- ``store``: the store takes a write transaction, its folders accept files, and the file system has
  ``health.min_free_disk_mb`` free;
- ``outbox``: no sink has more than ``health.max_outbox_backlog`` undelivered events.

Both sit outside the login wall (appliance/web/auth.py, ``MACHINE_PATHS``): their callers have no
session, and the answers carry no personal data -- check names, counts, lane and source ids.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from appliance.config import HealthConfig
from appliance.store.db import Store

if TYPE_CHECKING:
    from appliance.lifecycle.stage_latency import StageLatency
    from appliance.lifecycle.watchdog import Heartbeats

_OK_SOURCE_STATES = {"connected", "ended", "waiting"}


@dataclass
class OpsView:
    """What /readyz and /metrics read from the running appliance (all optional but the store)."""

    store: Store
    status: dict[str, Any] = field(default_factory=dict)
    settings: Callable[[], HealthConfig] = HealthConfig  # the current health settings (SIGHUP may change them)
    lanes: list[str] = field(default_factory=list)  # the configured lane ids
    heartbeats: Heartbeats | None = None
    stages: StageLatency | None = None
    pipelines: dict[str, Any] = field(default_factory=dict)  # lane id -> LanePipeline (queue depths)
    expects_models: bool = True


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail}


def check_sources(view: OpsView) -> Check:
    lanes = view.status.get("lanes") or {}
    problems = []
    for lane_id in view.lanes:
        lane = lanes.get(lane_id)
        if lane is None or "sources" not in lane:
            problems.append(f"lane {lane_id} has not started")
            continue
        for source_id, source in sorted(lane["sources"].items()):
            if source.get("state") not in _OK_SOURCE_STATES:
                error = f" ({source['error']})" if source.get("error") else ""
                problems.append(f"{lane_id}/{source_id} is {source.get('state')}{error}")
    return Check("sources", not problems, "; ".join(problems) or f"{len(view.lanes)} lane(s) receiving")


def check_lanes(view: OpsView) -> Check:
    if view.heartbeats is None:
        return Check("lanes", True, "not watched")
    stall_s = view.settings().lane_stall_s
    stalled = view.heartbeats.stalled(stall_s)
    if stalled:
        return Check("lanes", False, f"no progress for over {stall_s:g} s: {', '.join(stalled)}")
    return Check("lanes", True, f"{len(view.heartbeats.ages())} lane(s) progressing")


def check_models(view: OpsView) -> Check:
    models = view.status.get("models") or []
    if not models:
        return Check("models", not view.expects_models, "no model loaded" if view.expects_models else "none needed")
    missing = [f"{m.get('task')}/{m.get('name')}" for m in models if not m.get("provider")]
    if missing:
        return Check("models", False, f"no execution provider: {', '.join(missing)}")
    return Check("models", True, f"{len(models)} model(s) loaded")


def _writable(folder: Path) -> str | None:
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".readyz-", delete=True) as probe:
            probe.write(b"ok")
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as exc:
        return f"{folder} does not accept files: {exc.strerror or exc}"
    return None


def check_store(view: OpsView) -> Check:
    store = view.store
    problems = []
    try:
        with store.transaction() as conn:  # BEGIN IMMEDIATE takes the write lock; nothing is written
            conn.execute("SELECT 1 FROM crossings LIMIT 1").fetchall()
    except Exception as exc:
        problems.append(f"no write transaction: {exc}")
    for folder in (store.path.parent, store.evidence_dir):
        problem = _writable(folder)
        if problem:
            problems.append(problem)
    min_free = view.settings().min_free_disk_mb
    try:
        free_mb = shutil.disk_usage(store.path.parent).free / 1e6
        if free_mb < min_free:
            problems.append(f"{free_mb:.0f} MB free, under the {min_free:g} MB floor")
    except OSError as exc:
        problems.append(f"disk usage unknown: {exc}")
    return Check("store", not problems, "; ".join(problems) or "writable")


def check_outbox(view: OpsView) -> Check:
    limit = view.settings().max_outbox_backlog
    over = [f"{s.sink} has {s.backlog} undelivered (limit {limit})" for s in view.store.outbox_status()
            if s.backlog > limit]
    return Check("outbox", not over, "; ".join(over) or f"every sink under {limit}")


CHECKS = (check_sources, check_lanes, check_models, check_store, check_outbox)


def readiness(view: OpsView) -> list[Check]:
    return [check(view) for check in CHECKS]


def health_router(view: OpsView) -> APIRouter:
    router = APIRouter()

    @router.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz")
    def readyz() -> JSONResponse:
        checks = readiness(view)
        failing = [c.as_dict() for c in checks if not c.ok]
        body = {"ready": not failing, "checks": [c.as_dict() for c in checks]}
        if failing:
            body["failing"] = failing
        return JSONResponse(body, status_code=200 if not failing else 503, headers={"Cache-Control": "no-store"})

    return router
