"""Conversations and their transcripts.

GET /dashboard/                  threads by latest activity, filtered as botkit/search.py
                                 reads the query (?after= for the next page); a number
                                 that finds none but is a contact's links to its page
GET /dashboard/threads/{id}      one thread as a chat, each MT with its delivery history
                                 and each MO with how its handling went; the thread's data
                                 and pending timers
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..clock import stamp
from ..db import Row
from ..errors import ValidationError
from ..numbers import search_forms
from ..params import whole
from ..search import Numbers, filters
from ..store.contact_filters import ContactFilters
from ..store.conversations import STATUSES, Cursor
from .pages import Pages

if TYPE_CHECKING:
    from ..runtime import Runtime


def routes(pages: Pages, runtime: Runtime) -> list[Route]:
    async def conversations(request: Request) -> Response:
        params = request.query_params
        bots = runtime.router.bots.values()
        store = runtime.store.conversations
        numbers = Numbers.of(runtime.numbers, await store.addresses())
        context = {
            "params": params,
            "bots": sorted(bot.name for bot in bots),
            "states": sorted({state for bot in bots for state in bot.states}),
            "fields": sorted(runtime.store.contacts.fields),
            "statuses": STATUSES,
            "numbers": list(numbers),
            "number": numbers.find(params.get("address") or ""),
            "shown": numbers.shown(),
            "rows": [],
            "cursor": None,
            "error": "",
            "contacts": [],
        }
        try:
            chosen = filters(params, numbers, runtime.settings.zone, runtime.store.contacts.fields)
            after = Cursor.parse(params.get("after", ""))
        except ValidationError as exc:
            context["error"] = str(exc)
            return pages.render(request, "conversations.html", context, status_code=400)
        context["rows"], cursor = await store.page(after, chosen)
        if not context["rows"] and after is None and chosen.number is not None:
            context["contacts"] = await contacts_numbered(runtime, params.get("q", ""))
        if cursor is not None:
            context["next"] = "?" + urlencode({**params, "after": str(cursor)})
        return pages.render(request, "conversations.html", context)

    async def transcript(request: Request) -> Response:
        return await show_transcript(pages, runtime, request, request.path_params["thread_id"])

    return [
        Route("/", conversations, methods=["GET"], name="conversations"),
        Route("/threads/{thread_id:id}", transcript, methods=["GET"], name="transcript"),
    ]


async def contacts_numbered(runtime: Runtime, q: str) -> list[str]:
    """The contacts the number `q` may mean (in any common form), for a search that
    finds no conversation: one imported, or made through the API, may have none."""
    try:
        handsets = search_forms(q)
    except ValidationError:  # a part of a number: no contact is found by one
        return []
    found = await runtime.store.contacts.page(None, len(handsets), ContactFilters(handsets))
    return [contact.number for contact in found]


async def show_transcript(
    pages: Pages,
    runtime: Runtime,
    request: Request,
    thread_id: int,
    *,
    error: str = "",
    draft: str = "",
    status_code: int = 200,
) -> Response:
    """A transcript page (`?before=` an id for earlier messages; only the latest page is
    live), with an operator's `error` and unsent `draft` if any."""
    before = whole(request.query_params, "before")
    found = await runtime.store.conversations.transcript(thread_id, before)
    context = {
        **(await thread_context(runtime, found.thread) if found else {"thread": None}),
        "messages": found.messages if found else [],
        "history": found.history if found else {},
        "earlier": found and found.earlier,
        "latest": before is None,
        "error": error,
        "draft": draft,
    }
    return pages.render(
        request, "transcript.html", context, status_code=status_code if found else 404
    )


async def thread_context(runtime: Runtime, thread: Row) -> dict[str, Any]:
    """What a transcript's header shows: the thread, its data and its pending timers."""
    timers = await runtime.store.timers.pending(thread["id"])
    return {
        "thread": thread,
        "data": pretty(json.loads(thread["data"])),
        "timers": [
            {"name": t.name, "due_at": stamp(t.due_at), "data": pretty(t.data)} for t in timers
        ],
    }


def pretty(data: object) -> str:
    """JSON data as an operator reads it: indented, keys sorted, text as written."""
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False)
