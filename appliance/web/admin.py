"""``/admin/users``: list users, create one, disable one, reset a password (admins only)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from appliance.store.users import ROLES, AccountError, Accounts
from appliance.web import localtime
from appliance.web.auth import AdminUser, require_role
from appliance.web.i18n import LANGUAGES

Render = Callable[..., HTMLResponse]
_DONE = ("created", "disabled", "password")


def admin_router(accounts: Accounts, render: Render) -> APIRouter:
    router = APIRouter(prefix="/admin", dependencies=[Depends(require_role("admin"))])

    def page(request: Request, lang: str, status_code: int = 200, **extra: Any) -> HTMLResponse:
        users = [u.__dict__ | {"created": localtime.when(u.created_at, lang)} for u in accounts.list_users()]
        return render(request, "admin_users.html", lang, status_code=status_code, users=users, roles=ROLES, **extra)

    def done(what: str, lang: str) -> RedirectResponse:
        return RedirectResponse(f"/admin/users?done={what}&lang={lang if lang in LANGUAGES else 'vi'}", status_code=303)

    @router.get("/users", response_class=HTMLResponse)
    def users_page(request: Request, lang: str = "vi", done: str | None = None) -> HTMLResponse:
        return page(request, lang, done=done if done in _DONE else None)

    @router.post("/users", response_model=None)
    def create_user(
        request: Request, user: AdminUser, username: str = Form(...), role: str = Form(...),
        password: str = Form(...), lang: str = Form("vi"),
    ) -> Response:
        try:
            accounts.create_user(username, password, role, actor=user.username)
        except AccountError as exc:
            return page(request, lang, status_code=400, error=exc.code, form_username=username[:64])
        return done("created", lang)

    @router.post("/users/{username}/disable", response_model=None)
    def disable_user(request: Request, user: AdminUser, username: str, lang: str = Form("vi")) -> Response:
        if username == user.username:
            return page(request, lang, status_code=400, error="cannot_disable_self")
        try:
            accounts.set_disabled(username, True, actor=user.username)
        except AccountError as exc:
            return page(request, lang, status_code=404, error=exc.code)
        return done("disabled", lang)

    @router.post("/users/{username}/password", response_model=None)
    def reset_password(
        request: Request, user: AdminUser, username: str, password: str = Form(...), lang: str = Form("vi"),
    ) -> Response:
        try:
            accounts.set_password(username, password, actor=user.username)
        except AccountError as exc:
            return page(request, lang, status_code=404 if exc.code == "no_such_user" else 400, error=exc.code)
        return done("password", lang)

    return router
