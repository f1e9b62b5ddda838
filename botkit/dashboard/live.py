"""Live updates of a transcript, as server-sent events.

    GET /dashboard/threads/{id}/events?since=STAMP

Sends each message of the thread changed at or after `since` (new, or a new status) as
an event `message` carrying its rendered HTML, and the thread's header as `thread` when
it changed; then waits for the next commit. Each event's id is the newest time sent,
so a browser that reconnects (sending Last-Event-ID) misses nothing.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from .conversations import thread_context
from .pages import Pages

if TYPE_CHECKING:
    from ..runtime import Runtime

# Look again at least this often even with no commit seen here (another process's).
RECHECK = 5.0
# Let a burst of commits settle into one look.
SETTLE = 0.1


def routes(pages: Pages, runtime: Runtime) -> list[Route]:
    async def events(request: Request) -> Response:
        thread_id = request.path_params["thread_id"]
        since = request.headers.get("last-event-id") or request.query_params.get("since", "")
        thread = await runtime.store.threads.get(thread_id)
        if thread is None:
            return PlainTextResponse(f"no thread {thread_id}", 404)
        return EventSourceResponse(
            _changes(pages, runtime, request, thread_id, thread.address, since),
            ping=15,
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    return [Route("/threads/{thread_id:id}/events", events, methods=["GET"], name="events")]


async def _changes(
    pages: Pages, runtime: Runtime, request: Request, thread_id: int, address: str, since: str
) -> AsyncIterator[ServerSentEvent]:
    """The thread's changes from `since` on, for as long as the browser listens (its
    messages drawn as on the page: an MO says its number when not the thread's
    `address`)."""
    db = runtime.store.db
    sent: dict[tuple[str, int], int] = {}  # a hash of what each event last carried
    while True:
        seen = db.commits.count
        thread, messages, history = await runtime.store.conversations.changes(thread_id, since)
        updates: list[tuple[str, int, str, str]] = []
        if thread is not None:
            context = await thread_context(runtime, thread)
            html = pages.fragment(request, "_thread.html", context)
            updates.append(("thread", thread_id, thread["updated_at"], html))
        for m in messages:
            context = {"m": m, "history": history, "thread": {"address": address}}
            html = pages.fragment(request, "_message.html", context)
            updates.append(("message", m["id"], m["updated_at"], html))
        for kind, key, version, html in updates:
            since = max(since, version)
            if sent.get((kind, key)) == hash(html):
                continue  # unchanged since it was last sent
            sent[(kind, key)] = hash(html)
            data = json.dumps({"id": key, "html": html})
            yield ServerSentEvent(data=data, event=kind, id=since)
        try:
            async with asyncio.timeout(RECHECK):
                await db.commits.wait(seen)
        except TimeoutError:
            pass
        await asyncio.sleep(SETTLE)
