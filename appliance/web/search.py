"""``/search``: crossings by plate, container, seal or declaration (exact or substring, normalised
like the manifest's plate keys), lane, time range (in the gate's time zone, ``site.timezone``) and verdict."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse

from appliance.store import search as store_search
from appliance.store.db import Store
from appliance.web import localtime
from appliance.web.auth import require_role
from appliance.web.i18n import translator
from appliance.web.review import PAGE_SIZE, row_view

Render = Callable[..., HTMLResponse]


def parse_local_time(text: str) -> float | None:
    """A ``datetime-local`` value (``2026-11-19T08:30``, the gate's zone) as a timestamp; None when empty;
    ValueError when bad."""
    return localtime.parse_local(text)


def search_router(store: Store, render: Render) -> APIRouter:
    router = APIRouter()

    @router.get("/search", response_class=HTMLResponse, dependencies=[Depends(require_role("inspector"))])
    def search_page(
        request: Request, q: str = Query("", max_length=64), field: str = "any", match: str = "substring",
        lane: str = Query("", max_length=64), verdict: str = "",
        time_from: str = Query("", alias="from", max_length=32), time_to: str = Query("", alias="to", max_length=32),
        page: int = Query(1, ge=1, le=1_000_000), lang: str = "vi",
    ) -> HTMLResponse:
        form = {"q": q, "field": field if field in store_search.KINDS else "any",
                "match": "exact" if match == "exact" else "substring", "lane": lane,
                "verdict": verdict if verdict in store_search.VERDICTS else "", "from": time_from, "to": time_to}
        try:
            since, until = parse_local_time(time_from), parse_local_time(time_to)
        except ValueError:
            return render(request, "search.html", lang, status_code=400, form=form, rows=[], page=1, has_next=False,
                          searched=False, error="err_bad_time", lanes=store_search.lanes(store))
        query = store_search.SearchQuery(q, form["field"], form["match"] == "exact", lane or None,
                                         form["verdict"] or None, since, until)
        rows, has_next = ([], False) if query.empty else store_search.search(
            store, query, (page - 1) * PAGE_SIZE, PAGE_SIZE)
        t = translator(lang)
        query_string = urlencode({k: v for k, v in form.items() if v} | {"lang": lang})
        return render(request, "search.html", lang, form=form, rows=[row_view(r, t) for r in rows], page=page,
                      has_next=has_next, searched=not query.empty, lanes=store_search.lanes(store),
                      query_string=query_string)

    return router
