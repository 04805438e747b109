"""The lane status page and its data, for any logged-in user (the login wall is in auth.py).

``/status``: per lane, each source's state, measured frame rate, frames read and dropped, last
frame and thumbnail; the models loaded and the execution provider each runs on; the outbox per
sink; inbound dead letters. static/status.js refreshes it from ``/api/status/view`` (display
strings in the page's language). ``/api/status``: the raw figures (``services.status`` plus the
store's counts and outbox). ``/status/thumb/<lane>/<source>.jpg``: the source's latest frame, small.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, Response

from appliance.lanes.thumbnails import Thumbnails
from appliance.store.db import Store
from appliance.web import localtime, status_view
from appliance.web.i18n import translator

Render = Callable[..., HTMLResponse]


def status_router(store: Store, gate: str, status: dict[str, Any], thumbnails: Thumbnails | None,
                  render: Render) -> APIRouter:
    router = APIRouter()

    def view(lang: str) -> dict[str, Any]:
        return status_view.build(status, store.outbox_status(), translator(lang), thumbnails)

    @router.get("/status", response_class=HTMLResponse)
    def status_page(request: Request, lang: str = "vi") -> HTMLResponse:
        return render(request, "status.html", lang, view=view(lang), columns=status_view.COLUMNS)

    @router.get("/api/status/view")
    def api_status_view(lang: str = "vi") -> dict[str, Any]:
        return view(lang)

    @router.get("/api/status")
    def api_status() -> dict[str, Any]:
        outbox = [dataclasses.asdict(s) for s in store.outbox_status()]
        return {"gate": gate, "timezone": localtime.zone().key, "counts": store.counts(), "outbox": outbox,
                **status}

    @router.get("/status/thumb/{lane_id}/{source_id}.jpg")
    def thumbnail(lane_id: str, source_id: str) -> Response:
        thumb = thumbnails.get(lane_id, source_id) if thumbnails is not None else None
        if thumb is None:
            raise HTTPException(404, "no frame from this source yet")
        return Response(thumb.jpeg, media_type="image/jpeg")

    return router
