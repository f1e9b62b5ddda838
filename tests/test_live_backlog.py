"""Live updates of a long thread, over a real uvicorn server as `botkit run` serves: a
stream asked for no `since` sends none of the thread's past, only what changes after;
one asked for a `since` far back sends every message once, read a page at a time (those
of one time across a page boundary too), while the server answers others."""

from __future__ import annotations

import httpx
import pytest
from servers import free_port, served
from sse import async_events
from starlette.applications import Starlette

from botkit.db import Tx
from botkit.messages import Reply, Thread
from botkit.serving import UVICORN_OPTIONS
from botkit.store import threads as stored_threads
from botkit.store.conversations import CHANGES_PAGE, Changes
from botkit.store.outbox import enqueue

pytestmark = pytest.mark.backends

MESSAGES = 2_000
# Messages stored at each time: page boundaries (every CHANGES_PAGE) fall inside them.
SAME_TIME = 150
# Held in the outbox: none is sent (nor changes) while the test runs.
HELD = "2100-01-01T00:00:00.000000Z"
LONG_AGO = "2000-01-01T00:00:00.000000Z"


def stamp(n: int) -> str:
    return f"2026-01-01T00:{n // 60:02d}:{n % 60:02d}.000000Z"


def mt(text: str) -> Reply:
    return Reply(content=text, template=None, encoding="GSM-7", segments=1)


async def long_thread(app: Starlette) -> Thread:
    """A thread of MESSAGES replies, SAME_TIME of them at each time, written in one
    transaction through the store."""
    runtime = app.state.runtime

    async def write(tx: Tx) -> Thread:
        thread = await stored_threads.save(tx, Thread("hello", "+61400000321", "4433"), stamp(0))
        for n in range(MESSAGES):
            at = stamp(n // SAME_TIME)
            await enqueue(tx, thread, mt(f"message {n}"), runtime.numbers, at, not_before=HELD)
        return thread

    return await runtime.store.db.write(write)


async def test_a_stream_without_since_sends_only_what_changes_after(app):
    thread, port = await long_thread(app), free_port()
    base = f"http://127.0.0.1:{port}"
    async with (
        served(app, port, **{**UVICORN_OPTIONS, "lifespan": "off"}),
        httpx.AsyncClient(base_url=base, timeout=20) as client,
        client.stream("GET", f"/dashboard/threads/{thread.id}/events") as stream,
    ):
        assert stream.status_code == 200
        runtime, later = app.state.runtime, stamp(MESSAGES)
        new = await runtime.store.db.write(
            lambda tx: enqueue(tx, thread, mt("after"), runtime.numbers, later, not_before=HELD)
        )
        # The first message sent is the new one: none of the thread's past came before it.
        updates = (update async for kind, update in async_events(stream) if kind == "message")
        first = await anext(updates)
        assert first["id"] == new and ">after<" in first["html"]


async def test_a_stream_since_long_ago_sends_every_message_once_a_page_at_a_time(app, monkeypatch):
    thread, port = await long_thread(app), free_port()
    conversations = app.state.runtime.store.conversations
    read = conversations.changes
    pages: list[int] = []

    async def counted(*args, **kwargs) -> Changes:
        page = await read(*args, **kwargs)
        pages.append(len(page.messages))
        return page

    monkeypatch.setattr(conversations, "changes", counted)
    base = f"http://127.0.0.1:{port}"
    sent: list[int] = []
    async with (
        served(app, port, **{**UVICORN_OPTIONS, "lifespan": "off"}),
        httpx.AsyncClient(base_url=base, timeout=20) as client,
        client.stream(
            "GET", f"/dashboard/threads/{thread.id}/events", params={"since": LONG_AGO}
        ) as stream,
    ):
        async for kind, update in async_events(stream):
            if kind != "message":
                continue
            sent.append(update["id"])
            if len(sent) == 1:  # the backlog is coming: the server answers others meanwhile
                assert (await client.get("/healthz")).status_code == 200
            if len(set(sent)) == MESSAGES:
                break
    assert len(sent) == MESSAGES  # each once, in the order they changed
    ids = await app.state.runtime.store.db.fetchall(
        "SELECT id FROM messages WHERE thread_id = ? ORDER BY updated_at, id", (thread.id,)
    )
    assert sent == [row["id"] for row in ids]
    assert len(pages) >= MESSAGES // CHANGES_PAGE and max(pages) == CHANGES_PAGE
