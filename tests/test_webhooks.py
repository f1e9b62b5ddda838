"""Webhooks on both backends: events queued with what causes them, delivered to a real
receiver (uvicorn on loopback), signed, retried with backoff on the store's clock until
taken or given up, claimed by one process at a time, and nothing written for an event
nobody subscribes to."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from collections.abc import AsyncIterator

import pytest
from conftest import client_to, eventually, rows, running
from servers import free_port, served
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from test_db_faults import MO_URL, OK, answer, locked, mo

from botkit import Settings, create_app
from botkit.clock import parse_stamp
from botkit.db import Database
from botkit.migrations import migrate
from botkit.store import Store
from botkit.testing import FakeClock
from botkit.webhooks import MO_RECEIVED, emit, verify

pytestmark = pytest.mark.backends

SECRET = "whsec_0123456789abcdef"
HANDSET = "+61400000001"
MO = {"id": "77", "source": HANDSET, "destination": "4433", "content": "hello"}


class Receiver:
    """A receiver's app: answers `status` (with `body`) to the first `fails` deliveries,
    200 after; keeps each request's headers and body."""

    def __init__(self, fails: int = 0, status: int = 500, body: str = "boom", **headers: str):
        self.fails, self.status, self.body, self.headers = fails, status, body, headers
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.app = Starlette(routes=[Route("/hook", self.take, methods=["POST"])])

    async def take(self, request: Request) -> Response:
        self.requests.append((dict(request.headers), await request.body()))
        if len(self.requests) <= self.fails:
            return PlainTextResponse(self.body, self.status, headers=self.headers)
        return PlainTextResponse("thanks")


@contextlib.asynccontextmanager
async def receiving(receiver: Receiver) -> AsyncIterator[str]:
    """`receiver` served by uvicorn on loopback; its URL."""
    port = free_port()
    async with served(receiver.app, port):
        yield f"http://127.0.0.1:{port}/hook"


@contextlib.asynccontextmanager
async def hooked_to(
    receiver: Receiver, settings: Settings, clock: FakeClock, events: str = "mo.received"
) -> AsyncIterator[Starlette]:
    """The app, running on `clock`, with a webhook to `receiver` (served) for `events`."""
    async with receiving(receiver) as url:
        hooked = dataclasses.replace(
            settings, webhook_url=url, webhook_secret=SECRET, webhook_events=(events,)
        )
        async with running(create_app(hooked, clock=clock)) as app:
            yield app


async def deliveries(app: Starlette) -> list:
    page, _ = await app.state.runtime.store.webhooks.page()
    return page


async def state_of(app: Starlette) -> tuple[str, int]:
    """The one delivery's state ("sending" while an attempt is under way) and attempts."""
    (row,) = await deliveries(app)
    return "sending" if row["sending"] else row["state"], row["attempts"]


async def test_a_failing_receiver_gets_the_event_again_with_backoff_until_it_takes_it(settings):
    receiver = Receiver(fails=2, body="<b>down</b>")
    clock = FakeClock()
    async with hooked_to(receiver, settings, clock) as app:
        runtime = app.state.runtime
        await app.state.simulator.send_mo(HANDSET, "hello")
        await eventually(lambda: _is(state_of(app), ("pending", 1)))
        (row,) = await deliveries(app)
        assert (row["state"], row["attempts"], row["last_status"]) == ("pending", 1, 500)
        assert row["last_error"] == "HTTP 500: <b>down</b>"
        wait = parse_stamp(row["due_at"]) - clock()
        assert 8 <= wait.total_seconds() <= 12  # 10 s, give or take 20%
        clock.advance(13)
        runtime.webhooks.wake()
        await eventually(lambda: _is(state_of(app), ("pending", 2)))
        clock.advance(73)  # 1 min, give or take 20%
        runtime.webhooks.wake()
        await eventually(lambda: _is(state_of(app), ("delivered", 3)))
        attempts = await runtime.store.webhooks.attempts(row["id"])
        assert [(a["attempt"], a["status"]) for a in attempts] == [(1, 500), (2, 500), (3, 200)]
        assert runtime.metrics.webhooks["retried"]._value.get() == 2
        assert runtime.metrics.webhooks["delivered"]._value.get() == 1
    bodies = {body for _, body in receiver.requests}
    assert len(bodies) == 1  # the same event each time
    payload = json.loads(bodies.pop())
    assert payload["type"] == "mo.received" and payload["id"].startswith("evt_")
    assert payload["created_at"] == "2026-01-05T09:00:00.000000Z"
    assert payload["data"]["handset"] == HANDSET and payload["data"]["text"] == "hello"
    for headers, body in receiver.requests:
        assert headers["content-type"] == "application/json"
        assert headers["botkit-event"] == "mo.received"
        assert headers["botkit-delivery"] == str(row["id"])
        assert headers["user-agent"].startswith("botkit-webhooks/")
        assert verify(body, headers["botkit-signature"], SECRET, now=clock()) > 0
    assert not any(SECRET in str(value) for value in (headers, bodies, attempts))


