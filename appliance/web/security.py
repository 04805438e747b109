"""Security headers on every response (pages, JSON, static files, redirects, errors).

The Content-Security-Policy allows only this appliance's own scripts, styles and images: no
inline script or style, no CDN (the gate's LAN has no internet anyway), no plugins, no framing.
Templates therefore keep scripts in static/*.js and styles in static/app.css.
"""

from __future__ import annotations

from markupsafe import Markup
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",  # the CSRF check may still read a same-origin Referer
    "Cross-Origin-Opener-Policy": "same-origin",
}


class SecurityHeaders:
    """ASGI middleware: sets ``CSP`` (unless a full policy is already there) and ``HEADERS`` (unless set)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if "default-src" not in headers.get("content-security-policy", ""):
                    headers["Content-Security-Policy"] = CSP
                for name, value in HEADERS.items():
                    if name not in headers:
                        headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)


# Characters that would act instead of showing: C0/C1 controls, bidi overrides (which can reverse
# how a plate reads on screen), zero-width characters. Pages show them as ``⟨U+001B⟩`` stand-ins
# (plain characters every font has: the Control Pictures block often renders as empty boxes).
_HIDDEN = (*(c for c in range(0x20) if chr(c) not in "\n\t"), *range(0x7F, 0xA0), *range(0x200B, 0x2010),
           *range(0x202A, 0x202F), *range(0x2066, 0x206A), 0xFEFF)
VISIBLE = str.maketrans({code: f"\u27e8U+{code:04X}\u27e9" for code in _HIDDEN})


def visible_controls(value: object) -> object:
    """Jinja ``finalize``: every ``{{ value }}`` string shows its control characters (then autoescape)."""
    if isinstance(value, str) and not isinstance(value, Markup):
        return value.translate(VISIBLE)
    return value
