"""Opt-out compliance: after STOP nothing reaches the handset from that number until
START, whatever a bot asks; every change of consent is in the ledger."""

from __future__ import annotations

import pytest
from conftest import ROOT

from botkit import Bot, Context
from botkit.addresses import OurNumbers
from botkit.db import Database
from botkit.messages import ConsentChange, IncomingMO, Thread
from botkit.migrations import migrate
from botkit.store import Effects, Store
from botkit.templates import SMSTemplates
from botkit.testing import Harness

pytestmark = pytest.mark.backends

BOTS, TEMPLATES = ROOT / "bots", ROOT / "templates"
PHONE = "+61400000001"


async def statuses(harness: Harness) -> list[tuple[str, str | None]]:
    rows = await harness.runtime.store.db.fetchall(
        "SELECT status, template FROM messages WHERE direction = 'mt' ORDER BY id"
    )
    return [(row["status"], row["template"]) for row in rows]


async def test_after_stop_a_bots_reply_is_refused_and_recorded(database):
    async with Harness(BOTS, TEMPLATES, sender_name="Acme Pizza", db=database) as harness:
        phone = harness.phone(PHONE)
        await phone.send("hello")
        (confirmation,) = await phone.send("STOP")
        assert confirmation.template == "compliance/stopped.txt"
        assert confirmation.text.startswith("You have been unsubscribed from Acme Pizza")
        assert await phone.send("hello") == []
        assert await statuses(harness) == [
            ("accepted", "hello/ask_name.txt"),
            ("accepted", "compliance/stopped.txt"),
            ("refused", "hello/ask_name.txt"),
        ]
        refused = await harness.runtime.store.db.fetchval(
            "SELECT error FROM messages WHERE status = 'refused'"
        )
        assert "opted out" in refused
        (entry,) = await harness.runtime.store.consent.ledger(PHONE)
        stop_id = await harness.runtime.store.db.fetchval(
            "SELECT id FROM messages WHERE direction = 'mo' AND content = 'STOP'"
        )
        assert (entry["action"], entry["keyword"], entry["source"], entry["message_id"]) == (
            "opt-out",
            "STOP",
            "sms",
            stop_id,
        )
        assert entry["address"] == "4433"


@pytest.mark.parametrize(
    "text",
    ["STOP", "stop", "  Stop  ", "S T O P", "stop.", "Stop!", "UNSUBSCRIBE", "unsubscribe",
     "CANCEL", "End", "quit", "OPTOUT", "opt out", "Opt-Out"],
)  # fmt: skip
async def test_every_stop_word_and_variant_opts_out(text, database):
    async with Harness(BOTS, TEMPLATES, db=database) as harness:
        phone = harness.phone(PHONE)
        (confirmation,) = await phone.send(text)
        assert confirmation.template == "compliance/stopped.txt"
        assert await harness.runtime.store.consent.suppressed(PHONE, "4433")


@pytest.mark.parametrize("text", ["stop now", "please stop", "stopping", "STOP STOP"])
async def test_a_stop_word_inside_a_longer_message_is_not_an_opt_out(text, database):
    async with Harness(BOTS, TEMPLATES, db=database) as harness:
        await harness.phone(PHONE).send(text)
        assert not await harness.runtime.store.consent.suppressed(PHONE, "4433")


async def test_stop_mid_conversation_wins_over_the_state_and_ends_the_thread(database):
    async with Harness(BOTS, TEMPLATES, db=database) as harness:
        phone = harness.phone(PHONE)
        await phone.send("hello")
        assert (await phone.thread()).state == "ask_name"
        await phone.send("stop")
        phone.expect("unsubscribed")
        names = await harness.runtime.store.db.fetchall(
            "SELECT bot, status, state FROM threads ORDER BY id"
        )
        assert [tuple(row) for row in names] == [
            ("hello", "closed", None),
            ("compliance", "closed", None),
        ]


@pytest.mark.parametrize("word", ["START", "UNSTOP"])  # the README's words, by default
async def test_start_restores_and_both_changes_are_in_the_ledger(word, database):
    async with Harness(BOTS, TEMPLATES, db=database) as harness:
        phone = harness.phone(PHONE)
        await phone.send("stop")
        (welcome_back,) = await phone.send(word.lower())
        assert welcome_back.template == "compliance/started.txt"
        (reply,) = await phone.send("hello")
        assert reply.template == "hello/ask_name.txt"
        ledger = await harness.runtime.store.consent.ledger(PHONE)
        assert [(e["action"], e["keyword"]) for e in ledger] == [
            ("opt-out", "STOP"),
            ("opt-in", word),
        ]