async def _is(value, wanted) -> bool:
    return await value == wanted


async def test_a_delivery_fails_after_its_last_attempt_and_an_operator_can_retry_it(settings):
    receiver = Receiver(fails=10**6, status=503, body="x" * 100_000)
    clock = FakeClock()
    async with hooked_to(receiver, settings, clock) as app:
        runtime = app.state.runtime
        await app.state.simulator.send_mo(HANDSET, "hello")
        most = runtime.webhooks.max_attempts
        for attempt in range(1, most):
            await eventually(lambda n=attempt: _is(state_of(app), ("pending", n)))
            clock.advance(hours=15)  # past any wait, jitter and all
            runtime.webhooks.wake()
        await eventually(lambda: _is(state_of(app), ("failed", most)))
        assert len(receiver.requests) == most
        (row,) = await deliveries(app)
        assert row["last_status"] == 503 and len(row["last_error"]) == 200
        assert not await runtime.store.webhooks.due()
        assert runtime.metrics.webhooks["failed"]._value.get() == 1

        receiver.fails = 0
        assert await runtime.store.webhooks.retry(row["id"])
        assert not await runtime.store.webhooks.retry(row["id"])  # pending: not failed
        runtime.webhooks.wake()
        await eventually(lambda: _is(state_of(app), ("delivered", most + 1)))
    assert len(receiver.requests) == most + 1


async def test_a_redirect_is_not_followed(settings):
    receiver = Receiver(fails=1, status=302, body="", location="http://127.0.0.1:9/elsewhere")
    async with hooked_to(receiver, settings, FakeClock()) as app:
        await app.state.simulator.send_mo(HANDSET, "hello")
        await eventually(lambda: _is(state_of(app), ("pending", 1)))
        (row,) = await deliveries(app)
    assert row["last_status"] == 302 and "not followed" in row["last_error"]
    assert len(receiver.requests) == 1


async def trickle(scope, receive, send) -> None:
    """A receiver that answers a byte, then nothing more until the caller hangs up."""
    if scope["type"] == "lifespan":  # nothing to start or stop
        for step in ("startup", "shutdown"):
            await receive()
            await send({"type": f"lifespan.{step}.complete"})
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b".", "more_body": True})
    while (await receive())["type"] != "http.disconnect":
        pass


async def test_a_receiver_that_trickles_is_cut_off_and_tried_again(settings):
    receiver = Receiver()
    receiver.app = trickle
    async with hooked_to(receiver, settings, FakeClock()) as app:
        app.state.runtime.webhooks.attempt_seconds = 0.5
        await app.state.simulator.send_mo(HANDSET, "hello")
        await eventually(lambda: _is(state_of(app), ("pending", 1)))
        (row,) = await deliveries(app)
    assert (row["last_status"], row["last_error"]) == (None, "no whole answer within 0.5s")


