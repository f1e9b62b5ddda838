"""/api: JSON for integrations, and the guard that keeps it (and the dashboard) private.

    GET /api/surveys/{name}   a survey's respondents, one row each, and its counts

Without BOTKIT_DASHBOARD_USER and BOTKIT_DASHBOARD_PASSWORD only loopback clients get in
(behind a reverse proxy, uvicorn gives the real client from X-Forwarded-For); with both
set, every request must bring them by HTTP Basic auth, compared in constant time.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import secrets
from typing import Any

from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from .settings import Settings
from .store import Store

REALM = 'Basic realm="botkit", charset="UTF-8"'


class Guard:
    """ASGI middleware that answers 401 or 403 for a request `refusal` refuses."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            refused = refusal(Request(scope), self.settings)
            if refused is not None:
                await refused(scope, receive, send)
                return
        await self.app(scope, receive, send)


def refusal(request: Request, settings: Settings) -> Response | None:
    """None if the request may see the dashboard and /api; else the response refusing it."""
    user, password = settings.dashboard_user, settings.dashboard_password
    if user and password:
        if _credentials_match(request.headers.get("authorization"), user, password):
            return None
        return JSONResponse(
            {"error": "authentication required"},
            status_code=401,
            headers={"WWW-Authenticate": REALM},
        )
    if _is_loopback(request):
        return None
    return JSONResponse(
        {
            "error": "only open to this machine; set BOTKIT_DASHBOARD_USER and "
            "BOTKIT_DASHBOARD_PASSWORD to open it to others with a login"
        },
        status_code=403,
    )


def _credentials_match(header: str | None, user: str, password: str) -> bool:
    """True if an Authorization header carries `user` and `password` (Basic)."""
    scheme, _, encoded = (header or "").partition(" ")
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    given_user, _, given_password = decoded.partition(b":")
    # Both compared every time, so the time taken tells nothing about which was wrong.
    user_ok = secrets.compare_digest(given_user, user.encode())
    password_ok = secrets.compare_digest(given_password, password.encode())
    return scheme.lower() == "basic" and user_ok and password_ok


def _is_loopback(request: Request) -> bool:
    host = request.client.host if request.client else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def api_routes(settings: Settings) -> Mount:
    """The /api mount, behind the guard."""
    return Mount(
        "/api",
        routes=[Route("/surveys/{name}", survey_results, methods=["GET"])],
        middleware=[Middleware(Guard, settings=settings)],
    )


async def survey_results(request: Request) -> Response:
    """A survey's results: per-status and per-question counts, and one row a respondent."""
    store: Store = request.app.state.runtime.store
    name = request.path_params["name"]
    results = await survey_summary(store, name)
    if results is None:
        return JSONResponse({"error": f"no survey named {name!r} has been started"}, 404)
    return JSONResponse(results)


async def survey_summary(store: Store, name: str) -> dict[str, Any] | None:
    """The results of survey `name` as JSON-ready data; None if nobody has started it."""
    questions = await store.surveys.questions(name)
    if questions is None:
        return None
    ids = [question["id"] for question in questions]
    counts = await store.surveys.counts(name)
    rows = [row async for row in store.surveys.rows(name, ids)]
    return {
        "survey": name,
        "respondents": len(rows),
        "statuses": await store.surveys.statuses(name),
        "questions": [
            _question_counts(question, counts.get(question["id"], {})) for question in questions
        ],
        "rows": rows,
    }


def _question_counts(question: dict[str, Any], counts: dict[Any, int]) -> dict[str, Any]:
    """How many answered a question and, unless it is free text, how many gave each
    answer (every possible one, for ratings, choices and yes/no)."""
    values = question["values"]
    if values is None and question["kind"] == "number":
        values = sorted(counts)
    return {
        "id": question["id"],
        "kind": question["kind"],
        "answered": sum(counts.values()),
        "counts": None
        if values is None
        else [{"value": value, "count": counts.get(value, 0)} for value in values],
    }
