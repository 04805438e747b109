"""The passenger lane's passages: ``/passages`` (the list) and ``/passages/{id}`` (one passage), for
inspectors, supervisors and admins; ``/passages/{id}/face`` (the face crop) for supervisors and admins.

The list shows the newest passages first, filtered by decision (OPEN, DENY, MANUAL), with each
reason code in words. A passage's page shows its reasons and the facts behind the verdict, none of
them biometric (outcomes, counts, distances, model versions): no descriptor, no image inline.

The face crop stays encrypted in the faces store (appliance/faces/templates.py) until a supervisor
asks for it: the detail page only shows a "show face" button (a GET of the page with ``face=1``),
and the image is fetched from ``/passages/{id}/face`` when that page draws it, never before. That
route decrypts the crop, writes ``face_crop.view`` (actor: the user, target: the passage id) to the
hash-chained audit log and only then answers the JPEG (``Cache-Control: no-store``); when the audit
entry cannot be written, no image leaves. Anyone else who asks gets 403 and a ``face_crop.refused``
entry; a crop purged or expired by retention answers 410, one that does not open (altered, another
key) 404, each with the passage's page and a message, and a ``face_crop.unavailable`` entry.
Logs name passages and users only: never crop bytes, never person data.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response

from appliance.faces.templates import FaceDataError
from appliance.store.db import Store
from appliance.store.passages import DECISIONS, PassageRow, get_passage, page_passages, passage_counts
from appliance.web import localtime
from appliance.web.auth import CurrentUser, User, require_role
from appliance.web.i18n import LANGUAGES, N_, translator

log = logging.getLogger(__name__)

Render = Callable[..., HTMLResponse]
FaceCrops = Callable[[str], bytes]  # TemplateStore.get_crop: sha256 -> JPEG bytes, FaceDataError when gone
PAGE_SIZE = 50
MAX_TARGET = 200  # characters of a requested passage id kept in the audit log

# Audit log actions (appliance/store/audit.py) of the face route.
AUDIT_VIEW = "face_crop.view"
AUDIT_REFUSED = "face_crop.refused"
AUDIT_UNAVAILABLE = "face_crop.unavailable"

DECISION_KEYS = {"OPEN": N_("passage_OPEN"), "DENY": N_("passage_DENY"), "MANUAL": N_("passage_MANUAL")}
BADGES = {"OPEN": "CLEAR", "DENY": "HOLD", "MANUAL": "REVIEW"}  # the colours of app.css's badges
# Reason codes of appliance/verdicts/passage.py -> UI text keys (an unknown code shows as itself).
REASON_KEYS = {
    "document_unreadable": N_("reason_document_unreadable"),
    "document_invalid": N_("reason_document_invalid"),
    "person_listed": N_("reason_person_listed"),
    "face_listed": N_("reason_face_listed"),
    "several_faces": N_("reason_several_faces"),
    "no_face": N_("reason_no_face"),
    "face_quality": N_("reason_face_quality"),
    "presentation_attack": N_("reason_presentation_attack"),
    "liveness_undetermined": N_("reason_liveness_undetermined"),
    "reference_missing": N_("reason_reference_missing"),
    "reference_unusable": N_("reason_reference_unusable"),
    "no_match_score": N_("reason_no_match_score"),
    "face_mismatch": N_("reason_face_mismatch"),
    "all_checks_passed": N_("reason_all_checks_passed"),
    "processing_error": N_("reason_processing_error"),
}
REFERENCE_KEYS = {"ok": N_("reference_ok"), "missing": N_("reference_missing"),
                  "unusable": N_("reference_unusable")}
# Why the face crop cannot be shown (the page's message).
FACE_NONE = N_("face_none")  # the passage has no crop
FACE_NO_STORE = N_("face_no_store")  # this box has no faces store
FACE_GONE = N_("face_gone")  # purged or expired (retention)
FACE_UNREADABLE = N_("face_unreadable")  # altered, or sealed with another key


def decision_label(decision: str, t: dict[str, str]) -> str:
    key = DECISION_KEYS.get(decision)
    return t[key] if key else decision


def reason_label(code: str, t: dict[str, str]) -> str:
    key = REASON_KEYS.get(code)
    return t[key] if key else code


def row_view(p: PassageRow, t: dict[str, str]) -> dict[str, Any]:
    """A passage as the list shows it."""
    return {
        "id": p.id,
        "lane_id": p.lane_id,
        "when": localtime.when(p.started_at),
        "decision": p.decision,
        "decision_label": decision_label(p.decision, t),
        "badge": BADGES.get(p.decision, ""),
        "reasons": [reason_label(str(r.get("code", "")), t) for r in p.reasons],
    }


def _yes_no(value: Any, t: dict[str, str]) -> str:
    if value is None:
        return "-"
    return t["yes"] if value else t["no"]


def _codes(values: Any, t: dict[str, str]) -> str:
    if not values:
        return t["none"]
    return ", ".join(str(v) for v in values) if isinstance(values, list | tuple) else str(values)


def _distance(value: Any) -> str:
    try:
        return "-" if value is None else f"{float(value):.3f}"
    except (TypeError, ValueError):
        return "-"


def _count(value: Any) -> str:
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else "-"


def facts_view(p: PassageRow, t: dict[str, str]) -> list[dict[str, str]]:
    """The verdict's facts as (key, label, value, detail) rows: outcomes and scores, nothing biometric."""
    f = p.facts
    read = f.get("document_read")
    problem = f.get("document_problem")
    live = f.get("live")
    reference = str(f.get("reference", "missing"))
    rows = [
        ("document_read", t["fact_document_read"], _yes_no(read, t), ""),
        ("document_valid", t["fact_document_valid"], _yes_no(not problem, t) if read else "-",
         str(problem) if read and problem else ""),
        ("document_listed", t["fact_document_listed"], _yes_no(bool(f.get("document_listed")), t), ""),
        ("reference", t["fact_reference"], t[REFERENCE_KEYS[reference]] if reference in REFERENCE_KEYS else reference,
         str(f.get("reference_detail") or "")),
        ("frames_with_face", t["fact_frames_with_face"], _count(f.get("frames_with_face")), ""),
        ("most_faces", t["fact_most_faces"], _count(f.get("most_faces")), ""),
        ("quality_reasons", t["fact_quality_reasons"], _codes(f.get("quality_reasons"), t), ""),
        ("live", t["fact_live"], t["live_unknown"] if live is None else (t["live_yes"] if live else t["live_no"]), ""),
        ("liveness_reasons", t["fact_liveness_reasons"], _codes(f.get("liveness_reasons"), t), ""),
        ("match_distance", t["fact_match_distance"], _distance(f.get("match_distance")), ""),
        ("watchlist_distance", t["fact_watchlist_distance"], _distance(f.get("watchlist_distance")), ""),
        ("models", t["passage_models"], ", ".join(str(m) for m in p.models) or "-", ""),
    ]
    return [{"key": k, "label": label, "value": value, "detail": detail} for k, label, value, detail in rows]


