"""``/models``: the model engineer's page (model engineers and admins, see ``require_role``).

Per task: the active model version (sha256, whether it is the config's choice or the registry's),
the previous one, the shadow candidate with its comparison stats, and the versions installed in the
model store (licence, eval_set and metrics from the manifest, signed or not), each with forms to
activate it (a forced activation, past the regression gate, needs a reason) or shadow it; a
rollback form when there is a previous version, a stop form while a shadow runs; then the recent
model history. The registry validates, gates and records every change (``model_history`` and the
audit log, with the logged-in user as the actor); a refusal (``ModelError``) re-renders the page
with status 400 and the registry's message. Without a registry (``WebServices.models`` is None)
the page says so and shows no forms.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from appliance.errors import ModelError
from appliance.inference.registry import HistoryEntry, ModelRegistry, ModelVersion, TaskState
from appliance.inference.store import ModelRef
from appliance.web import localtime
from appliance.web.auth import ModelEngineerUser, require_role
from appliance.web.i18n import LANGUAGES, N_

Render = Callable[..., HTMLResponse]
# History actions (appliance/inference/registry.py: ACTIONS) -> UI text keys.
ACTION_KEYS = {
    "activate": N_("model_action_activate"),
    "rollback": N_("model_action_rollback"),
    "shadow-start": N_("model_action_shadow_start"),
    "shadow-stop": N_("model_action_shadow_stop"),
    "refused": N_("model_action_refused"),
}
DONE_KEYS = {
    "activated": N_("done_model_activated"),
    "rolled_back": N_("done_model_rolled_back"),
    "shadow_started": N_("done_model_shadow_started"),
    "shadow_stopped": N_("done_model_shadow_stopped"),
}
ROLE_KEYS = {"active": N_("model_role_active"), "previous": N_("model_role_previous"),
             "shadow": N_("model_role_shadow")}
HISTORY_ROWS = 50
SHA_PREFIX = 12
MAX_REASON = 1000  # characters, as for inspectors' decisions
# What a model name or version from a form may be: a plain folder name, as validation requires of manifests.
_PLAIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,127}$")


@dataclass(frozen=True)
class VersionView:
    """One installed version of a task, as the page lists it."""

    name: str
    version: str
    label: str
    licence: str
    eval_set: str | None
    metrics: list[tuple[str, str]]
    signed: bool
    sha256: str
    role: str | None  # "active", "previous", "shadow" or None

    @property
    def role_key(self) -> str | None:
        return ROLE_KEYS.get(self.role) if self.role else None


@dataclass(frozen=True)
class TaskView:
    task: str
    active: str
    active_sha: str
    active_sha_full: str
    configured: bool
    generation: int
    previous: str | None
    shadow: str | None
    shadow_stats: dict[str, str] | None
    versions: list[VersionView] = field(default_factory=list)


def _number(value: Any, spec: str) -> str:
    try:
        return format(float(value), spec)
    except (TypeError, ValueError):
        return "-"


def _latency(stats: dict[str, Any], key: str) -> tuple[str, str]:
    value = stats.get(key)
    if not isinstance(value, dict):
        return "-", "-"
    return _number(value.get("p50"), "g"), _number(value.get("p95"), "g")


def shadow_view(state: TaskState, lang: str) -> dict[str, str] | None:
    """The shadow candidate's stats as display strings (None without a shadow)."""
    if state.shadow is None:
        return None
    stats = state.shadow_stats if isinstance(state.shadow_stats, dict) else {}
    active_p50, active_p95 = _latency(stats, "active_ms")
    cand_p50, cand_p95 = _latency(stats, "candidate_ms")
    return {
        "samples": str(stats.get("samples", 0)), "dropped": str(stats.get("dropped", 0)),
        "errors": str(stats.get("errors", 0)), "agreement": _number(stats.get("agreement"), ".4f"),
        "active_p50": active_p50, "active_p95": active_p95, "candidate_p50": cand_p50, "candidate_p95": cand_p95,
        "saved_at": localtime.when(state.shadow_stats_at, lang),
    }


def _role(ref: ModelRef, state: TaskState) -> str | None:
    def same(v: ModelVersion | None) -> bool:
        return v is not None and (v.name, v.version) == (ref.name, ref.version)

    if same(state.active):
        return "active"
    if same(state.shadow):
        return "shadow"
    return "previous" if same(state.previous) else None


def version_view(ref: ModelRef, state: TaskState) -> VersionView:
    m = ref.manifest
    metrics = [(key, _number(value, "g")) for key, value in sorted(m.metrics.items())]
    return VersionView(ref.name, ref.version, f"{ref.name}@{ref.version}", m.licence, m.eval_set, metrics,
                       (ref.folder / "signature.json").is_file(), m.sha256, _role(ref, state))


