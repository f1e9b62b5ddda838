"""The hello bot end to end, in-process: simulator -> callback -> store -> bot -> outbox
-> sender -> simulator -> DLRs."""

from __future__ import annotations

import pytest
from conftest import eventually, rows

pytestmark = pytest.mark.backends


async def test_hello_asks_name_remembers_and_greets(app, settings):
    sim = app.state.simulator
    phone = "+61400000001"

    mo = await sim.send_mo(phone, "hello")
    assert mo.answer == 200
    await eventually(lambda: len(sim.inbox(phone)) == 1)
    assert "What's your name?" in sim.inbox(phone)[0].content

    await sim.send_mo(phone, "Ada")
    await eventually(lambda: len(sim.inbox(phone)) == 2)
    assert sim.inbox(phone)[1].content.startswith("Nice to meet you, Ada!")

    await sim.send_mo(phone, "hi")
    await eventually(lambda: len(sim.inbox(phone)) == 3)
    assert sim.inbox(phone)[2].content.startswith("Welcome back, Ada!")

    await eventually(
        lambda: (
            [
                r["delivery"]
                for r in rows(settings.db, "SELECT delivery FROM messages WHERE direction='mt'")
            ]
            == ["received"] * 3
        )
    )
    mts = rows(settings.db, "SELECT * FROM messages WHERE direction = 'mt' ORDER BY id")
    assert {m["status"] for m in mts} == {"accepted"}
    assert [m["gateway_id"] for m in mts] == [m.id for m in sim.inbox(phone)]
    assert all(m["reference"] == f"t{m['thread_id']}.m{m['id']}" for m in mts)
    assert len({m["thread_id"] for m in mts}) == 1
    history = rows(
        settings.db,
        "SELECT status FROM deliveries WHERE message_id = ? ORDER BY id",
        (mts[0]["id"],),
    )
    assert [h["status"] for h in history] == ["submitted", "sent", "received"]


async def test_unknown_text_gets_the_fallback_listing_keywords(app):
    sim = app.state.simulator
    await sim.send_mo("+61400000002", "what is this")
    reply = await eventually(lambda: sim.inbox("+61400000002"))
    assert (
        reply[0].content == "I didn't catch that. Text one of: "
        "BOOK, RESCHEDULE, UNBOOK, ESPAÑOL, ENGLISH, HELLO, NAME, JOIN, OFFERS, SURVEY"
    )
