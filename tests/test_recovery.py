"""A restart picks up where the last run stopped: nothing lost, nothing sent twice."""

from __future__ import annotations

import pytest
from conftest import ROOT, eventually, rows, running

from botkit import create_app
from botkit.addresses import OurNumbers
from botkit.db import Database
from botkit.messages import IncomingDLR, IncomingMO, Thread
from botkit.migrations import migrate
from botkit.store import Effects, Store
from botkit.templates import SMSTemplates

pytestmark = pytest.mark.backends

PHONE = "+61400000001"
# The lease of a claim left by a process that "died": on SQLite a restart frees it at
# once; on PostgreSQL (other processes may hold claims) it runs out first.
LEASE = 0.5


async def open_store(path: str) -> Store:
    db = await Database.open(path)
    await migrate(db)
    return Store(db)


def mo(n: int, text: str, phone: str = PHONE) -> IncomingMO:
    return IncomingMO(gateway_id=n, source=phone, destination="4433", content=text)


async def test_mos_stored_but_not_handled_are_handled_after_restart(settings):
    store = await open_store(settings.db)
    await store.inbox.add(mo(1, "hello"))
    await store.inbox.add(mo(2, "Grace"))
    await store.inbox.claim(10, lease=LEASE)  # claimed by a process that then died
    await store.db.close()

    async with running(create_app(settings)) as app:
        sim = app.state.simulator
        await eventually(lambda: len(sim.inbox(PHONE)) == 2)

    assert sim.inbox(PHONE)[1].content.startswith("Nice to meet you, Grace!")
    statuses = rows(settings.db, "SELECT status FROM messages WHERE direction = 'mo'")
    assert [s[0] for s in statuses] == ["handled", "handled"]
    assert rows(settings.db, "SELECT * FROM inbox") == []


async def queue_replies(store: Store, count: int) -> list[int]:
    """Handle an MO the way the dispatcher does, leaving `count` MTs in the outbox."""
    await store.inbox.add(mo(1, "hello"))
    (message,) = await store.inbox.claim(1, lease=60)
    templates = SMSTemplates(ROOT / "templates")

    thread = Thread(bot="hello", handset=PHONE, address="4433")
    replies = [templates.reply(f"reply {i}", {}) for i in range(count)]
    return await store.inbox.finish(
        message, Effects(thread, replies, numbers=OurNumbers(["4433"], message_class="mt_message"))
    )


async def test_queued_mts_are_sent_after_restart(settings):
    store = await open_store(settings.db)
    await queue_replies(store, 3)
    await store.db.close()

    async with running(create_app(settings)) as app:
        sim = app.state.simulator
        await eventually(lambda: len(sim.inbox(PHONE)) == 3)

    assert [m.content for m in sim.inbox(PHONE)] == ["reply 0", "reply 1", "reply 2"]
    assert {m.message_class for m in sim.inbox(PHONE)} == {"mt_message"}


async def test_mt_interrupted_while_sending_is_not_sent_again_but_settled_by_its_dlr(
    settings, client_for
):
    store = await open_store(settings.db)
    first, _ = await queue_replies(store, 2)
    # Marked sending, then the process died.
    (claimed,) = await store.outbox.claim(1, lease=LEASE, default="4433")
    assert claimed.id == first
    await store.db.close()

    async with running(create_app(settings)) as app, client_for(app) as client:
        sim = app.state.simulator
        await eventually(lambda: len(sim.inbox(PHONE)) == 1)
        (uncertain,) = rows(settings.db, "SELECT * FROM messages WHERE id = ?", (first,))
        assert uncertain["status"] == "uncertain"
        # The gateway had accepted it after all: its DLR carries our reference.
        params = {"id": "777", "status": "received", "reference": claimed.reference}
        assert (await client.get("/callbacks/test-token/dlr", params=params)).status_code == 200

    assert [m.content for m in sim.inbox(PHONE)] == ["reply 1"]
    (settled,) = rows(settings.db, "SELECT * FROM messages WHERE id = ?", (first,))
    assert (settled["status"], settled["gateway_id"], settled["delivery"]) == (
        "accepted",
        777,
        "received",
    )
    assert settled["uncertain"] == 1


async def test_resend_uncertain_setting_sends_interrupted_mts_again(settings):
    import dataclasses

    store = await open_store(settings.db)
    await queue_replies(store, 1)
    await store.outbox.claim(1, lease=LEASE, default="4433")
    await store.db.close()

    resend = dataclasses.replace(settings, resend_uncertain=True)
    async with running(create_app(resend)) as app:
        sim = app.state.simulator
        await eventually(lambda: len(sim.inbox(PHONE)) == 1)
        await eventually(
            lambda: (
                rows(settings.db, "SELECT status FROM messages WHERE direction='mt'")[0][0]
                == "accepted"
            )
        )


async def test_dlr_before_the_send_is_recorded_joins_the_mt(settings):
    store = await open_store(settings.db)
    (mt_id,) = await queue_replies(store, 1)
    await store.outbox.claim(1, lease=LEASE, default="4433")
    # A receipt without our reference arrives before we committed the gateway's answer.
    outcome = await store.deliveries.record(IncomingDLR(gateway_id=4242, status="submitted"))
    assert outcome.message_id is None
    await store.outbox.accepted([(mt_id, 4242)])
    (row,) = await store.db.fetchall("SELECT * FROM messages WHERE id = ?", (mt_id,))
    assert row["delivery"] == "submitted"
    await store.db.close()


async def test_stopping_while_an_mt_waits_for_its_slot_gives_it_back(settings):
    import dataclasses

    from botkit import Bot, Context

    bot = Bot("burst")

    @bot.fallback
    async def burst(ctx: Context) -> None:
        for i in range(5):
            ctx.reply(f"part {i}")

    slow = dataclasses.replace(settings, send_rate=2.0)
    async with running(create_app(slow, bots=[bot])) as app:
        sim = app.state.simulator
        await sim.send_mo(PHONE, "go")
        await eventually(lambda: len(sim.inbox(PHONE)) == 2)
    sent = len(sim.inbox(PHONE))
    statuses = [r[0] for r in rows(settings.db, "SELECT status FROM messages WHERE direction='mt'")]
    assert statuses.count("accepted") == sent
    assert statuses.count("queued") == 5 - sent  # none left 'sending', none uncertain
    assert [r[0] for r in rows(settings.db, "SELECT state FROM outbox")] == ["queued"] * (5 - sent)
