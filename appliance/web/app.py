"""The local web UI and status API: ``create_app(services)``.

Inspectors see the crossings (HOLD and REVIEW first to hand), each with its reads, the
evidence crops and the verdict's reasons. Text is Vietnamese by default (``?lang=en|zh``).
Everything but ``/login`` and ``/static/`` needs a logged-in user (see appliance/web/auth.py for
the login wall, CSRF and ``require_role``); ``/admin/users`` is for admins.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException

from appliance.store.db import CrossingRow, Store
from appliance.store.users import Accounts
from appliance.web.admin import admin_router
from appliance.web.auth import AuthMiddleware, AuthSettings, csrf_field, require_role, wants_json
from appliance.web.i18n import LANGUAGES, translator
from appliance.web.login import login_router

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


def _when(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def _row_view(row: CrossingRow) -> dict[str, Any]:
    s = row.summary
    plate = (s.get("tractor_plate") or s.get("fleet_id") or s.get("trailer_plate") or {}).get("value")
    return {
        "id": row.id,
        "lane_id": row.lane_id,
        "when": _when(row.ended_at),
        "decision": row.decision,
        "plate": plate,
        "containers": ", ".join(c["value"] for c in s.get("containers", [])),
        "declaration": row.declaration or ", ".join(s.get("declarations", [])),
    }


def create_app(services: WebServices) -> FastAPI:
    app = FastAPI(title="Gate appliance", docs_url="/api/docs", openapi_url="/api/openapi.json")
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    templates.env.globals["csrf_field"] = csrf_field
    store = services.store
    accounts = app.state.accounts = Accounts(store, services.auth.policy)
    inspector = [Depends(require_role("inspector"))]  # crossings and evidence: inspectors, supervisors, admins

    def context(request: Request, lang: str) -> dict[str, Any]:
        lang = lang if lang in LANGUAGES else "vi"
        return {"request": request, "lang": lang, "t": translator(lang), "languages": LANGUAGES,
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

    app.add_middleware(AuthMiddleware, accounts=accounts, forbidden=forbidden)
    app.include_router(login_router(accounts, services.auth, render))
    app.include_router(admin_router(accounts, render))

    def check_decision(decision: str | None) -> str | None:
        if decision is not None and decision not in _DECISIONS:
            raise HTTPException(422, f"decision must be one of {sorted(_DECISIONS)}, got {decision!r}")
        return decision

    @app.get("/", response_class=HTMLResponse, dependencies=inspector)
    def index(request: Request, decision: str | None = None, lang: str = "vi") -> HTMLResponse:
        rows = store.list_crossings(check_decision(decision), limit=200)
        ctx = context(request, lang) | {"rows": [_row_view(r) for r in rows], "counts": store.counts()}
        return templates.TemplateResponse(request, "crossings.html", ctx)

    @app.get("/crossings/{crossing_id}", response_class=HTMLResponse, dependencies=inspector)
    def crossing_page(request: Request, crossing_id: str, lang: str = "vi") -> HTMLResponse:
        row = store.get_crossing(crossing_id)
        if row is None:
            raise HTTPException(404, f"no crossing {crossing_id!r}")
        return templates.TemplateResponse(request, "crossing.html", context(request, lang) | {"c": row})

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

    @app.get("/api/status")
    def api_status() -> dict[str, Any]:
        outbox = [dataclasses.asdict(s) for s in store.outbox_status()]
        return {"gate": services.gate, "counts": store.counts(), "outbox": outbox, **services.status}

    return app