async def test_a_second_stop_is_not_confirmed_again_nor_recorded_twice(database):
    async with Harness(BOTS, TEMPLATES, db=database) as harness:
        phone = harness.phone(PHONE)
        assert len(await phone.send("stop")) == 1
        assert await phone.send("STOP") == []
        assert len(await harness.runtime.store.consent.ledger(PHONE)) == 1
        assert await statuses(harness) == [("accepted", "compliance/stopped.txt")]


async def test_stopall_opts_out_of_every_number(database):
    async with Harness(BOTS, TEMPLATES, db=database, numbers="4433,5000") as harness:
        phone = harness.phone(PHONE)
        await phone.send("stopall")
        assert await phone.send("hello", to="5000") == []
        assert await harness.runtime.store.consent.suppressed(PHONE, "5000")
        (entry,) = await harness.runtime.store.consent.ledger(PHONE)
        assert (entry["address"], entry["keyword"]) == ("*", "STOPALL")
        # START on one number opts back in to that number only.
        (welcome_back,) = await phone.send("start", to="5000")
        assert welcome_back.template == "compliance/started.txt"
        assert not await harness.runtime.store.consent.suppressed(PHONE, "5000")
        assert await harness.runtime.store.consent.suppressed(PHONE, "4433")
        assert await phone.send("hello", to="4433") == []
        ledger = await harness.runtime.store.consent.ledger(PHONE)
        assert [(e["address"], e["action"]) for e in ledger] == [
            ("*", "opt-out"),
            ("5000", "opt-in"),
        ]
        # STOPALL again forgets that exception.
        await phone.send("stopall", to="5000")
        assert await harness.runtime.store.consent.suppressed(PHONE, "5000")


async def test_stop_on_one_number_leaves_the_others(database):
    async with Harness(BOTS, TEMPLATES, db=database, numbers="4433,5000") as harness:
        phone = harness.phone(PHONE)
        await phone.send("stop", to="4433")
        (reply,) = await phone.send("hello", to="5000")
        assert reply.template == "hello/ask_name.txt"


async def test_help_names_the_sender_and_how_to_stop(database):
    async with Harness(BOTS, TEMPLATES, sender_name="Acme Pizza", db=database) as harness:
        phone = harness.phone(PHONE)
        (help_text,) = await phone.send("help")
        assert help_text.text == "Acme Pizza: reply STOP to unsubscribe, START to subscribe again."
        await phone.send("info")
        assert phone.last.template == "compliance/help.txt"


async def test_words_and_texts_are_configurable(tmp_path, database):
    (tmp_path / "compliance").mkdir()
    (tmp_path / "compliance" / "stopped.txt").write_text("Arrêté. {{ start_word }} pour revenir.\n")
    bot = Bot("echo")

    @bot.fallback
    async def echo(ctx: Context) -> None:
        ctx.reply("echo")

    options = {"stop_words": ("ARRET",), "start_words": ("REPRENDRE",)}
    async with Harness([bot], tmp_path, **options, db=database) as harness:
        phone = harness.phone(PHONE)
        (stopped,) = await phone.send("arrêt")
        assert stopped.text == "Arrêté. REPRENDRE pour revenir."
        assert await phone.send("stop") == []  # no longer a stop word: the bot answers,
        assert await statuses(harness) == [  # but the handset opted out
            ("accepted", "compliance/stopped.txt"),
            ("refused", None),
        ]


async def test_an_mt_queued_before_the_opt_out_is_refused_when_its_turn_comes(database):
    db = await Database.open(database)
    await migrate(db)
    store = Store(db)
    mo = IncomingMO(gateway_id=1, source=PHONE, destination="4433", content="x")
    await store.inbox.add(mo)
    (message,) = await store.inbox.claim(1, lease=60)
    thread = Thread(bot="hello", handset=PHONE, address="4433")
    reply = SMSTemplates(TEMPLATES).reply("queued before the STOP", {})
    (mt_id,) = await store.inbox.finish(
        message, Effects(thread, [reply], numbers=OurNumbers(["4433"], message_class="c"))
    )
    await store.consent.record(ConsentChange(PHONE, "4433", "opt-out", "operator"))
    assert await store.outbox.claim(1, lease=60, default="4433") == []
    status = await db.fetchval("SELECT status FROM messages WHERE id = ?", (mt_id,))
    depth = await store.outbox.depth()
    await db.close()
    assert (status, depth) == ("refused", 0)