async def test_a_repeated_mo_callback_is_one_event(settings):
    receiver = Receiver()
    async with hooked_to(receiver, settings, FakeClock()) as app, client_to(app) as client:
        for _ in range(3):
            assert (await client.get("/callbacks/test-token/mo", params=MO)).text == "OK"
        await eventually(lambda: _is(state_of(app), ("delivered", 1)))
    (payload,) = [json.loads(body) for _, body in receiver.requests]
    assert payload["data"]["gateway_id"] == 77


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)  # locked: SQLite's
async def test_mos_replayed_from_the_spool_are_an_event_each(settings):
    receiver = Receiver()
    async with hooked_to(receiver, settings, FakeClock()) as app, client_to(app) as client:
        async with locked(settings.db):
            for params in (mo(1, "one"), mo(2, "two"), mo(1, "one")):
                assert answer(await client.get(MO_URL, params=params)) == OK
            assert app.state.runtime.spool.waiting
        await eventually(lambda: len(receiver.requests) == 2, timeout=60)
        await eventually(lambda: app.state.runtime.spool.waiting == 0)
    texts = sorted(json.loads(body)["data"]["text"] for _, body in receiver.requests)
    assert texts == ["one", "two"]


async def test_nothing_is_written_for_an_event_nobody_subscribes_to(settings):
    receiver = Receiver()
    async with hooked_to(receiver, settings, FakeClock(), "survey.completed") as app:
        url = app.state.settings.webhook_url
        assert app.state.runtime.db.subscribers == {"survey.completed": (url,)}
        await app.state.simulator.send_mo(HANDSET, "HELLO")
        await app.state.simulator.send_mo(HANDSET, "STOP")
    async with running(create_app(settings)) as app:
        assert app.state.runtime.db.subscribers == {}
        await app.state.simulator.send_mo(HANDSET, "START")
        await app.state.simulator.send_mo(HANDSET, "HELLO")
    assert rows(settings.db, "SELECT count(*) FROM webhook_deliveries")[0][0] == 0
    assert rows(settings.db, "SELECT count(*) FROM messages WHERE direction = 'mo'")[0][0] == 4


async def test_a_delivery_to_a_webhook_removed_since_fails_unsent(settings):
    receiver = Receiver()
    async with receiving(receiver) as url:
        clock = FakeClock()
        async with running(create_app(settings, clock=clock)) as app:
            store = app.state.runtime.store
            hook = await store.webhooks.add(url, SECRET, ("mo.received",))
            await app.state.runtime.webhooks.refresh()
            await store.webhooks.remove(hook)
            await app.state.simulator.send_mo(HANDSET, "hello")  # queued for it still
            await app.state.runtime.webhooks.refresh()
            app.state.runtime.webhooks.wake()
            await eventually(lambda: _is(state_of(app), ("failed", 1)))
            (row,) = await deliveries(app)
    assert row["last_error"] == "no webhook subscribes this URL to it now"
    assert receiver.requests == []


async def test_processes_claim_each_delivery_once_and_a_lost_claim_records_nothing(database):
    clock = FakeClock()
    dbs = [await Database.open(database) for _ in range(2)]
    try:
        await migrate(dbs[0])
        first, second = stores = [Store(db, clock) for db in dbs]
        dbs[0].subscribers = {MO_RECEIVED: ("https://a.example/", "https://b.example/")}

        async def events(tx):
            for n in range(15):
                await emit(tx, MO_RECEIVED, {"n": n}, first.webhooks.now())

        await dbs[0].write(events)
        claimed = []
        while True:
            taken = await asyncio.gather(*(s.webhooks.claim(4, lease=60) for s in stores))
            if not any(taken):
                break
            claimed += [d.id for batch in taken for d in batch]
        assert sorted(claimed) == sorted(set(claimed)) and len(claimed) == 30

        clock.advance(61)  # every lease ran out: the first process stalled
        (stale,) = await first.webhooks.claim(1, lease=60)
        clock.advance(61)
        (taken,) = [d for d in await second.webhooks.claim(30, lease=60) if d.id == stale.id]
        assert taken.attempts == stale.attempts + 1
        assert not await first.webhooks.record(stale, state="delivered", status=200)
        assert await second.webhooks.record(taken, state="delivered", status=200)
        assert [a["attempt"] for a in await first.webhooks.attempts(stale.id)] == [taken.attempts]
    finally:
        for db in dbs:
            await db.close()


async def test_an_unknown_event_is_a_mistake_of_the_code_that_emits_it(database):
    db = await Database.open(database)
    try:
        await migrate(db)
        with pytest.raises(ValueError, match=r"unknown webhook event 'mo\.recieved': one of"):
            await db.write(lambda tx: emit(tx, "mo.recieved", {}, "2026-01-05T09:00:00Z"))
    finally:
        await db.close()
