"""The sender against the simulator and against a failing gateway: rate, retries,
permanent failures, uncertain outcomes, and the password kept out of every record."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import socket
from pathlib import Path
from urllib.parse import parse_qs

import httpx
import pytest
from conftest import ROOT, eventually, rows, running

from botkit import Bot, Context, Gateway, Simulator, create_app
from botkit.addresses import OurNumbers
from botkit.db import PACE_IDLE, PACE_SLACK, Database, DatabaseError, is_url, slots
from botkit.messages import IncomingMO, Outgoing, Thread
from botkit.migrations import migrate
from botkit.sender import Sender
from botkit.store import Effects, Store
from botkit.templates import SMSTemplates

pytestmark = pytest.mark.backends

PHONE = "+61400000001"
PASSWORD = "pä$$ word&=?/secret"
# Far beyond what a stop takes, even on a loaded machine: one that hangs fails the test.
DEADLINE = 30


def chatty(count: int) -> Bot:
    bot = Bot("chatty")

    @bot.fallback
    async def many(ctx: Context) -> None:
        for i in range(count):
            ctx.reply(f"part {i}")

    return bot


async def test_send_rate_is_respected(settings):
    slow = dataclasses.replace(settings, send_rate=20.0)
    async with running(create_app(slow, bots=[chatty(10)])) as app:
        sim = app.state.simulator
        await sim.send_mo(PHONE, "go")
        await eventually(lambda: len(sim.inbox(PHONE)) == 10)
    times = [m.created_at for m in sim.inbox(PHONE)]
    # Ten sends at 20 per second cannot take less than 9 intervals of 50 ms, but for the
    # slack a sender late for its slot may catch up (when the first was late).
    assert times[-1] - times[0] >= 9 / 20 - PACE_SLACK
    assert sorted(m.content for m in sim.inbox(PHONE)) == [f"part {i}" for i in range(10)]


async def test_permanent_refusal_is_recorded_with_the_gateway_text(app, settings):
    sim = app.state.simulator
    sim.set_unroutable(PHONE)
    await sim.send_mo(PHONE, "hello")
    (failed,) = await eventually(
        lambda: rows(settings.db, "SELECT * FROM messages WHERE direction='mt' AND status='failed'")
    )
    assert failed["error"] == "ERROR Failed to queue message"
    assert rows(settings.db, "SELECT * FROM outbox") == []


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def inject(app, text: str = "hello") -> None:
    from conftest import client_to

    async with client_to(app) as client:
        params = {"id": "1", "source": PHONE, "destination": "4433", "content": text}
        assert (await client.get("/callbacks/test-token/mo", params=params)).status_code == 200


async def test_connection_refused_is_retried_later(settings):
    gateway = Gateway(
        url=f"http://127.0.0.1:{closed_port()}/message", application="botkit", password=PASSWORD
    )
    async with running(create_app(settings, gateway=gateway)) as app:
        await inject(app)
        (queued,) = await eventually(
            lambda: rows(
                settings.db, "SELECT * FROM outbox WHERE attempts = 1 AND state = 'queued'"
            )
        )
    assert queued["next_attempt_at"] > rows(settings.db, "SELECT created_at FROM messages")[0][0]
    (mt,) = rows(settings.db, "SELECT * FROM messages WHERE direction = 'mt'")
    assert mt["status"] == "queued"
    assert mt["error"] and PASSWORD not in mt["error"]


async def test_no_answer_after_sending_is_uncertain_and_not_resent(settings):
    requests: list[bytes] = []
    writers: list[asyncio.StreamWriter] = []

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        requests.append(await reader.readuntil(b"\r\n\r\n"))

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    gateway = Gateway(
        url=f"http://127.0.0.1:{port}/message",
        application="botkit",
        password=PASSWORD,
        timeout=httpx.Timeout(0.3),
    )
    async with server, running(create_app(settings, gateway=gateway)) as app:
        await inject(app)
        (mt,) = await eventually(
            lambda: rows(settings.db, "SELECT * FROM messages WHERE status = 'uncertain'")
        )
        for writer in writers:
            writer.close()
    assert len(requests) == 1
    assert rows(settings.db, "SELECT * FROM outbox") == []
    assert mt["uncertain"] == 1


async def open_store(path: str) -> Store:
    db = await Database.open(path)
    await migrate(db)
    return Store(db)


async def queue_one(store: Store) -> int:
    await store.inbox.add(IncomingMO(gateway_id=1, source=PHONE, destination="4433", content="x"))
    (message,) = await store.inbox.claim(1, lease=60)
    thread = Thread(bot="t", handset=PHONE, address="4433")
    reply = SMSTemplates(ROOT / "templates").reply("hi there", {})
    (mt_id,) = await store.inbox.finish(
        message, Effects(thread, [reply], numbers=OurNumbers(["4433"], message_class="mt_message"))
    )
    return mt_id


async def test_server_errors_are_retried_with_backoff_until_the_gateway_recovers(database: str):
    sim = Simulator(password=PASSWORD)
    failures = {"left": 3}

    async def flaky(scope, receive, send) -> None:
        if scope["type"] == "http" and failures["left"] > 0:
            failures["left"] -= 1
            await send({"type": "http.response.start", "status": 503, "headers": []})
            await send({"type": "http.response.body", "body": b"Service Unavailable"})
            return
        await sim.app(scope, receive, send)

    store = await open_store(database)
    mt_id = await queue_one(store)
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=flaky))
    gateway = Gateway(url="http://gw/message", application="botkit", password=PASSWORD, http=http)
    sender = Sender(store, gateway, rate=100, retry_base=0.02, default_number="4433")
    sender.start()
    try:
        await eventually(lambda: len(sim.sent) == 1)
        row = await eventually(
            lambda: store.db.fetchone(
                "SELECT * FROM messages WHERE id = ? AND status = 'accepted'", (mt_id,)
            )
        )
    finally:
        await sender.stop()
        await http.aclose()
        await sim.aclose()
        await store.db.close()
    assert row["gateway_id"] == sim.sent[0].id
    assert failures["left"] == 0


async def test_an_mt_is_marked_sending_and_committed_when_its_request_arrives(settings):
    """What the database holds at the moment the gateway receives the request, read by
    another connection (so only what was committed): the MT is `sending`."""
    sim = Simulator(password=PASSWORD)
    seen: list[tuple[str, str]] = []

    async def looking(scope, receive, send) -> None:
        if scope["type"] == "http" and scope["path"] == "/message":
            reference = parse_qs(scope["query_string"].decode())["reference"][0]
            (row,) = rows(
                settings.db,
                """SELECT m.status, o.state FROM messages m
                   JOIN outbox o ON o.message_id = m.id WHERE m.reference = ?""",
                (reference,),
            )
            seen.append((row["status"], row["state"]))
        await sim.app(scope, receive, send)

    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=looking))
    gateway = Gateway(url="http://gw/message", application="botkit", password=PASSWORD, http=http)
    app = create_app(settings, gateway=gateway, bots=[chatty(3)])
    async with running(app):
        await inject(app)
        await eventually(
            lambda: (
                rows(settings.db, "SELECT * FROM messages WHERE status = 'accepted'")
                and not rows(settings.db, "SELECT * FROM outbox")
            )
        )
    await http.aclose()
    await sim.aclose()
    assert seen == [("sending", "sending")] * 3


async def test_the_sender_gives_up_after_its_last_attempt(database: str):
    sim = Simulator(password=PASSWORD)
    sim.fail(status=503)  # until healed: never, here
    store = await open_store(database)
    mt_id = await queue_one(store)
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=sim.app))
    gateway = Gateway(url="http://gw/message", application="botkit", password=PASSWORD, http=http)
    sender = Sender(
        store, gateway, rate=100, retry_base=0.01, max_attempts=3, default_number="4433"
    )
    sender.start()
    try:
        row = await eventually(
            lambda: store.db.fetchone(
                "SELECT * FROM messages WHERE id = ? AND status = 'failed'", (mt_id,)
            )
        )
        # Failed and out of the outbox in one commit: no later attempt can be claimed.
        assert await store.db.fetchall("SELECT * FROM outbox") == []
    finally:
        await sender.stop()
        await http.aclose()
        await sim.aclose()
        await store.db.close()
    assert row["error"].startswith("gave up after 3 attempts: ")
    assert [r.status for r in sim.requests] == [503, 503, 503] and sim.sent == []


async def stopping(sender: Sender) -> None:
    """Wait until stop() cancels the sender's loop, which is waiting for the caller."""
    await eventually(lambda: sender._loop.cancelling())


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)  # stand-ins play its part
async def test_a_stop_during_a_claim_that_fails_to_commit_stops_the_sender(database: str):
    store = await open_store(database)
    sender = Sender(store, gateway=None, rate=100, default_number="4433")
    claiming = asyncio.Event()

    async def claim(limit: int, lease: float, default: str) -> None:
        claiming.set()
        await stopping(sender)
        raise DatabaseError("could not commit: database or disk is full")

    store.outbox.claim = claim
    sender.start()
    try:
        async with asyncio.timeout(DEADLINE):
            await claiming.wait()
            await sender.stop()
        assert not sender.alive
    finally:
        await store.db.close()


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)  # stand-ins play its part
async def test_a_stop_while_the_sender_waits_for_a_send_slot_leaves_the_mt_queued(
    database: str, caplog: pytest.LogCaptureFixture
):
    store = await open_store(database)
    mt_id = await queue_one(store)
    waiting = asyncio.Event()

    async def pace(interval: float, most: int = 1) -> int:
        waiting.set()
        await asyncio.Event().wait()  # no slot comes
        return most

    store.db.pace = pace
    sender = Sender(store, gateway=None, rate=100, default_number="4433")
    sender.start()
    try:
        async with asyncio.timeout(DEADLINE):
            await waiting.wait()
            await sender.stop()
        assert not sender.alive
        # Claimed only once its request can leave: never `sending` while it waits.
        row = await store.db.fetchone("SELECT status FROM messages WHERE id = ?", (mt_id,))
        assert row["status"] == "queued"
        assert "sender failed" not in caplog.text
    finally:
        await store.db.close()


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)  # stand-ins play its part
async def test_a_stop_during_a_claim_ends_though_its_mt_cannot_be_given_back(
    database: str, caplog: pytest.LogCaptureFixture
):
    store = await open_store(database)
    mt_id = await queue_one(store)
    sender = Sender(store, gateway=None, rate=100, default_number="4433")
    claiming = asyncio.Event()
    claim_for_real = store.outbox.claim

    async def claim(limit: int, lease: float, default: str) -> list[Outgoing]:
        claiming.set()
        await stopping(sender)
        return await claim_for_real(limit, lease, default)  # committed as the stop came

    async def release(message_id: int) -> None:
        raise DatabaseError("could not commit: database or disk is full")

    store.outbox.claim = claim
    store.outbox.release = release
    sender.start()
    try:
        async with asyncio.timeout(DEADLINE):
            await claiming.wait()
            await sender.stop()
        assert not sender.alive
        assert f"mt {mt_id}: not given back, left sending" in caplog.text
        assert "sender failed" not in caplog.text
    finally:
        await store.db.close()