async def test_a_claim_that_refuses_the_mts_it_took_takes_the_next_due(database):
    db = await Database.open(database)
    await migrate(db)
    store = Store(db)
    numbers = OurNumbers(["4433"], message_class="c")
    reply = SMSTemplates(TEMPLATES).reply("queued before the STOP", {})
    mt_ids = []
    for n, handset in enumerate((PHONE, "+61400000999")):
        await store.inbox.add(
            IncomingMO(gateway_id=n, source=handset, destination="4433", content="x")
        )
        (message,) = await store.inbox.claim(1, lease=60)
        thread = Thread(bot="hello", handset=handset, address="4433")
        mt_ids += await store.inbox.finish(message, Effects(thread, [reply], numbers=numbers))
    await store.consent.record(ConsentChange(PHONE, "4433", "opt-out", "operator"))
    (claimed,) = await store.outbox.claim(1, lease=60, default="4433")
    statuses = await db.fetchall("SELECT id, status FROM messages WHERE direction = 'mt'")
    await db.close()
    assert claimed.id == mt_ids[1] and claimed.destination == "+61400000999"
    assert sorted(tuple(row) for row in statuses) == [
        (mt_ids[0], "refused"),
        (mt_ids[1], "sending"),
    ]


async def test_an_mt_to_a_handset_that_opted_out_is_stored_refused_and_never_queued(database):
    db = await Database.open(database)
    await migrate(db)
    store = Store(db)
    other = "+61400000002"
    await store.consent.record(ConsentChange(PHONE, "4433", "opt-out", "operator"))
    for n, handset in enumerate((PHONE, other), 1):
        await store.inbox.add(IncomingMO(gateway_id=n, source=handset, destination="4433",
                                         content="x"))  # fmt: skip
    claimed = await store.inbox.claim(2, lease=60)
    reply = SMSTemplates(TEMPLATES).reply("after the STOP", {})
    numbers = OurNumbers(["4433"], message_class="c")
    mt_ids = {}
    for message in claimed:
        thread = Thread(bot="hello", handset=message.source, address="4433")
        (mt_ids[message.source],) = await store.inbox.finish(
            message, Effects(thread, [reply], numbers=numbers)
        )
    statuses = {
        handset: await db.fetchval("SELECT status FROM messages WHERE id = ?", (mt_id,))
        for handset, mt_id in mt_ids.items()
    }
    queued = [row[0] for row in await db.fetchall("SELECT message_id FROM outbox")]
    await db.close()
    assert statuses == {PHONE: "refused", other: "queued"}
    assert queued == [mt_ids[other]]  # the refused one never entered the outbox


async def test_consent_from_outside_sms_is_recorded_with_its_source(database):
    async with Harness(BOTS, TEMPLATES, db=database) as harness:
        consent = harness.runtime.store.consent
        assert await consent.record(ConsentChange(PHONE, "4433", "opt-out", "web"))
        assert not await consent.record(ConsentChange(PHONE, "4433", "opt-out", "web"))
        assert await consent.record(ConsentChange(PHONE, "4433", "opt-in", "import"))
        ledger = await consent.ledger()
        assert [(e["action"], e["source"], e["message_id"]) for e in ledger] == [
            ("opt-out", "web", None),
            ("opt-in", "import", None),
        ]


def test_the_ledger_exports_as_csv_for_an_audit(capsys, database):
    import asyncio
    import csv

    from botkit.cli import main

    async def stop_then_start() -> None:
        async with Harness(BOTS, TEMPLATES, db=database) as harness:
            phone = harness.phone(PHONE)
            await phone.send("stop")
            await phone.send("start")

    asyncio.run(stop_then_start())
    assert main(["export", "consent", "--format", "csv", "--db", database]) == 0
    rows = list(csv.DictReader(capsys.readouterr().out.splitlines()))
    assert [(r["handset"], r["address"], r["action"], r["keyword"], r["source"]) for r in rows] == [
        (PHONE, "4433", "opt-out", "STOP", "sms"),
        (PHONE, "4433", "opt-in", "START", "sms"),
    ]
    assert all(r["message_id"] and r["created_at"] for r in rows)


async def test_our_number_with_or_without_a_plus_is_one_number(database):
    async with Harness(BOTS, TEMPLATES, db=database, numbers="4433,+61412345678") as harness:
        phone = harness.phone(PHONE)
        await phone.send("stop", to="61412345678")
        consent = harness.runtime.store.consent
        assert await consent.suppressed(PHONE, "+61412345678")
        assert await consent.suppressed(PHONE, "61412345678")
        assert not await consent.suppressed(PHONE, "4433")


def test_botkit_send_refuses_a_number_that_opted_out(database):
    import asyncio
    import os
    import subprocess

    from servers import BOTKIT

    async def stop() -> None:
        async with Harness(BOTS, TEMPLATES, db=database) as harness:
            await harness.phone(PHONE).send("STOP")

    asyncio.run(stop())
    env = {
        **os.environ,
        "BOTKIT_DB": database,
        "BOTKIT_APPLICATION": "botkit",
        "BOTKIT_PASSWORD": "unused-Pa55",
        "BOTKIT_GATEWAY_URL": "http://127.0.0.1:9/message",  # never reached
    }
    done = subprocess.run(
        [BOTKIT, "send", PHONE, "hi"], env=env, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 1
    assert f"not sent: {PHONE} opted out" in done.stderr
