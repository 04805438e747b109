"""CSRF checks of state-changing requests: same origin, and the session's synchronizer token.

A request passes when its ``Origin`` (or, without one, its ``Referer``) is absent or names this
app's own origin, and it carries the expected token in the ``X-CSRF-Token`` header or the
``csrf_token`` form field (compared in constant time).
"""

from __future__ import annotations

import secrets
from urllib.parse import urlsplit

from starlette.requests import Request

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
FIELD = "csrf_token"
HEADER = "X-CSRF-Token"
_FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")


def own_origin(request: Request) -> str:
    return f"{request.url.scheme}://{request.headers.get('host', '')}".lower()


def same_origin(request: Request) -> bool:
    """False when Origin (or Referer) is present and names another origin (``null`` included)."""
    origin = request.headers.get("origin")
    if origin is None:
        referer = request.headers.get("referer")
        if referer is None:
            return True
        parts = urlsplit(referer)
        origin = f"{parts.scheme}://{parts.netloc}"
    return origin.lower() == own_origin(request)


async def submitted_token(request: Request) -> str | None:
    """The token from the header, else from the form body (the body stays readable downstream)."""
    header = request.headers.get(HEADER)
    if header:
        return header
    if not request.headers.get("content-type", "").startswith(_FORMS):
        return None
    await request.body()  # cached: the endpoint still gets the body after the middleware read it
    form = await request.form()
    try:
        value = form.get(FIELD)
    finally:
        await form.close()
    return value if isinstance(value, str) else None


def tokens_match(expected: str | None, submitted: str | None) -> bool:
    if not expected or not submitted:
        return False
    return secrets.compare_digest(expected.encode("utf-8"), submitted.encode("utf-8"))


async def check(request: Request, expected: str | None) -> str | None:
    """None when the request passes, else why it was refused (for the 403 body; no secrets in it)."""
    if request.method in SAFE_METHODS:
        return None
    if not same_origin(request):
        return "cross-origin request refused"
    if not tokens_match(expected, await submitted_token(request)):
        return "missing or wrong CSRF token"
    return None