async def test_gateway_password_is_in_no_row_log_or_error(settings, caplog):
    caplog.set_level(logging.DEBUG)
    sim = Simulator(password="the-right-one")

    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=sim.app))
    gateway = Gateway(url="http://gw/message", application="botkit", password=PASSWORD, http=http)
    app = create_app(settings, gateway=gateway)
    async with running(app):
        await inject(app)
        (mt,) = await eventually(
            lambda: rows(
                settings.db, "SELECT * FROM messages WHERE direction='mt' AND error IS NOT NULL"
            )
        )
    await http.aclose()
    await sim.aclose()
    assert mt["error"] == "ERROR Invalid authentication information"
    assert mt["status"] == "queued"  # credentials can be fixed: the message is kept
    stored = every_value(settings.db)
    assert "ERROR Invalid authentication information" in stored and PASSWORD not in stored
    if not is_url(settings.db):  # the files too: free pages, the WAL
        files = list(Path(settings.db).parent.glob("botkit.db*"))
        assert files and not any(PASSWORD.encode() in path.read_bytes() for path in files)
    assert PASSWORD not in caplog.text
    assert "the-right-one" not in caplog.text


def every_value(database: str) -> str:
    """Every row of every table of the database, as one text to search."""
    if is_url(database):
        sql = "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
    else:
        sql = "SELECT name FROM sqlite_master WHERE type = 'table'"
    tables = [r[0] for r in rows(database, sql)]
    assert {"messages", "outbox", "meta"} <= set(tables), tables
    return "\n".join(repr(tuple(r)) for t in tables for r in rows(database, f"SELECT * FROM {t}"))


