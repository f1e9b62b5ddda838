"""Live updates of a transcript, as server-sent events.

    GET /dashboard/threads/{id}/events?since=STAMP

Sends each message of the thread changed at or after `since` (new, or a new status) as
an event `message` carrying its rendered HTML, and the thread's header as `thread` when
it changed; then waits for the next commit. Each event's id is the newest time sent,
so a browser that reconnects (sending Last-Event-ID) misses nothing. Without `since`,
what the thread holds now is taken as shown: only what changes from then on is sent.

Messages are read and drawn a page at a time (store.conversations.CHANGES_PAGE), each
page a query awaited: a long backlog holds up no other request for longer than a page.
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

from ..sessions import still_signed_in
from .conversations import thread_context
from .pages import Pages

if TYPE_CHECKING:
    from ..runtime import Runtime

# Look again at least this often even with no commit seen here (another process's).
RECHECK = 5.0
# Let a burst of commits settle into one look.
SETTLE = 0.1
# One update to send: its event, the id of its message (or thread), its time, its HTML.
Update = tuple[str, int, str, str]


def routes(pages: Pages, runtime: Runtime) -> list[Route]:
    async def events(request: Request) -> Response:
        thread_id = request.path_params["thread_id"]
        since = request.headers.get("last-event-id") or request.query_params.get("since", "")
        thread = await runtime.store.threads.get(thread_id)
        if thread is None:
            return PlainTextResponse(f"no thread {thread_id}", 404)
        stream = Stream(pages, runtime, request, thread_id, thread.address)
        if not since:  # before the response starts: what commits after it is sent
            since = await stream.shown()
        return EventSourceResponse(
            stream.changes(since),
            ping=15,
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    return [Route("/threads/{thread_id:id}/events", events, methods=["GET"], name="events")]


class Stream:
    """One browser's live updates of a thread (its messages drawn as on the page: an
    MO says its number when not the thread's `address`)."""

    def __init__(
        self, pages: Pages, runtime: Runtime, request: Request, thread_id: int, address: str
    ) -> None:
        self.pages = pages
        self.runtime = runtime
        self.request = request
        self.thread_id = thread_id
        self.address = address
        # A hash of what each event last carried, and its time: only those a look reads
        # again (of the newest time sent) are kept, so it holds few, however long it runs.
        self.sent: dict[tuple[str, int], tuple[str, int]] = {}

    async def shown(self) -> str:
        """The time of the thread's latest change, with what it holds now taken as sent
        (the page shows it): a stream from there sends only what changes after."""
        since = await self.runtime.store.conversations.newest(self.thread_id)
        async for update in self.look(since):
            self.fresh(update)
        return since

    async def changes(self, since: str) -> AsyncIterator[ServerSentEvent]:
        """The thread's changes from `since` on, for as long as the browser listens and
        its session holds (looked at before each look, RECHECK seconds apart at most)."""
        commits = self.runtime.store.db.commits
        while True:
            seen = commits.count
            if not await still_signed_in(self.runtime, self.request):
                return  # logged out meanwhile: a copy of the cookie reads no more
            async for update in self.look(since):
                kind, key, version, html = update
                if version > since:
                    since = version
                    self.forget(since)
                if self.fresh(update):
                    data = json.dumps({"id": key, "html": html})
                    yield ServerSentEvent(data=data, event=kind, id=since)
            try:
                async with asyncio.timeout(RECHECK):
                    await commits.wait(seen)
            except TimeoutError:
                pass
            await asyncio.sleep(SETTLE)

    async def look(self, since: str) -> AsyncIterator[Update]:
        """The messages changed at or after `since`, a page at a time in the order they
        changed, drawn; then the thread's header if it changed (after them: its time may
        be newer than theirs, and an event's id must not pass a message not yet sent)."""
        conversations = self.runtime.store.conversations
        thread = {"address": self.address}
        stamp, after = since, 0
        while True:
            page = await conversations.changes(self.thread_id, stamp, after)
            for m in page.messages:
                context = {"m": m, "history": page.history, "thread": thread}
                html = self.pages.fragment(self.request, "_message.html", context)
                yield "message", m["id"], m["updated_at"], html
            if not page.more:
                break
            stamp, after = page.messages[-1]["updated_at"], page.messages[-1]["id"]
        row = await conversations.changed(self.thread_id, since)
        if row is not None:
            context = await thread_context(self.runtime, row)
            html = self.pages.fragment(self.request, "_thread.html", context)
            yield "thread", self.thread_id, row["updated_at"], html

    def fresh(self, update: Update) -> bool:
        """Whether `update` differs from what was last sent of it; noted as sent."""
        kind, key, version, html = update
        last = self.sent.get((kind, key))
        if last is not None and last[1] == hash(html):
            return False
        self.sent[(kind, key)] = (version, hash(html))
        return True

    def forget(self, since: str) -> None:
        """Drop what no look from `since` reads again (a message changed after it is
        read again, and sent if it differs)."""
        for key in [key for key, (version, _) in self.sent.items() if version < since]:
            del self.sent[key]
