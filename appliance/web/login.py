"""``/login`` (form and check) and ``/logout``; ``/api/me`` for scripts (who am I, my CSRF token)."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from appliance.store.users import Accounts, LoginRefused
from appliance.web.auth import (
    LOGIN_COOKIE,
    AuthSettings,
    CurrentUser,
    clear_session_cookie,
    safe_next,
    set_session_cookie,
)
from appliance.web.i18n import LANGUAGES

Render = Callable[..., HTMLResponse]


def login_router(accounts: Accounts, settings: AuthSettings, render: Render) -> APIRouter:
    router = APIRouter()

    def form(request: Request, lang: str, next_url: str, status_code: int = 200, **extra: Any) -> HTMLResponse:
        token = request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(32)
        request.state.login_csrf = token
        response = render(request, "login.html", lang, status_code=status_code, next=next_url, **extra)
        response.set_cookie(LOGIN_COOKIE, token, httponly=True, samesite="strict", path="/login",
                            secure=settings.secure(request))
        return response

    @router.get("/login", response_model=None)
    def login_page(request: Request, next: str = "/", lang: str = "vi") -> Response:
        if request.state.user is not None:
            return RedirectResponse(safe_next(next), status_code=303)
        return form(request, lang, safe_next(next))

    @router.post("/login", response_model=None)
    def login_submit(
        request: Request, username: str = Form(""), password: str = Form(""), next: str = Form("/"),
        lang: str = Form("vi"),
    ) -> Response:
        ip = request.client.host if request.client else "unknown"
        try:
            token, _ = accounts.login(username, password, ip)
        except LoginRefused as exc:
            error, status = ("login_locked", 429) if exc.locked else ("login_failed", 401)
            return form(request, lang, safe_next(next), status_code=status, error=error, username=username[:64])
        if request.state.session is not None:  # a new login replaces the old session
            accounts.logout(request.state.session)
        response = RedirectResponse(safe_next(next), status_code=303)
        set_session_cookie(response, request, token, settings)
        response.delete_cookie(LOGIN_COOKIE, path="/login")
        return response

    @router.post("/logout")
    def logout(request: Request, lang: str = Form("vi")) -> RedirectResponse:
        accounts.logout(request.state.session)
        response = RedirectResponse(f"/login?lang={lang if lang in LANGUAGES else 'vi'}", status_code=303)
        clear_session_cookie(response, request, settings)
        return response

    @router.get("/api/me")
    def me(request: Request, user: CurrentUser) -> dict[str, str]:
        return {"username": user.username, "role": user.role, "csrf_token": request.state.session.csrf_token}

    return router
