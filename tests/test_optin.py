"""Double opt-in: JOIN asks, YES subscribes, anything else or silence does not; STOP
unsubscribes; every change is in the consent ledger with the MO that caused it."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from conftest import ROOT

from botkit import Bot, DoubleOptIn
from botkit.cli import main
from botkit.db import Database
from botkit.errors import ValidationError
from botkit.migrations import migrate
from botkit.store import Store
from botkit.testing import FakeClock, Harness

pytestmark = pytest.mark.backends

BOTS, TEMPLATES = ROOT / "bots", ROOT / "templates"
PHONE = "+61400000001"


async def members(harness: Harness, name: str = "deals") -> list[str]:
    return await harness.runtime.store.lists.members(name)


async def subscribed(harness: Harness, name: str = "deals") -> bool:
    return await harness.runtime.store.lists.is_subscribed(name, PHONE)


async def ledger(harness: Harness) -> list[tuple]:
    rows = await harness.runtime.store.consent.ledger(PHONE)
    return [(r["action"], r["list"], r["keyword"], r["source"], r["address"]) for r in rows]


async def mo_id(harness: Harness, content: str) -> int:
    return await harness.runtime.store.db.fetchval(
        "SELECT max(id) FROM messages WHERE direction = 'mo' AND content = ?", (content,)
    )


async def test_join_then_yes_subscribes_with_the_confirming_mo_in_the_ledger(database):
    async with Harness(BOTS, TEMPLATES, db=database) as harness:
        phone = harness.phone(PHONE)
        (ask,) = await phone.send("join")
        assert ask.template == "optin/confirm.txt"
        assert (await phone.thread()).state == "optin:deals"
        (welcome,) = await phone.send("YES")
        assert welcome.template == "optin/welcome.txt"
        assert (await phone.thread()).state is None
        assert await members(harness) == [PHONE]
        (entry,) = await harness.runtime.store.consent.ledger(PHONE)
        assert dict(entry) | {"id": 0} == {
            "id": 0,
            "handset": PHONE,
            "address": "4433",
            "action": "opt-in",
            "list": "deals",
            "keyword": "JOIN",
            "source": "sms",
            "message_id": await mo_id(harness, "YES"),
            "created_at": "2026-01-05T09:00:00.000000Z",
        }
        await harness.advance(days=2)  # the expiry was cancelled by the answer
        assert len(phone.replies) == 2


@pytest.mark.parametrize("answer", ["Y", "yes", "YES!", "yes please?", "Yes, sign me up", "ok"])
async def test_every_way_of_saying_yes_subscribes(answer, database):
    async with Harness(BOTS, TEMPLATES, db=database) as harness:
        phone = harness.phone(PHONE)
        await phone.send("JOIN")
        (welcome,) = await phone.send(answer)
        assert welcome.template == "optin/welcome.txt"
        assert await members(harness) == [PHONE]


@pytest.mark.parametrize("answer", ["no", "maybe", "yeah nah", "not yes", "JOIN", "hello"])
async def test_anything_else_declines_and_subscribes_no_one(answer, database):
    async with Harness(BOTS, TEMPLATES, db=database) as harness:
        phone = harness.phone(PHONE)
        await phone.send("JOIN")
        (declined,) = await phone.send(answer)
        assert declined.text == "No worries, you're not subscribed. Text JOIN any time to join."
        assert (await phone.thread()).state is None
        assert not await subscribed(harness)
        assert await ledger(harness) == []


async def test_silence_past_the_timeout_expires_the_request(database):
    clock = FakeClock()
    async with Harness(BOTS, TEMPLATES, clock=clock, db=database) as harness:
        phone = harness.phone(PHONE)
        await phone.send("JOIN")
        await harness.advance(hours=23, minutes=59)
        assert len(phone.replies) == 1
        await harness.advance(minutes=1)
        assert phone.last.template == "optin/expired.txt"
        assert (await phone.thread()).state is None
        # A late YES is no longer an answer: the fallback gets it, and nothing changes.
        (late,) = await phone.send("yes")
        assert late.template == "hello/help.txt"
        assert not await subscribed(harness)
        assert await ledger(harness) == []


async def test_a_subscribed_handset_is_told_so(database):
    async with Harness(BOTS, TEMPLATES, db=database) as harness:
        phone = harness.phone(PHONE)
        await phone.send("JOIN")
        await phone.send("yes")
        (already,) = await phone.send("join")
        assert already.template == "optin/already.txt"
        assert (await phone.thread()).state is None
        assert len(await ledger(harness)) == 1


async def test_a_handset_subscribed_by_an_import_is_told_so_too(database):
    async with Harness(BOTS, TEMPLATES, db=database) as harness:
        await harness.runtime.store.lists.subscribe("deals", PHONE, "4433", source="web")
        (already,) = await harness.phone(PHONE).send("JOIN")
        assert already.template == "optin/already.txt"


async def test_stop_unsubscribes_from_the_lists_of_that_number_and_start_does_not_rejoin(database):
    async with Harness(BOTS, TEMPLATES, db=database) as harness:
        phone = harness.phone(PHONE)
        await phone.send("JOIN")
        await phone.send("yes")
        await phone.send("STOP")
        assert await members(harness) == []
        assert await ledger(harness) == [
            ("opt-in", "deals", "JOIN", "sms", "4433"),
            ("opt-out", None, "STOP", "sms", "4433"),
            ("opt-out", "deals", "STOP", "sms", "4433"),
        ]
        rows = await harness.runtime.store.consent.ledger(PHONE)
        assert rows[2]["message_id"] == rows[1]["message_id"] == await mo_id(harness, "STOP")
        await phone.send("START")
        assert await members(harness) == []
        await phone.send("JOIN")
        await phone.send("yes")
        assert await members(harness) == [PHONE]


async def test_stop_to_another_number_leaves_the_membership(database):
    async with Harness(BOTS, TEMPLATES, db=database, numbers="4433,5000") as harness:
        phone = harness.phone(PHONE)
        await phone.send("JOIN")
        await phone.send("yes")
        await phone.send("STOP", to="5000")
        assert await members(harness) == [PHONE]
        await phone.send("STOPALL", to="5000")
        assert await members(harness) == []


async def test_stop_while_asked_ends_the_request_without_an_expiry(database):
    async with Harness(BOTS, TEMPLATES, db=database) as harness:
        phone = harness.phone(PHONE)
        await phone.send("JOIN")
        await phone.send("stop")
        await harness.advance(days=2)
        assert [reply.template for reply in phone.replies] == [
            "optin/confirm.txt",
            "compliance/stopped.txt",
        ]


async def test_a_handset_that_opted_out_cannot_be_subscribed_by_a_yes(database):
    async with Harness(BOTS, TEMPLATES, db=database) as harness:
        phone = harness.phone(PHONE)
        await phone.send("STOP")
        assert await phone.send("JOIN") == []  # the question is refused: opted out
        await phone.send("yes")
        assert not await subscribed(harness)
        assert [entry[0] for entry in await ledger(harness)] == ["opt-out"]


async def test_flows_attach_to_any_bot_one_per_list(database):
    bot = Bot("club")
    for name, keyword in (("news", "NEWS"), ("events", "EVENTS")):
        DoubleOptIn(
            list=name,
            keyword=keyword,
            confirm=f"Get {name}? Reply YES.",
            welcome=f"Subscribed to {name}.",
            already=f"Already on {name}.",
            declined="Not subscribed.",
            expired="Too late.",
            timeout=timedelta(minutes=10),
        ).attach(bot)
    assert set(bot.states) == {"optin:news", "optin:events"}
    async with Harness([bot], TEMPLATES, db=database) as harness:
        phone = harness.phone(PHONE)
        await phone.send("events")
        await phone.send("y")
        phone.expect("Subscribed to events.")
        await phone.send("news")
        await harness.advance(minutes=10)
        phone.expect("Too late.")
        assert await members(harness, "events") == [PHONE]
        assert not await subscribed(harness, "news")


def test_a_flow_refuses_a_bad_list_name_or_timeout():
    templates = dict.fromkeys(("confirm", "welcome", "already", "declined", "expired"), "x")
    with pytest.raises(ValidationError, match="not a list name"):
        DoubleOptIn(list="Deals!", keyword="JOIN", **templates)
    with pytest.raises(ValueError, match="timeout must be positive"):
        DoubleOptIn(list="deals", keyword="JOIN", timeout=timedelta(0), **templates)


async def test_a_declared_list_exists_empty_from_start_up(database, capsys):
    async with Harness(BOTS, TEMPLATES, db=database) as harness:
        assert await members(harness) == []
        lists = await harness.runtime.store.lists.summary()
        assert [(row["name"], row["subscribed"], row["unsubscribed"]) for row in lists] == [
            ("deals", 0, 0),
            ("offers", 0, 0),  # bots/promos.py
        ]
    assert await asyncio.to_thread(main, ["lists", "show", "--db", database]) == 0
    lines = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert lines == [["deals", "0", "subscribed", "0", "unsubscribed"],
                     ["offers", "0", "subscribed", "0", "unsubscribed"]]  # fmt: skip


async def test_processes_starting_together_declare_each_list_once_and_keep_its_members(
    database,
):
    databases = [await Database.open(database) for _ in range(3)]
    try:
        await migrate(databases[0])
        stores = [Store(db) for db in databases]
        await stores[0].lists.create("deals", "Friday deals")
        await stores[0].lists.subscribe("deals", PHONE, "4433", source="web")
        await asyncio.gather(*(store.lists.declare(["news", "deals"]) for store in stores))
        summary = await stores[0].lists.summary()
    finally:
        for db in databases:
            await db.close()
    assert [(r["name"], r["description"], r["subscribed"]) for r in summary] == [
        ("deals", "Friday deals", 1),
        ("news", "", 0),
    ]
