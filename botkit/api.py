"""/api: JSON for integrations, as private as the dashboard (see access.py).

GET /api/surveys/{name}   a survey's respondents, one row each, and its counts
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from .access import Guard, Sessions
from .settings import Settings
from .store import Store

if TYPE_CHECKING:
    from .runtime import Runtime


def api_routes(settings: Settings, runtime: Runtime) -> Mount:
    """The /api mount, behind the guard (a dashboard session or HTTP Basic gets in)."""
    return Mount(
        "/api",
        routes=[Route("/surveys/{name}", survey_results, methods=["GET"])],
        middleware=[
            Middleware(Sessions, runtime=runtime),
            Middleware(Guard, settings=settings),
        ],
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
            question_counts(question, counts.get(question["id"], {})) for question in questions
        ],
        "rows": rows,
    }


def question_counts(question: dict[str, Any], counts: dict[Any, int]) -> dict[str, Any]:
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
