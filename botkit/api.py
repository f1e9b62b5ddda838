"""/api: JSON for integrations, as private as the dashboard (see access.py).

    GET /api/conversations    threads by latest activity, filtered as botkit/search.py
                              reads the query (?after= the previous page's `next`),
                              each with its contact's `name` (null: none set)
    GET /api/threads/{id}     a thread and its latest messages, each MT with its
                              deliveries (?before= the previous page's `earlier`);
                              `flags` lists what was done to keep a message or
                              receipt (callbacks.py), [] for none
    GET /api/surveys/{name}   a survey's respondents, one row each, and its counts
    GET /api/contacts         contacts in number order, filtered as
                              botkit/contact_search.py reads the query (?after= the
                              previous page's `next`), each as GET /api/contacts/{number}
    GET /api/contacts/{number}    a contact: name, language, time zone, fields, lists
    PATCH /api/contacts/{number}  change a contact (made if need be): a JSON object of
                              any of name, language, timezone and `fields` (a field's
                              value as JSON, or text as a person types it; null clears)

Gateway ids are strings: they are 64-bit, more than a JavaScript number holds exactly.
A bad parameter gets 400 and {"error": "<name>: <why>"} (app.py's ValidationError handler).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from .access import Guard, operator
from .bodies import BodyError, read_json
from .contact_search import after, contact_filters, next_page
from .db import Row
from .fields import FieldError
from .messages import split_flags
from .numbers import international
from .params import whole
from .search import Numbers, filters
from .sessions import Sessions
from .settings import Settings
from .store import Store
from .store.contacts import Author
from .store.conversations import Cursor

if TYPE_CHECKING:
    from .runtime import Runtime


def api_routes(settings: Settings, runtime: Runtime) -> Mount:
    """The /api mount, behind the guard (a dashboard session or HTTP Basic gets in)."""
    return Mount(
        "/api",
        routes=[
            Route("/conversations", conversations, methods=["GET"]),
            Route("/threads/{thread_id:id}", thread, methods=["GET"]),
            Route("/surveys/{name}", survey_results, methods=["GET"]),
            Route("/contacts", contacts, methods=["GET"]),
            Route("/contacts/{number}", contact, methods=["GET", "PATCH"]),
        ],
        middleware=[
            Middleware(Sessions, runtime=runtime),
            Middleware(Guard, runtime=runtime),
        ],
    )


async def conversations(request: Request) -> Response:
    """A page of conversations, most recently active first, and the cursor of the next."""
    runtime: Runtime = request.app.state.runtime
    store = runtime.store
    numbers = None
    if request.query_params.get("address"):
        numbers = Numbers.of(runtime.numbers, await store.conversations.addresses())
    chosen = filters(request.query_params, numbers, runtime.settings.zone, store.contacts.fields)
    after = Cursor.parse(request.query_params.get("after", ""))
    rows, cursor = await store.conversations.page(after, chosen)
    return JSONResponse(
        {
            "conversations": [_conversation(row) for row in rows],
            "next": None if cursor is None else str(cursor),
        }
    )


async def thread(request: Request) -> Response:
    """A thread, its state and data, and a page of its messages with their deliveries."""
    store: Store = request.app.state.runtime.store
    thread_id = request.path_params["thread_id"]
    found = await store.conversations.transcript(thread_id, whole(request.query_params, "before"))
    if found is None:
        return JSONResponse({"error": f"no thread {thread_id}"}, 404)
    return JSONResponse(
        {
            "thread": {**_conversation(found.thread), "data": json.loads(found.thread["data"])},
            "messages": [_message(row, found.history.get(row["id"], [])) for row in found.messages],
            "earlier": found.earlier,
        }
    )


def _conversation(row: Row) -> dict[str, Any]:
    conversation = dict(row)
    del conversation["data"]
    return conversation


def _message(row: Row, deliveries: list[Row]) -> dict[str, Any]:
    message = dict(row)
    del message["exempt"]
    for key in ("gateway_id", "reply_to"):
        message[key] = None if row[key] is None else str(row[key])
    message["uncertain"] = bool(row["uncertain"])
    message["flags"] = list(split_flags(row["flags"]))
    if row["direction"] == "mt":
        message["deliveries"] = [
            {
                "status": d["status"],
                "received_at": d["received_at"],
                "flags": list(split_flags(d["flags"])),
            }
            for d in deliveries
        ]
    return message


async def contacts(request: Request) -> Response:
    """A page of contacts in number order, those the query's filters keep, and the
    `after` of the next page."""
    runtime: Runtime = request.app.state.runtime
    store, params = runtime.store, request.query_params
    lists = await store.lists.ids() if params.get("list") else {}
    chosen = contact_filters(params, store.contacts.fields, runtime.settings.zone, lists)
    found, cursor = await store.contacts.listing(after(params), chosen)
    contacts = [each.as_json() for each in found]
    return JSONResponse({"contacts": contacts, "next": next_page(cursor)})


async def contact(request: Request) -> Response:
    """A contact, and changing it: the PATCH's changes commit together, in the ledger as
    the API's by the signed-in user, or not at all (400 naming the first bad value). A
    JSON body is required, which a cross-site form cannot send."""
    store: Store = request.app.state.runtime.store
    number = international(request.path_params["number"], "number")
    if request.method == "GET":
        if not await store.contacts.exists(number):
            return JSONResponse({"error": f"no contact {number}"}, 404)
        return JSONResponse((await store.contacts.get(number)).as_json())
    try:
        given = await read_json(request)
    except BodyError as exc:
        return JSONResponse({"error": exc.message}, exc.status)
    if not isinstance(given, dict):
        return JSONResponse({"error": "the body is not a JSON object"}, 400)
    found = await store.contacts.get(number)
    try:
        found.update(given)
    except FieldError as exc:
        return JSONResponse({"error": str(exc)}, 400)
    await store.contacts.save(found, Author("api", operator(request)))
    return JSONResponse((await store.contacts.get(number)).as_json())


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