def passages_router(store: Store, render: Render, face_crops: FaceCrops | None = None) -> APIRouter:
    router = APIRouter()
    inspector = [Depends(require_role("inspector"))]

    def check_decision(decision: str | None) -> str | None:
        if decision and decision not in DECISIONS:
            raise HTTPException(422, f"decision must be one of {list(DECISIONS)}, got {decision[:50]!r}")
        return decision or None

    @router.get("/passages", response_class=HTMLResponse, dependencies=inspector)
    def passages(request: Request, decision: str | None = None, page: int = Query(1, ge=1, le=1_000_000),
                 lang: str = "vi") -> HTMLResponse:
        t = translator(lang)
        chosen = check_decision(decision)
        rows, has_next = page_passages(store, chosen, (page - 1) * PAGE_SIZE, PAGE_SIZE)
        filters = [{"decision": d, "label": decision_label(d, t), "badge": BADGES[d]} for d in DECISIONS]
        return render(request, "passages.html", lang, rows=[row_view(r, t) for r in rows],
                      counts=passage_counts(store), filters=filters, decision=chosen or "", page=page,
                      has_next=has_next, timezone=localtime.zone().key)

    def passage_page(request: Request, user: User, p: PassageRow, lang: str, status_code: int = 200,
                     show_face: bool = False, face_error: str | None = None) -> HTMLResponse:
        t = translator(lang)
        may_see_face = user.has_role("supervisor")
        if p.crop_sha256 is None:
            face_state = FACE_NONE
        elif face_crops is None:
            face_state = FACE_NO_STORE
        else:
            face_state = None  # a crop to show, on request
        reasons = [{"code": str(r.get("code", "")), "label": reason_label(str(r.get("code", "")), t),
                    "detail": str(r.get("detail", ""))} for r in p.reasons]
        return render(
            request, "passage.html", lang, status_code=status_code, p=p, reasons=reasons,
            facts=facts_view(p, t), decision_label=decision_label(p.decision, t), badge=BADGES.get(p.decision, ""),
            started=localtime.when(p.started_at), ended=localtime.when(p.ended_at), may_see_face=may_see_face,
            face_state=face_state, show_face=show_face and may_see_face and face_state is None and not face_error,
            face_error=face_error,
        )

    def found(passage_id: str) -> PassageRow:
        p = get_passage(store, passage_id)
        if p is None:
            raise HTTPException(404, f"no passage {passage_id[:MAX_TARGET]!r}")
        return p

    @router.get("/passages/{passage_id}", response_class=HTMLResponse, dependencies=inspector)
    def passage(request: Request, passage_id: str, user: CurrentUser, lang: str = "vi",
                face: bool = False) -> HTMLResponse:
        return passage_page(request, user, found(passage_id), lang, show_face=face)

    @router.get("/passages/{passage_id}/face", response_model=None)
    def face_crop(request: Request, passage_id: str, user: CurrentUser, lang: str = "vi") -> Response:
        lang = lang if lang in LANGUAGES else "vi"
        if not user.has_role("supervisor"):
            # Audited before the refusal leaves, whether or not the passage exists (a 403 tells nothing).
            store.append_audit(user.username, AUDIT_REFUSED, passage_id[:MAX_TARGET], {"role": user.role})
            log.info("face crop of passage %s refused to %s (role %s)", passage_id[:MAX_TARGET], user.username,
                     user.role)
            raise HTTPException(403, "forbidden: face images need role supervisor")
        p = found(passage_id)
        if p.crop_sha256 is None or face_crops is None:
            return passage_page(request, user, p, lang, status_code=404,
                                face_error=FACE_NONE if p.crop_sha256 is None else FACE_NO_STORE)
        try:
            jpeg = face_crops(p.crop_sha256)
        except (FaceDataError, ValueError) as exc:
            gone = isinstance(exc, FaceDataError) and ("not stored" in str(exc) or "expired" in str(exc))
            why = "purged_or_expired" if gone else "unreadable"
            store.append_audit(user.username, AUDIT_UNAVAILABLE, p.id, {"role": user.role, "why": why})
            log.warning("face crop of passage %s cannot be shown: %s", p.id, why)
            return passage_page(request, user, p, lang, status_code=410 if gone else 404,
                                face_error=FACE_GONE if gone else FACE_UNREADABLE)
        # The view is on the record before a byte of the face leaves (no entry: an error, no image).
        store.append_audit(user.username, AUDIT_VIEW, p.id, {"role": user.role, "crop_sha256": p.crop_sha256})
        return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "no-store"})

    return router
