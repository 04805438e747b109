"""Dates and times as the UI shows them: in the gate's time zone (``site.timezone``), formatted by
Babel for the request's language.

``LocalTime`` (ASGI middleware) sets the zone and the language of ``?lang=`` for each request;
``when``, ``clock``, ``ago`` and ``duration`` then format with them (``lang=`` overrides, e.g. for
the language a form was posted in). Times typed into forms (``parse_local``) are read in the same
zone, so an inspector can type what the pages show.
"""

from __future__ import annotations

import datetime as dt
from contextvars import ContextVar
from dataclasses import dataclass
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo

from babel.dates import format_datetime, format_time, format_timedelta
from starlette.types import ASGIApp, Receive, Scope, Send

from appliance.web.i18n import language

DEFAULT_TIMEZONE = "Asia/Ho_Chi_Minh"


@dataclass(frozen=True)
class Display:
    zone: ZoneInfo
    lang: str


_DEFAULT = Display(ZoneInfo(DEFAULT_TIMEZONE), "vi")  # frozen: safe to share
_display: ContextVar[Display] = ContextVar("display", default=_DEFAULT)


def current() -> Display:
    return _display.get()


def use(zone: ZoneInfo | None = None, lang: str | None = None) -> None:
    """Format the rest of this request's times in ``zone`` and/or ``lang``."""
    now = _display.get()
    _display.set(Display(zone or now.zone, language(lang) if lang is not None else now.lang))


def zone() -> ZoneInfo:
    return _display.get().zone


def _utc(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, dt.UTC)


def when(ts: float | None, lang: str | None = None) -> str:
    """Date and time of epoch seconds ``ts`` in the gate's zone (``-`` when None)."""
    if ts is None:
        return "-"
    d = _display.get()
    return format_datetime(_utc(ts), "medium", tzinfo=d.zone, locale=language(lang or d.lang))


def clock(ts: float | None, lang: str | None = None) -> str:
    """Time of day only."""
    if ts is None:
        return "-"
    d = _display.get()
    return format_time(_utc(ts), "medium", tzinfo=d.zone, locale=language(lang or d.lang))


def duration(seconds: float | None, lang: str | None = None) -> str:
    """A rounded length of time ("3 phút", "3 minutes", "3分钟"); ``-`` when None."""
    if seconds is None:
        return "-"
    return format_timedelta(dt.timedelta(seconds=max(0.0, seconds)), threshold=1.5,
                            locale=language(lang or _display.get().lang))


def ago(seconds: float | None, lang: str | None = None) -> str:
    """How long ago ("3 phút trước", "3 minutes ago", "3分钟前"); ``-`` when None."""
    if seconds is None:
        return "-"
    return format_timedelta(dt.timedelta(seconds=-max(0.0, seconds)), threshold=1.5, add_direction=True,
                            locale=language(lang or _display.get().lang))


def parse_local(text: str) -> float | None:
    """A ``datetime-local`` value (``2026-11-19T08:30``) in the gate's zone as epoch seconds.

    None when empty; ValueError when not a date and time. A value with its own offset keeps it.
    """
    text = text.strip()
    if not text:
        return None
    value = dt.datetime.fromisoformat(text)
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone())
    return value.timestamp()


class LocalTime:
    """ASGI middleware: each request formats its times in ``zone`` and the language of ``?lang=``."""

    def __init__(self, app: ASGIApp, zone: ZoneInfo | str = DEFAULT_TIMEZONE) -> None:
        self.app = app
        self.zone = zone if isinstance(zone, ZoneInfo) else ZoneInfo(zone)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        token = _display.set(Display(self.zone, language((query.get("lang") or [None])[0])))
        try:
            await self.app(scope, receive, send)
        finally:
            _display.reset(token)
