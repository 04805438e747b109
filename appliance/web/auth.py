"""Who is asking: session cookies, the login wall, CSRF, and the role dependencies for routes.

Every request goes through ``AuthMiddleware``: it finds the session of the ``gate_session`` cookie
(``request.state.user``, ``request.state.session``), refuses anyone not logged in except on
``/login`` and ``/static/`` (pages redirect to ``/login?next=...``; ``/api/*``, ``/evidence/*`` and
``/status/thumb/*`` answer 401 JSON), and refuses any state-changing request that fails the CSRF
checks (403).

Routes then say who may use them::

    @app.post("/review/{id}", dependencies=[Depends(require_role("supervisor"))])
    def decide(..., user: User = Depends(require_role("inspector"))) -> ...

``require_role("inspector")`` lets inspectors, supervisors and admins in; ``"supervisor"``
supervisors and admins; ``"model_engineer"`` model engineers and admins; ``"admin"`` admins.
Forms put ``{{ csrf_field(request) }}`` inside; scripts send the token (``GET /api/me``) in the
``X-CSRF-Token`` header.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated
from urllib.parse import urlencode, urlsplit

from fastapi import Depends, HTTPException, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from markupsafe import Markup, escape
from starlette.concurrency import run_in_threadpool
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.types import ASGIApp

from appliance.store.users import Accounts, LoginPolicy, Session, User
from appliance.web import csrf

if TYPE_CHECKING:
    from appliance.config import WebConfig

__all__ = ["AdminUser", "AuthSettings", "CurrentUser", "InspectorUser", "ModelEngineerUser", "SupervisorUser", "User",
           "csrf_field", "current_user", "require_role"]

SESSION_COOKIE = "gate_session"
LOGIN_COOKIE = "gate_login_csrf"  # double-submit token of the login form (there is no session yet)
PUBLIC_PATHS = frozenset({"/login"})
PUBLIC_PREFIXES = ("/static/",)
JSON_PREFIXES = ("/api/", "/evidence/", "/status/thumb/")
# Machines (scanners) that authenticate in the endpoint with a bearer token, never with a cookie: outside the
# login wall and the CSRF check (which protects cookie-authenticated requests only). See scanner_upload.py.
MACHINE_PREFIXES = ("/api/scanner/",)
# Probes and the metrics scraper (systemd, Docker HEALTHCHECK, Prometheus) have no session either; the answers carry
# no personal data, and /metrics takes a bearer token when health.metrics_token_file is set (web/health.py, metrics.py).
MACHINE_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


@dataclass(frozen=True)
class AuthSettings:
    policy: LoginPolicy = field(default_factory=LoginPolicy)
    secure_cookie: str = "auto"  # auto (when the request is HTTPS), always, never

    @classmethod
    def from_config(cls, web: WebConfig) -> AuthSettings:
        policy = LoginPolicy(idle_s=web.session_idle_minutes * 60, absolute_s=web.session_max_hours * 3600)
        return cls(policy=policy, secure_cookie=web.secure_cookie)

    def secure(self, request: Request) -> bool:
        return self.secure_cookie == "always" or (self.secure_cookie == "auto" and request.url.scheme == "https")


def wants_json(path: str) -> bool:
    return path.startswith(JSON_PREFIXES)


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def safe_next(value: str | None) -> str:
    """``value`` when it is a path on this site, else ``/`` (no open redirects)."""
    if not value or not value.startswith("/") or value.startswith(("//", "/\\")):
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or any(ord(ch) < 32 for ch in value):
        return "/"
    return value


def login_url(request: Request) -> str:
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    params = {"next": here}
    if request.query_params.get("lang"):
        params["lang"] = request.query_params["lang"]
    return "/login?" + urlencode(params)


def current_user(request: Request) -> User:
    """Dependency: the logged-in user (the middleware already refused everyone else)."""
    user = getattr(request.state, "user", None)
    if user is None:
        raise HTTPException(401, "authentication required")
    return user


def require_role(*roles: str) -> Callable[[Request], User]:
    """Dependency factory: the logged-in user when their role grants one of ``roles``, else 403."""

    def dependency(request: Request) -> User:
        user = current_user(request)
        if not user.has_role(*roles):
            raise HTTPException(403, f"forbidden: needs role {' or '.join(roles)}")
        return user

    return dependency


# Route parameters: ``def page(user: InspectorUser)`` gets the user when their role allows, else 403.
CurrentUser = Annotated[User, Depends(current_user)]
InspectorUser = Annotated[User, Depends(require_role("inspector"))]
SupervisorUser = Annotated[User, Depends(require_role("supervisor"))]
ModelEngineerUser = Annotated[User, Depends(require_role("model_engineer"))]
AdminUser = Annotated[User, Depends(require_role("admin"))]


def csrf_field(request: Request) -> Markup:
    """Template global: the hidden CSRF input of a form (the session's token, or the login form's)."""
    session: Session | None = getattr(request.state, "session", None)
    token = session.csrf_token if session is not None else getattr(request.state, "login_csrf", "")
    return Markup('<input type="hidden" name="{}" value="{}">').format(csrf.FIELD, escape(token))


def set_session_cookie(response: Response, request: Request, token: str, settings: AuthSettings) -> None:
    response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="strict", path="/",
                        secure=settings.secure(request))


def clear_session_cookie(response: Response, request: Request, settings: AuthSettings) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict", secure=settings.secure(request))


Forbidden = Callable[[Request, str], Awaitable[Response]]


class AuthMiddleware(BaseHTTPMiddleware):
    """The login wall and the CSRF check, in front of every route (see the module docstring)."""

    def __init__(self, app: ASGIApp, accounts: Accounts, forbidden: Forbidden):
        super().__init__(app)
        self.accounts = accounts
        self.forbidden = forbidden

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        path = request.url.path
        if path.startswith(MACHINE_PREFIXES) or path in MACHINE_PATHS:
            request.state.session = request.state.user = None  # no cookie session counts here
            return await call_next(request)
        token = request.cookies.get(SESSION_COOKIE)
        session = await run_in_threadpool(self.accounts.session_for, token) if token else None
        request.state.session = session
        request.state.user = session.user if session is not None else None
        if session is None and not is_public(path):
            if wants_json(path):
                return JSONResponse({"detail": "authentication required"}, status_code=401)
            return RedirectResponse(login_url(request), status_code=303)
        if path == "/login":
            expected = request.cookies.get(LOGIN_COOKIE)
        else:
            expected = session.csrf_token if session is not None else None
        problem = await csrf.check(request, expected)
        if problem is not None:
            return await self.forbidden(request, problem)
        response = await call_next(request)
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Content-Security-Policy", "frame-ancestors 'none'")
        if session is not None:
            response.headers.setdefault("Cache-Control", "no-store")
        return response
