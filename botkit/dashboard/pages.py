"""Rendering dashboard pages: one Jinja environment, autoescaped, with safe headers.

Templates are looked up in the project's templates/ first, so any page can be
overridden; every page gets the CSRF token for its forms and who is signed in.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.templating import Jinja2Templates

from ..access import USER
from ..csrf import csrf_token
from ..handling import handling
from ..sessions import login_required, session_user
from ..settings import Settings
from ..spool import Spool

BUILT_IN = Path(__file__).resolve().parent.parent / "templates"
STATIC = BUILT_IN.parent / "static"
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class Pages:
    """Renders the dashboard's templates for a request."""

    def __init__(self, settings: Settings, spool: Spool) -> None:
        loader = jinja2.FileSystemLoader([settings.templates, BUILT_IN])
        env = jinja2.Environment(loader=loader, autoescape=True)
        env.filters["when"] = time_filter(settings.timezone, settings.zone)
        env.filters["handling"] = handling
        self.templates = Jinja2Templates(env=env)
        self.settings = settings
        self.spool = spool  # what waits in it is shown on every page

    def render(
        self, request: Request, name: str, context: dict[str, Any], status_code: int = 200
    ) -> Response:
        """Template `dashboard/{name}` with `context`, the CSRF token and the user."""
        return self.templates.TemplateResponse(
            request,
            f"dashboard/{name}",
            self._context(request, context),
            status_code=status_code,
            headers=HEADERS,
        )

    def download(self, body: AsyncIterator[str], filename: str) -> Response:
        """A CSV file streamed as `body` yields it, saved by the browser as `filename`
        (written into the header as given: a token, or a quoted string)."""
        headers = {**HEADERS, "Content-Disposition": f"attachment; filename={filename}"}
        return StreamingResponse(body, media_type="text/csv; charset=utf-8", headers=headers)

    def fragment(self, request: Request, name: str, context: dict[str, Any]) -> str:
        """Part of a page (`dashboard/{name}`) as HTML, for live updates."""
        template = self.templates.get_template(f"dashboard/{name}")
        return template.render(self._context(request, {"request": request, **context}))

    def _context(self, request: Request, context: dict[str, Any]) -> dict[str, Any]:
        return {
            "csrf": csrf_token(request),
            "user": session_user(request),
            "operator": request.scope.get(USER) or "localhost",
            "login": login_required(self.settings),
            "zone": self.settings.timezone,
            "spooled": self.spool.waiting,
            **context,
        }


def when(stamp: str | None) -> str:
    """A stored time (clock.stamp's fixed-width form) as `2026-01-05 09:00:00 UTC`: cut
    rather than parsed, as a long transcript has thousands of them."""
    if not stamp:
        return ""
    return f"{stamp[:10]} {stamp[11:19]} UTC"


def when_in(stamp: str | None, zone: tzinfo) -> str:
    """A stored time in `zone`: `2026-01-05 20:00:00 AEDT`."""
    if not stamp:
        return ""
    try:
        return datetime.fromisoformat(stamp).astimezone(zone).strftime("%Y-%m-%d %H:%M:%S %Z")
    except OverflowError:  # past year 9999 there: shown as stored, in UTC
        return when(stamp)


def time_filter(timezone: str, zone: tzinfo) -> Callable[[str | None], str]:
    """The `when` filter for BOTKIT_TIMEZONE: UTC cuts the stored text, any other
    zone converts it."""
    if timezone == "UTC":
        return when
    return functools.partial(when_in, zone=zone)