def task_views(registry: ModelRegistry, lang: str) -> tuple[list[TaskView], str | None]:
    """Every task's view, and the store's error when its manifests could not be listed."""
    states = registry.state()
    store_error = None
    try:
        refs = registry.models.list()
    except ModelError as exc:  # a broken manifest in the store: show the state, and say why no versions
        refs, store_error = [], str(exc)
    views = []
    for task, s in states.items():
        views.append(TaskView(
            task=task, active=s.active.label, active_sha=s.active.sha256[:SHA_PREFIX] or "-",
            active_sha_full=s.active.sha256, configured=s.configured, generation=s.generation,
            previous=s.previous.label if s.previous else None, shadow=s.shadow.label if s.shadow else None,
            shadow_stats=shadow_view(s, lang),
            versions=[version_view(ref, s) for ref in refs if ref.task == task],
        ))
    return views, store_error


def history_view(entries: list[HistoryEntry], lang: str) -> list[dict[str, Any]]:
    return [{"time": localtime.when(h.ts, lang), "task": h.task, "action": h.action,
             "action_key": ACTION_KEYS.get(h.action), "label": h.label, "actor": h.actor, "forced": h.forced,
             "reason": h.reason} for h in entries]


def check_plain(name: str, version: str) -> None:
    """ModelError unless ``name`` and ``version`` are plain folder names (no paths reach the store)."""
    for label, value in (("name", name), ("version", version)):
        if not _PLAIN.match(value) or ".." in value:
            raise ModelError(f"model {label} {value[:200]!r} must be a plain name (letters, digits, '.', '_', '-', "
                             "'+')")


def models_router(registry: ModelRegistry | None, render: Render) -> APIRouter:
    router = APIRouter(prefix="/models", dependencies=[Depends(require_role("model_engineer"))])

    def page(request: Request, lang: str, status_code: int = 200, **extra: Any) -> HTMLResponse:
        lang = lang if lang in LANGUAGES else "vi"
        if registry is None:
            return render(request, "models.html", lang, status_code=status_code, available=False, tasks=[],
                          history=[], **extra)
        tasks, store_error = task_views(registry, lang)
        history = history_view(registry.history(limit=HISTORY_ROWS), lang)
        return render(request, "models.html", lang, status_code=status_code, available=True, tasks=tasks,
                      history=history, store_error=store_error, timezone=localtime.zone().key, **extra)

    def done(what: str, lang: str) -> RedirectResponse:
        return RedirectResponse(f"/models?done={what}&lang={lang if lang in LANGUAGES else 'vi'}", status_code=303)

    def change(request: Request, lang: str, task: str, what: str, act: Callable[[ModelRegistry], object], *,
               model: tuple[str, str] | None = None, reason: str = "", form: dict[str, Any] | None = None
               ) -> Response:
        """Run one registry change: POST-redirect-GET on success; the page with the refusal otherwise."""
        if registry is None:
            return page(request, lang, status_code=404, error_key=N_("models_unavailable"))
        if task not in registry.tasks:
            return page(request, lang, status_code=404, error_key=N_("unknown_task"))
        if len(reason) > MAX_REASON:
            return page(request, lang, status_code=400, error_key=N_("err_reason_too_long"), form=form or {})
        try:
            if model is not None:
                check_plain(*model)
            act(registry)
        except ModelError as exc:
            return page(request, lang, status_code=400, error=str(exc), error_task=task, form=form or {})
        return done(what, lang)

    @router.get("", response_class=HTMLResponse)
    def models_page(request: Request, lang: str = "vi", done: str | None = None) -> HTMLResponse:
        return page(request, lang, done_key=DONE_KEYS.get(done or ""))

    @router.post("/{task}/activate", response_model=None)
    def activate(
        request: Request, user: ModelEngineerUser, task: str, name: str = Form(...), version: str = Form(...),
        reason: str = Form(""), force: bool = Form(False), lang: str = Form("vi"),
    ) -> Response:
        form = {"task": task, "name": name, "version": version, "reason": reason[:MAX_REASON], "force": force}
        if force and not reason.strip():
            return page(request, lang, status_code=400, error_key=N_("force_needs_reason"), error_task=task, form=form)
        return change(request, lang, task, "activated",
                      lambda r: r.activate(task, name, version, user.username, reason=reason, force=force),
                      model=(name, version), reason=reason, form=form)

    @router.post("/{task}/rollback", response_model=None)
    def rollback(request: Request, user: ModelEngineerUser, task: str, reason: str = Form(""),
                 lang: str = Form("vi")) -> Response:
        return change(request, lang, task, "rolled_back", lambda r: r.rollback(task, user.username, reason=reason),
                      reason=reason)

    @router.post("/{task}/shadow", response_model=None)
    def shadow(request: Request, user: ModelEngineerUser, task: str, name: str = Form(...),
               version: str = Form(...), lang: str = Form("vi")) -> Response:
        return change(request, lang, task, "shadow_started", lambda r: r.shadow(task, name, version, user.username),
                      model=(name, version))

    @router.post("/{task}/shadow/stop", response_model=None)
    def stop_shadow(request: Request, user: ModelEngineerUser, task: str, lang: str = Form("vi")) -> Response:
        return change(request, lang, task, "shadow_stopped", lambda r: r.shadow(task, None, None, user.username))

    return router
