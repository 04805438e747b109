"""The local web UI and status API: ``create_app(services)``.

Inspectors see the crossings (HOLD and REVIEW first to hand), each with its reads, the
evidence crops and the verdict's reasons; everyone logged in sees the lane status page
(appliance/web/status.py). Text is Vietnamese by default (``?lang=en|zh``, gettext catalogues:
appliance/web/i18n.py); dates and times are in the gate's time zone (appliance/web/localtime.py).
Everything but ``/login`` and ``/static/`` needs a logged-in user (see appliance/web/auth.py for
the login wall, CSRF and ``require_role``); ``/admin/users`` is for admins, ``/models`` (the model
registry: activate, roll back, shadow; appliance/web/models_page.py) for model engineers and admins.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException

from appliance.lanes.thumbnails import Thumbnails
from appliance.publish.decision_events import DecisionEventBuilder
from appliance.store.db import Store
from appliance.store.users import Accounts
from appliance.verdicts.manifest import ManifestIndex
from appliance.web import localtime
from appliance.web.admin import admin_router
from appliance.web.auth import AuthMiddleware, AuthSettings, csrf_field, require_role, wants_json
from appliance.web.health import OpsView, health_router
from appliance.web.i18n import LANGUAGES, translations, translator
from appliance.web.login import login_router
from appliance.web.metrics import metrics_router
from appliance.web.models_page import models_router
from appliance.web.passages import passages_router
from appliance.web.review import review_router
from appliance.web.scanner_upload import ScannerUpload
from appliance.web.scanner_upload import router as scanner_upload_router
from appliance.web.search import search_router
from appliance.web.security import SecurityHeaders, visible_controls
from appliance.web.status import status_router
from appliance.web.xray import xray_router

if TYPE_CHECKING:
    from appliance.inference.registry import ModelRegistry

HERE = Path(__file__).parent
_SHA = re.compile(r"^[0-9a-f]{64}$")
_DECISIONS = {"CLEAR", "REVIEW", "HOLD"}


@dataclass
class WebServices:
    """What the web app needs from the running appliance."""

    store: Store
    gate: str
    status: dict[str, Any] = field(default_factory=dict)
    auth: AuthSettings = field(default_factory=AuthSettings)
    # The manifest's expected values beside the reads on the review page (None: from the verdict's reasons).
    manifest: ManifestIndex | None = None
    # Inspector decision events (None: signed like the store's verdict events, see DecisionEventBuilder.like).
    decision_events: DecisionEventBuilder | None = None
    # The latest frame of each source, for the status page (None: no thumbnails).
    thumbnails: Thumbnails | None = None
    timezone: str = localtime.DEFAULT_TIMEZONE  # IANA zone every date and time is shown in (site.timezone)
    # The model registry, for the model engineers' page /models (None: the page says it is not available here).
    models: ModelRegistry | None = None
    # The faces store's crop reader (TemplateStore.get_crop) for /passages/{id}/face (None: no passenger lane here).
    face_crops: Callable[[str], bytes] | None = None
    # Scanners posting X-ray scans (POST /api/scanner/xray; None: not enabled, xray.upload_token_file).
    scanner_upload: ScannerUpload | None = None
    # What /readyz and /metrics read (None: the store and the status dict only); /metrics' bearer token (None: open).
    ops: OpsView | None = None
    metrics_token: str | None = None


def create_app(services: WebServices) -> FastAPI:
    app = FastAPI(title="Gate appliance", docs_url="/api/docs", openapi_url="/api/openapi.json")
    templates = app.state.templates = Jinja2Templates(directory=str(HERE / "templates"))
    # {% trans %} and _(): context() passes the gettext of the request's language (null translations otherwise).
    templates.env.add_extension("jinja2.ext.i18n")
    templates.env.install_null_translations()  # type: ignore[attr-defined]
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    templates.env.globals["csrf_field"] = csrf_field
    templates.env.globals.update(when=localtime.when, clock=localtime.clock)
    templates.env.finalize = visible_controls  # control and bidi characters in data show as visible stand-ins
    store = services.store
    accounts = app.state.accounts = Accounts(store, services.auth.policy)
    inspector = [Depends(require_role("inspector"))]  # crossings and evidence: inspectors, supervisors, admins

    def context(request: Request, lang: str) -> dict[str, Any]:
        lang = lang if lang in LANGUAGES else "vi"
        localtime.use(lang=lang)
        gettext = translations(lang)
        return {"request": request, "lang": lang, "t": translator(lang), "languages": LANGUAGES,
                "gettext": gettext.gettext, "ngettext": gettext.ngettext,
                "gate": services.gate, "user": getattr(request.state, "user", None)}

    def render(request: Request, name: str, lang: str, status_code: int = 200, **extra: Any) -> HTMLResponse:
        return templates.TemplateResponse(request, name, context(request, lang) | extra, status_code=status_code)

    async def forbidden(request: Request, reason: str) -> Response:
        if wants_json(request.url.path):
            return JSONResponse({"detail": reason}, status_code=403)
        return render(request, "forbidden.html", request.query_params.get("lang", "vi"), status_code=403)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 403:
            return await forbidden(request, str(exc.detail))
        return await http_exception_handler(request, exc)

    app.add_middleware(localtime.LocalTime, zone=services.timezone)
    app.add_middleware(AuthMiddleware, accounts=accounts, forbidden=forbidden)
    app.add_middleware(SecurityHeaders)  # outermost: the login wall's redirects and 403s get the headers too
    app.include_router(login_router(accounts, services.auth, render))
    ops = services.ops or OpsView(store, services.status)
    app.include_router(health_router(ops))  # /healthz, /readyz: outside the login wall (auth.MACHINE_PATHS)
    app.include_router(metrics_router(ops, services.metrics_token))  # /metrics: Prometheus
    app.include_router(admin_router(accounts, render))
    events = services.decision_events or DecisionEventBuilder.like(store.event_builder, services.gate)
    app.include_router(review_router(store, render, events, services.manifest))  # /, /crossings/{id}, decisions
    app.include_router(search_router(store, render))
    app.include_router(status_router(store, services.gate, services.status, services.thumbnails, render))
    app.include_router(models_router(services.models, render))  # /models: model engineers and admins
    app.include_router(passages_router(store, render, services.face_crops))  # /passages; face crops: supervisors
    app.include_router(scanner_upload_router(services.scanner_upload))  # POST /api/scanner/xray: bearer token
    app.include_router(xray_router(store, render))  # /xray: scans, their evidence images and TDRs (inspectors)

    def check_decision(decision: str | None) -> str | None:
        if decision is not None and decision not in _DECISIONS:
            raise HTTPException(422, f"decision must be one of {sorted(_DECISIONS)}, got {decision!r}")
        return decision

    @app.get("/evidence/{sha256}", dependencies=inspector)
    def evidence(sha256: str) -> FileResponse:
        if not _SHA.match(sha256):
            raise HTTPException(422, "evidence id must be a lowercase sha256 hex digest")
        path = store.evidence_path(sha256)
        if path is None or not path.is_file():
            raise HTTPException(404, "no such evidence")
        return FileResponse(path)

    @app.get("/api/crossings", dependencies=inspector)
    def api_crossings(
        decision: str | None = None, limit: int = Query(50, ge=1, le=500), offset: int = Query(0, ge=0)
    ) -> list[dict[str, Any]]:
        rows = store.list_crossings(check_decision(decision), limit=limit, offset=offset)
        return [r.__dict__ for r in rows]

    @app.get("/api/crossings/{crossing_id}", dependencies=inspector)
    def api_crossing(crossing_id: str) -> dict[str, Any]:
        row = store.get_crossing(crossing_id)
        if row is None:
            raise HTTPException(404, f"no crossing {crossing_id!r}")
        return row.__dict__ | {"observations": store.observations(crossing_id)}

    return app