def test_send_slots_catch_up_when_late_and_start_afresh_after_idle_time():
    interval = 0.005  # 200 a second
    # Due in the future: wait for it, one slot.
    assert slots(10.002, 10.0, interval, most=16) == pytest.approx((0.002, 1, 10.007))
    # Late by three intervals (a busy loop, a slow claim): those slots are handed out
    # now, so that the rate holds; at most `most` of them.
    wait, count, following = slots(10.0, 10.015, interval, most=16)
    assert (wait, count) == (0.0, 4) and following == pytest.approx(10.02)
    assert slots(10.0, 10.015, interval, most=2)[1:] == pytest.approx((2, 10.01))
    # Later than PACE_SLACK (a stall): it catches up on PACE_SLACK, the rest is lost.
    late = 10.0 + PACE_SLACK + 0.05
    wait, count, following = slots(10.0, late, interval, most=100)
    assert wait == 0.0 and PACE_SLACK / interval - 1 <= count <= PACE_SLACK / interval + 1
    assert following == pytest.approx(late - PACE_SLACK + count * interval)
    # Further behind than PACE_IDLE is idle time: one slot, now, and no burst.
    idle = 10.0 + PACE_IDLE + 0.5
    assert slots(10.0, idle, interval, most=16) == pytest.approx((0.0, 1, idle + interval))


async def test_send_slots_given_back_are_handed_out_again(database: str):
    store = await open_store(database)
    try:
        interval = 3600.0  # one an hour: a second slot now would have to be given back
        assert await store.db.pace(interval, most=4) == 1  # the first, now
        await store.db.unpace(interval, 1)
        async with asyncio.timeout(DEADLINE):  # not an hour
            assert await store.db.pace(interval, most=4) == 1
    finally:
        await store.db.close()
