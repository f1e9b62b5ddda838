"""The conversation model as bot authors meet it, through botkit.testing: interrupting
keywords, conversations with different bots side by side, idle threads, on_end hooks,
timers at a time of day in a time zone, and the apology after a failure."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from conftest import ROOT

from botkit import Bot, Context, Question, Survey
from botkit.testing import FakeClock, Harness

pytestmark = pytest.mark.backends

TEMPLATES = ROOT / "templates"
PHONE = "+61400000001"


def booking_and_promotions(ended: list[tuple[str, str]]) -> list[Bot]:
    """A booking bot (BOOK asks for a day, RESCHEDULE interrupts, a reminder timer, a
    survey) and a promotions bot with a plain keyword; on_end records each ending."""
    booking, promos = Bot("booking"), Bot("promos")

    @booking.keyword("BOOK")
    async def book(ctx: Context) -> None:
        ctx.reply("Which day?")
        ctx.state = "ask_day"

    @booking.keyword("RESCHEDULE", interrupts=True)
    async def reschedule(ctx: Context) -> None:
        ctx.cancel("remind")
        ctx.data.pop("day", None)
        ctx.reply("Which day instead?")
        ctx.state = "ask_day"

    @booking.state("ask_day")
    async def ask_day(ctx: Context) -> None:
        ctx.data["day"] = ctx.text
        ctx.state = None
        ctx.schedule("remind", hours=1)
        ctx.reply(f"Booked for {ctx.text}")

    @booking.timer("remind")
    async def remind(ctx: Context) -> None:
        ctx.reply(f"Reminder: {ctx.data['day']}")

    @booking.keyword("DONE", interrupts=True)
    async def done(ctx: Context) -> None:
        ctx.reply("Bye")
        ctx.end()

    @booking.on_end
    async def booking_ended(ctx: Context) -> None:
        ended.append(("booking", ctx.end_reason))
        ctx.data["ended"] = ctx.end_reason
        ctx.reply("Your booking is closed.")

    Survey("csat", [Question.rating("rating", "Rate us 1 to 5")], closing="Thanks").attach(
        booking, keyword="RATE"
    )

    @promos.keyword("DEALS")
    async def deals(ctx: Context) -> None:
        ctx.reply("Deals: reply YES")
        ctx.state = "confirm"

    @promos.state("confirm")
    async def confirm(ctx: Context) -> None:
        ctx.reply("Subscribed" if ctx.text.upper() == "YES" else "Not subscribed")
        ctx.state = None

    @promos.on_end
    async def promos_ended(ctx: Context) -> None:
        ended.append(("promos", ctx.end_reason))

    return [booking, promos]


async def threads_of(harness: Harness) -> list[tuple[str, str, str | None]]:
    rows = await harness.runtime.store.db.fetchall(
        "SELECT bot, status, state FROM threads WHERE bot != 'compliance' ORDER BY id"
    )
    return [(row["bot"], row["status"], row["state"]) for row in rows]


async def test_an_interrupting_keyword_beats_a_state_and_a_survey_question(database):
    async with Harness(booking_and_promotions([]), TEMPLATES, db=database) as harness:
        phone = harness.phone(PHONE)
        await phone.send("BOOK")
        await phone.send("reschedule")  # in the middle of a booking
        phone.expect("Which day instead?")
        await phone.send("Sunday")
        await phone.send("RATE")  # a plain keyword: the thread waits for nothing now
        phone.expect("Rate us 1 to 5")
        await phone.send("RESCHEDULE please")  # in the middle of the survey's question
        phone.expect("Which day instead?")
        await phone.send("Monday")
        phone.expect("Booked for Monday")
        assert await threads_of(harness) == [("booking", "open", None)]


async def test_a_keyword_of_another_bot_leaves_the_conversation_and_its_timer(database):
    async with Harness(booking_and_promotions([]), TEMPLATES, db=database) as harness:
        phone = harness.phone(PHONE)
        await phone.send("BOOK")
        await phone.send("Friday")
        await phone.send("DEALS")  # the promotions bot: a conversation of its own
        await phone.send("yes")  # the most recently active conversation takes it
        phone.expect("Subscribed")
        assert await threads_of(harness) == [
            ("booking", "open", None),
            ("promos", "open", None),
        ]
        await harness.advance(hours=1)
        phone.expect("Reminder: Friday")  # the booking's timer was never cancelled
        booking = await harness.runtime.store.threads.get(phone.last.thread_id)
        assert booking.data == {"day": "Friday"}


async def test_a_keyword_goes_to_its_bots_open_thread_and_a_state_waits(database):
    async with Harness(booking_and_promotions([]), TEMPLATES, db=database) as harness:
        phone = harness.phone(PHONE)
        await phone.send("DEALS")
        await phone.send("BOOK")  # a state does not hold a keyword of another bot? it does
        phone.expect("Not subscribed")  # promos waited for an answer: BOOK was it
        await phone.send("BOOK")
        await phone.send("Tuesday")
        await phone.send("DEALS")  # back to promos' own thread, not a new one
        phone.expect("Deals: reply YES")
        rows = await threads_of(harness)
        assert rows == [("promos", "open", "confirm"), ("booking", "open", None)]


async def test_an_idle_thread_stops_catching_messages_but_its_timers_fire(database):
    bot = Bot("chat")

    @bot.keyword("HI")
    async def hi(ctx: Context) -> None:
        ctx.data["n"] = 0
        ctx.schedule("later", days=10)
        ctx.reply("hi")

    @bot.fallback
    async def anything(ctx: Context) -> None:
        ctx.data["n"] = ctx.data.get("n", 0) + 1
        ctx.reply(f"message {ctx.data['n']} of this conversation")

    @bot.timer("later")
    async def later(ctx: Context) -> None:
        ctx.reply("ten days on")

    async with Harness([bot], TEMPLATES, db=database, thread_idle_days=2) as harness:
        phone = harness.phone(PHONE)
        await phone.send("HI")
        await phone.send("one")
        phone.expect("message 1 of this conversation")
        await harness.advance(days=3)
        await phone.send("two")  # quiet for 3 days: a new conversation
        phone.expect("message 1 of this conversation")
        await harness.advance(days=7)
        phone.expect("ten days on")  # in the first, idle thread
        first, second = (await threads_of(harness))[:2]
        assert first == second == ("chat", "open", None)


async def test_on_end_runs_once_with_each_reason(database):
    ended: list[tuple[str, str]] = []
    async with Harness(booking_and_promotions(ended), TEMPLATES, db=database) as harness:
        phone = harness.phone(PHONE)
        await phone.send("BOOK")
        await phone.send("DONE")
        phone.expect("Your booking is closed.")
        assert ended == [("booking", "ended")]

        await phone.send("BOOK")
        await phone.send("Friday")
        await phone.send("DEALS")
        thread_id = phone.last.thread_id
        closed = await harness.runtime.store.takeover.close(
            thread_id, harness.runtime.router.on_end
        )
        assert closed
        await harness.settle()
        assert ended[-1] == ("promos", "operator")

        await phone.send("STOP")
        assert ended[-1] == ("booking", "opted_out")
        assert len(ended) == 3  # each once
        # The hook's reply to a handset that opted out is refused, never sent.
        phone.expect("unsubscribed")
        refused = await harness.runtime.store.db.fetchall(
            "SELECT status FROM messages WHERE content = 'Your booking is closed.' ORDER BY id"
        )
        assert [row["status"] for row in refused][-1] == "refused"
        booking = await harness.runtime.store.db.fetchval(
            "SELECT data FROM threads WHERE bot = 'booking' ORDER BY id DESC LIMIT 1"
        )
        assert '"ended":"opted_out"' in booking  # the hook's data was kept
        reasons = await harness.runtime.store.db.fetchall(
            "SELECT bot, end_reason FROM threads WHERE bot != 'compliance' ORDER BY id"
        )
        assert [(row["bot"], row["end_reason"]) for row in reasons] == [
            ("booking", "ended"),
            ("booking", "opted_out"),
            ("promos", "operator"),
        ]


async def test_a_survey_that_expires_ends_with_reason_expired(database):
    ended: list[tuple[str, str]] = []
    bot = Bot("feedback")
    Survey("csat", [Question.rating("rating", "Rate us 1 to 5")], expiry=timedelta(hours=2)).attach(
        bot, keyword="RATE"
    )

    @bot.on_end
    async def on_end(ctx: Context) -> None:
        ended.append(("feedback", ctx.end_reason))

    async with Harness([bot], TEMPLATES, db=database) as harness:
        phone = harness.phone(PHONE)
        await phone.send("RATE")
        await harness.advance(hours=2)
        assert ended == [("feedback", "expired")]
        assert (await phone.thread()).end_reason == "expired"


async def test_a_failing_on_end_hook_never_holds_up_a_stop(database):
    bot = Bot("fragile")

    @bot.keyword("GO")
    async def go(ctx: Context) -> None:
        ctx.reply("going")

    @bot.on_end
    async def broken(ctx: Context) -> None:
        raise RuntimeError("hook bug")

    async with Harness([bot], TEMPLATES, db=database, raise_errors=False) as harness:
        phone = harness.phone(PHONE)
        await phone.send("GO")
        await phone.send("STOP")
        phone.expect("unsubscribed")
        assert await harness.runtime.store.consent.suppressed(PHONE, "4433")
        error = await harness.runtime.store.db.fetchval(
            "SELECT error FROM timers WHERE name = 'botkit:end'"
        )
        assert error == "RuntimeError: hook bug"


def clinic_bot() -> Bot:
    bot = Bot("clinic", timezone="Australia/Sydney")

    @bot.keyword("BOOK")
    async def book(ctx: Context) -> None:
        visit = datetime(2026, 4, 6, 14, 30)  # naive: Sydney time
        ctx.schedule("day_before", at=(visit - timedelta(days=1)).replace(hour=9, minute=0))
        ctx.schedule("already", at=datetime(2020, 1, 1, tzinfo=UTC))
        ctx.schedule("now", seconds=0)
        ctx.reply(f"Booked at {ctx.now():%H:%M %Z}")

    for name in ("day_before", "already", "now"):

        @bot.timer(name)
        async def fire(ctx: Context, name: str = name) -> None:
            ctx.reply(f"{ctx.timer.name} at {ctx.now().isoformat()}")

    return bot


async def test_a_timer_at_a_time_of_day_in_the_bots_zone(database):
    # 2026-04-04 22:00 UTC is Sunday 5 April, 09:00 in Sydney, on the day daylight saving
    # ends; the reminder, Sunday 9:00 AEST (+10:00), is 2026-04-04T23:00Z.
    clock = FakeClock(datetime(2026, 4, 4, 12, 0, tzinfo=UTC))
    async with Harness([clinic_bot()], TEMPLATES, clock=clock, db=database) as harness:
        phone = harness.phone(PHONE)
        replies = await phone.send("BOOK")
        assert replies[0].text == "Booked at 23:00 AEDT"  # ctx.now() is in the bot's zone
        # A time already past and a zero delay fire at once, not an error.
        assert sorted(reply.text.split(" at ")[0] for reply in replies[1:]) == ["already", "now"]
        timers = await harness.runtime.store.timers.pending(replies[0].thread_id)
        (due,) = [timer.due_at for timer in timers]
        assert due == datetime(2026, 4, 5, 23, 0, tzinfo=UTC) - timedelta(days=1)
        await harness.advance(hours=10, minutes=59)
        assert phone.last.text.split(" at ")[0] == "now"
        await harness.advance(minutes=1)
        phone.expect("day_before at 2026-04-05T09:00:00+10:00")


async def test_the_zone_of_a_bot_without_its_own_is_the_setting(database):
    bot = Bot("plain")

    @bot.keyword("WHEN")
    async def when(ctx: Context) -> None:
        ctx.reply(ctx.now().isoformat())

    clock = FakeClock(datetime(2026, 7, 1, 0, 0, tzinfo=UTC))
    async with Harness(
        [bot], TEMPLATES, clock=clock, db=database, timezone="Pacific/Auckland"
    ) as h:
        (reply,) = await h.phone(PHONE).send("WHEN")
        assert reply.text == "2026-07-01T12:00:00+12:00"


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({}, "give either at= or a delay"),
        ({"at": datetime(2026, 1, 1), "minutes": 5}, "give either at= or a delay"),
        ({"at": "tomorrow"}, "is not a datetime"),
        ({"at": datetime(9999, 12, 31, 20, tzinfo=UTC)}, "more than a century away"),
        ({"days": 40_000}, "more than a century away"),
    ],
)
async def test_a_timer_needs_one_time(database, kwargs, error):
    bot = Bot("bad")

    @bot.keyword("GO")
    async def go(ctx: Context) -> None:
        ctx.schedule("t", **kwargs)

    @bot.timer("t")
    async def t(ctx: Context) -> None:
        pass

    async with Harness([bot], TEMPLATES, db=database) as harness:
        with pytest.raises(Exception, match=error):
            await harness.phone(PHONE).send("GO")


def test_a_bot_refuses_an_unknown_zone_and_botkits_timer_names():
    with pytest.raises(ValueError, match="Mars/Olympus"):
        Bot("x", timezone="Mars/Olympus")
    with pytest.raises(ValueError, match="botkit"):
        Bot("x").timer("botkit:end")
    bot = Bot("x")

    @bot.on_end
    async def once(ctx: Context) -> None:
        pass

    with pytest.raises(ValueError, match="one on_end"):
        bot.on_end(once)


async def test_an_opt_in_and_a_survey_keyword_can_interrupt_a_question(database):
    from botkit import DoubleOptIn

    booking = booking_and_promotions([])[0]
    news = Bot("news")
    DoubleOptIn(
        list="news", keyword="NEWS", confirm="Reply YES", welcome="In", already="Already",
        declined="Out", expired="Lapsed", interrupts=True,
    ).attach(news)  # fmt: skip
    poll = Bot("poll")
    Survey("poll", [Question.yes_no("likes", "Do you like us?")]).attach(
        poll, keyword="POLL", interrupts=True
    )
    async with Harness([booking, news, poll], TEMPLATES, db=database) as harness:
        phone = harness.phone(PHONE)
        await phone.send("BOOK")  # the booking waits for a day
        await phone.send("NEWS")
        phone.expect("Reply YES")
        await phone.send("YES")
        phone.expect("In")
        await phone.send("BOOK")
        await phone.send("POLL")
        phone.expect("Do you like us?")
        assert [row[2] for row in await threads_of(harness)] == ["ask_day", None, "survey:poll"]


async def test_a_phone_tells_its_conversations_and_their_timers(database):
    async with Harness(booking_and_promotions([]), TEMPLATES, db=database) as harness:
        phone = harness.phone(PHONE)
        await phone.send("BOOK")
        await phone.send("Friday")
        await phone.send("DEALS")
        assert (await phone.thread()).bot == "promos"
        assert (await phone.thread("booking")).data == {"day": "Friday"}
        (remind,) = await phone.timers("booking")
        assert (remind.name, remind.due_at) == ("remind", harness.clock.now + timedelta(hours=1))
        assert await phone.timers() == []  # promos has none
        await phone.send("STOP")  # answered in a conversation of its own, left out
        assert (await phone.thread()).bot == "promos"
        assert (await phone.thread("compliance")).status == "closed"
        assert await phone.timers("booking") == []  # STOP ended it


async def test_a_handler_finishing_after_an_operator_ended_its_thread_leaves_it_ended(database):
    started, go_on = asyncio.Event(), asyncio.Event()
    ended: list[str] = []
    bot = Bot("slow")

    @bot.keyword("STAY")
    async def stay(ctx: Context) -> None:
        ctx.state = "waiting"

    @bot.keyword("SLOW", interrupts=True)
    async def slow(ctx: Context) -> None:
        started.set()
        await go_on.wait()
        ctx.schedule("nag", minutes=5)
        ctx.reply("still here")
        ctx.state = "waiting"

    @bot.state("waiting")
    async def waiting(ctx: Context) -> None:
        pass

    @bot.timer("nag")
    async def nag(ctx: Context) -> None:
        ctx.reply("nag")

    @bot.on_end
    async def on_end(ctx: Context) -> None:
        ended.append(ctx.end_reason)

    async with Harness([bot], TEMPLATES, db=database) as harness:
        phone = harness.phone(PHONE)
        await phone.send("STAY")
        thread = await phone.thread()
        await harness.simulator.send_mo(PHONE, "SLOW")  # stored; its handler runs on
        async with asyncio.timeout(30):
            await started.wait()
        assert await harness.runtime.store.takeover.close(thread.id, harness.runtime.router.on_end)
        go_on.set()
        await harness.settle()
        after = await phone.thread()
        assert (after.status, after.state, after.end_reason) == ("closed", None, "operator")
        assert await phone.timers() == []
        assert ended == ["operator"]
        await harness.advance(minutes=10)
        assert phone.replies == []  # neither "still here" nor "nag"
