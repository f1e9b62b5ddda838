"""Timers: reminders and expiries fire once, when due, after a restart too."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from conftest import ROOT

from botkit import Bot, Context
from botkit.errors import HandlerError
from botkit.testing import FakeClock, Harness

pytestmark = pytest.mark.backends

TEMPLATES = ROOT / "templates"
PHONE = "+61400000001"


def reminder_bot() -> Bot:
    bot = Bot("remind")

    @bot.keyword("BOOK")
    async def book(ctx: Context) -> None:
        ctx.reply("Booked. Reply OK to confirm.")
        ctx.state = "confirm"
        ctx.schedule("nudge", minutes=30, data={"what": "booking"})
        ctx.schedule("expire", hours=2)

    @bot.state("confirm")
    async def confirm(ctx: Context) -> None:
        ctx.cancel("nudge")
        ctx.reply("Confirmed.")
        ctx.state = None

    @bot.keyword("DONE")
    async def done(ctx: Context) -> None:
        ctx.reply("Bye.")
        ctx.end()

    @bot.timer("nudge")
    async def nudge(ctx: Context) -> None:
        ctx.reply(f"Still there? Reply OK to confirm your {ctx.timer.data['what']}.")

    @bot.timer("expire")
    async def expire(ctx: Context) -> None:
        if ctx.state == "confirm":
            ctx.reply("Your booking has lapsed.")
        ctx.end()

    @bot.keyword("BROKEN")
    async def broken(ctx: Context) -> None:
        ctx.schedule("explode", minutes=1)

    @bot.timer("explode")
    async def explode(ctx: Context) -> None:
        raise RuntimeError("timer bug")

    return bot


async def texts(phone) -> list[str]:
    return [reply.text for reply in phone.replies]


async def test_a_reminder_fires_once_when_due_then_the_expiry(database):
    async with Harness([reminder_bot()], TEMPLATES, db=database) as harness:
        phone = harness.phone(PHONE)
        await phone.send("book")
        await harness.advance(minutes=29)
        assert len(phone.replies) == 1
        await harness.advance(minutes=1)
        await phone.send("?")  # the state takes it: confirmed, nudge already fired
        assert await texts(phone) == [
            "Booked. Reply OK to confirm.",
            "Still there? Reply OK to confirm your booking.",
            "Confirmed.",
        ]
        await harness.advance(hours=3)
        assert len(phone.replies) == 3  # the expiry found nothing to say
        thread = await phone.thread()
        assert thread.status == "closed"
        states = await harness.runtime.store.db.fetchall("SELECT name, state FROM timers")
        assert sorted(tuple(row) for row in states) == [("expire", "fired"), ("nudge", "fired")]


async def test_a_cancelled_reminder_never_fires(database):
    async with Harness([reminder_bot()], TEMPLATES, db=database) as harness:
        phone = harness.phone(PHONE)
        await phone.send("book")
        await phone.send("ok")
        await harness.advance(minutes=45)
        assert await texts(phone) == ["Booked. Reply OK to confirm.", "Confirmed."]


async def test_the_expiry_ends_an_unanswered_thread(database):
    async with Harness([reminder_bot()], TEMPLATES, db=database) as harness:
        phone = harness.phone(PHONE)
        await phone.send("book")
        await harness.advance(hours=2)
        assert phone.last.text == "Your booking has lapsed."
        assert (await phone.thread()).status == "closed"


async def test_ending_the_thread_cancels_its_timers(database):
    async with Harness([reminder_bot()], TEMPLATES, db=database) as harness:
        phone = harness.phone(PHONE)
        await phone.send("book")
        await phone.send("ok")
        await phone.send("done")
        await harness.advance(days=1)
        assert phone.last.text == "Bye."
        states = await harness.runtime.store.db.fetchall("SELECT state FROM timers")
        assert {row[0] for row in states} == {"cancelled"}


async def test_a_timer_due_while_the_app_was_down_fires_once_after_a_restart(tmp_path, database):
    clock = FakeClock()
    async with Harness([reminder_bot()], TEMPLATES, db=database, clock=clock) as harness:
        await harness.phone(PHONE).send("book")
    clock.advance(hours=1)  # down for an hour: the nudge came due meanwhile
    async with Harness([reminder_bot()], TEMPLATES, db=database, clock=clock) as harness:
        await harness.settle()
        nudges = await harness.runtime.store.db.fetchall(
            "SELECT content FROM messages WHERE content LIKE 'Still there?%'"
        )
        assert len(nudges) == 1
    async with Harness([reminder_bot()], TEMPLATES, db=database, clock=clock) as harness:
        await harness.settle()
        count = await harness.runtime.store.db.fetchval(
            "SELECT count(*) FROM messages WHERE content LIKE 'Still there?%'"
        )
        assert count == 1


async def test_a_timer_handler_that_raises_fails_that_timer_only(database):
    async with Harness([reminder_bot()], TEMPLATES, db=database) as harness:
        phone = harness.phone(PHONE)
        await phone.send("broken")
        with pytest.raises(RuntimeError, match="timer bug"):  # the harness raises it
            await harness.advance(minutes=1)
        row = await harness.runtime.store.db.fetchone("SELECT state, error FROM timers")
        assert (row["state"], row["error"]) == ("failed", "RuntimeError: timer bug")
        (reply,) = await phone.send("book")
        assert reply.text.startswith("Booked.")


async def test_scheduling_a_timer_without_a_handler_is_an_error(database):
    bot = Bot("bad")

    @bot.fallback
    async def bad(ctx: Context) -> None:
        ctx.schedule("nowhere", minutes=5)

    async with Harness([bot], TEMPLATES, db=database) as harness:
        with pytest.raises(HandlerError, match="no handler for timer 'nowhere'"):
            await harness.phone(PHONE).send("hi")


async def test_timers_are_due_at_clock_time(tmp_path, database):
    clock = FakeClock()
    async with Harness([reminder_bot()], TEMPLATES, clock=clock, db=database) as harness:
        await harness.phone(PHONE).send("book")
        (thread,) = await harness.runtime.store.db.fetchall("SELECT id FROM threads")
        pending = await harness.runtime.store.timers.pending(thread[0])
        assert [(t.name, t.due_at - clock()) for t in pending] == [
            ("nudge", timedelta(minutes=30)),
            ("expire", timedelta(hours=2)),
        ]


async def test_a_timer_due_while_other_handsets_keep_the_dispatcher_busy_fires(database):
    # While busy, the dispatcher claims timers every TIMERS_EVERY seconds, not every round.
    async with Harness([reminder_bot()], TEMPLATES, db=database) as harness:
        phone = harness.phone(PHONE)
        await phone.send("book")
        others = [harness.phone(f"+614000002{n:02}") for n in range(60)]
        await asyncio.gather(harness.advance(minutes=30), *(other.send("done") for other in others))
        assert "Still there? Reply OK to confirm your booking." in await texts(phone)
        assert all(other.replies for other in others)
