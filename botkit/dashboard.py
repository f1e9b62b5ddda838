"""The dashboard: conversations and their transcripts, server-rendered.

    GET /dashboard/                  threads by latest activity (?bot=, ?after= for the next page)
    GET /dashboard/threads/{id}      one thread as a chat, each MT with its delivery history

Private like /api (loopback only, or HTTP Basic with BOTKIT_DASHBOARD_USER/PASSWORD).
Pages escape everything a handset sent; a Content-Security-Policy allows no inline script.
Templates are looked up in the project's templates/ first, so any page can be overridden.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import jinja2
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from .api import Guard
from .clock import parse_stamp
from .settings import Settings
from .store.conversations import Cursor

if TYPE_CHECKING:
    from .runtime import Runtime

BUILT_IN = Path(__file__).resolve().parent / "templates"
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def dashboard_routes(settings: Settings, runtime: Runtime) -> Mount:
    """The dashboard, mounted at /dashboard behind the guard /api uses."""
    loader = jinja2.FileSystemLoader([settings.templates, BUILT_IN])
    templates = Jinja2Templates(env=jinja2.Environment(loader=loader, autoescape=True))
    templates.env.filters["when"] = _when

    async def conversations(request: Request) -> Response:
        after = Cursor.parse(request.query_params.get("after", ""))
        bot = request.query_params.get("bot") or None
        rows, cursor = await runtime.store.conversations.page(after, bot=bot)
        context = {"rows": rows, "cursor": cursor, "bot": bot, "bots": sorted(runtime.router.bots)}
        return templates.TemplateResponse(
            request, "dashboard/conversations.html", context, headers=HEADERS
        )

    async def transcript(request: Request) -> Response:
        thread_id = request.path_params["thread_id"]
        thread, messages, history = await runtime.store.conversations.transcript(thread_id)
        status = 200 if thread is not None else 404
        context = {"thread": thread, "messages": messages, "history": history}
        return templates.TemplateResponse(
            request, "dashboard/transcript.html", context, status_code=status, headers=HEADERS
        )

    routes = [
        Route("/", conversations, methods=["GET"], name="conversations"),
        Route("/threads/{thread_id:int}", transcript, methods=["GET"], name="transcript"),
        Mount("/static", StaticFiles(directory=BUILT_IN.parent / "static"), name="static"),
    ]
    return Mount(
        "/dashboard",
        routes=routes,
        name="dashboard",
        middleware=[Middleware(Guard, settings=settings)],
    )


def _when(stamp: str | None) -> str:
    """A stored time as `2026-01-05 09:00:00 UTC`."""
    if not stamp:
        return ""
    return parse_stamp(stamp).strftime("%Y-%m-%d %H:%M:%S UTC")
