"""The inspectors' pages: the review queue (``/``), a crossing's review page and its decisions.

``/``: undecided REVIEW/HOLD crossings first, newest first, then the others; paginated;
static/queue.js polls ``/api/queue`` and redraws the page when something changed.
``/crossings/{id}``: evidence crops with the reads' boxes, reads against the manifest, decision
forms (approve, hold, correct a read; a reason is always required) and the decision history;
static/review.js adds the keyboard shortcuts and the zoom. ``POST /crossings/{id}/decisions``
stores a decision (appliance/store/decisions.py). ``/api/labels``: corrections for retraining.
All data is shown through Jinja2 autoescaping and, in scripts, ``textContent`` only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from appliance.publish.decision_events import DecisionEventBuilder
from appliance.store import decisions, review_queue, xray_results
from appliance.store.db import Store
from appliance.store.review_queue import QueueRow
from appliance.verdicts.manifest import ManifestIndex
from appliance.web import localtime, review_view, xray
from appliance.web.auth import InspectorUser, ModelEngineerUser, require_role
from appliance.web.i18n import LANGUAGES, translator
from appliance.xray import verdict_revision

Render = Callable[..., HTMLResponse]
PAGE_SIZE = 50
_VERDICTS = ("CLEAR", "REVIEW", "HOLD")
_DONE = ("approve", "hold", "correct")


def row_view(r: QueueRow, t: dict[str, str]) -> dict[str, Any]:
    """A crossing as the lists (queue, search, /api/queue) show it."""
    s = r.summary
    plate = (s.get("tractor_plate") or s.get("fleet_id") or s.get("trailer_plate") or {}).get("value")
    state = t["state_pending"] if r.pending else (t[f"reviewed_{r.review_action}"] if r.review_action else "")
    return {
        "id": r.id,
        "lane_id": r.lane_id,
        "when": review_view.when(r.ended_at),
        "decision": r.decision,
        "decision_label": t[r.decision],
        "pending": r.pending,
        "review_action": r.review_action,
        "state": state,
        "plate": plate,
        "containers": ", ".join(c["value"] for c in s.get("containers", [])),
        "declaration": r.declaration or ", ".join(s.get("declarations", [])),
        "xray_reasons": review_view.xray_reason_labels(r.reasons, t),  # an X-ray alarm revised the verdict
    }


def review_router(store: Store, render: Render, events: DecisionEventBuilder,
                  manifest: ManifestIndex | None = None) -> APIRouter:
    router = APIRouter()
    inspector = [Depends(require_role("inspector"))]

    def check_verdict(decision: str | None) -> str | None:
        if decision is not None and decision not in _VERDICTS:
            raise HTTPException(422, f"decision must be one of {list(_VERDICTS)}, got {decision!r}")
        return decision or None

    def queue_page(decision: str | None, page: int) -> tuple[list[QueueRow], bool]:
        offset = (page - 1) * PAGE_SIZE
        if decision:
            return review_queue.by_decision(store, decision, offset, PAGE_SIZE)
        return review_queue.page(store, offset, PAGE_SIZE)

    @router.get("/", response_class=HTMLResponse, dependencies=inspector)
    def queue(request: Request, decision: str | None = None, page: int = Query(1, ge=1, le=1_000_000),
              lang: str = "vi") -> HTMLResponse:
        t = translator(lang)
        rows, has_next = queue_page(check_verdict(decision), page)
        return render(request, "crossings.html", lang, rows=[row_view(r, t) for r in rows], counts=store.counts(),
                      pending=review_queue.pending_count(store), page=page, has_next=has_next,
                      decision=decision or "", stamp=review_queue.stamp(store))

    @router.get("/api/queue", dependencies=inspector)
    def api_queue(decision: str | None = None, page: int = Query(1, ge=1, le=1_000_000), lang: str = "vi",
                  since: str | None = None) -> dict[str, Any]:
        """The queue page's rows for queue.js; only ``{"changed": false}`` when ``since`` is still current."""
        now = review_queue.stamp(store)
        if since == now:
            return {"changed": False, "stamp": now}
        t = translator(lang)
        rows, has_next = queue_page(check_verdict(decision), page)
        return {"changed": True, "stamp": now, "pending": review_queue.pending_count(store), "counts": store.counts(),
                "page": page, "has_next": has_next, "rows": [row_view(r, t) for r in rows]}

    def crossing_page(request: Request, crossing_id: str, lang: str, status_code: int = 200,
                      **extra: Any) -> HTMLResponse:
        c = store.get_crossing(crossing_id)
        q = review_queue.get(store, crossing_id)
        if c is None or q is None:
            raise HTTPException(404, f"no crossing {crossing_id!r}")
        history = decisions.history(store, crossing_id)
        review = review_view.build(store, q, c.reasons, history, manifest)
        prev_id, next_id = review_queue.neighbours(store, q)
        return render(request, "crossing.html", lang, status_code=status_code, c=c, q=q, review=review,
                      history=history, when=review_view.when, prev_id=prev_id, next_id=next_id,
                      xray=xray.scan_views(store, xray_results.for_crossing(store, crossing_id), lang),
                      reason_labels=review_view.REASON_LABELS, revisions=verdict_revision.revisions(store, crossing_id),
                      started=review_view.when(c.started_at), ended=review_view.when(c.ended_at), **extra)

    @router.get("/crossings/{crossing_id}", response_class=HTMLResponse, dependencies=inspector)
    def crossing(request: Request, crossing_id: str, lang: str = "vi", done: str | None = None) -> HTMLResponse:
        return crossing_page(request, crossing_id, lang, done=done if done in _DONE else None)

    @router.post("/crossings/{crossing_id}/decisions", response_model=None)
    def decide(
        request: Request, crossing_id: str, user: InspectorUser, action: str = Form(""), reason: str = Form(""),
        target: str = Form(""), value: str = Form(""), evidence_sha256: str = Form(""), lang: str = Form("vi"),
    ) -> Response:
        lang = lang if lang in LANGUAGES else "vi"
        localtime.use(lang=lang)  # the form's language (not in the query string)
        q = review_queue.get(store, crossing_id)
        if q is None:
            raise HTTPException(404, f"no crossing {crossing_id!r}")
        field = old_value = evidence = None
        if action == "correct":
            fixes = decisions.corrections(decisions.history(store, crossing_id))
            chosen = {tg.value: tg for tg in review_view.targets(q, fixes)}.get(target)
            if chosen is not None:
                field, old_value, evidence = chosen.field, chosen.old_value, chosen.evidence
        request_ = decisions.DecisionRequest(action, reason, field, old_value, value if action == "correct" else None,
                                             evidence_sha256 or evidence)
        try:
            decisions.record(store, crossing_id, user.username, user.role, request_, events)
        except decisions.DecisionError as exc:
            form = {"action": action, "reason": reason[:decisions.MAX_REASON], "target": target,
                    "value": value[:64], "evidence_sha256": evidence_sha256}
            return crossing_page(request, crossing_id, lang, status_code=400, error=f"err_{exc.code}", form=form)
        return RedirectResponse(f"/crossings/{quote(crossing_id, safe='')}?lang={lang}&done={action}#history",
                                status_code=303)

    @router.get("/api/labels")
    def api_labels(_: ModelEngineerUser, after_id: int = Query(0, ge=0),
                   limit: int = Query(500, ge=1, le=5000)) -> list[dict[str, Any]]:
        """Corrections as labels for retraining (model engineers): the value typed, the read it replaces, the crop."""
        return decisions.labels(store, after_id, limit)

    return router
