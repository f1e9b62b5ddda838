"""botkit.testing itself: errors surface in the test, DLRs and the clock are the test's."""

from __future__ import annotations

import pytest
from conftest import ROOT

from botkit import Bot, Context
from botkit.testing import FakeClock, Harness

pytestmark = pytest.mark.backends

TEMPLATES = ROOT / "templates"


def echo_bot() -> Bot:
    bot = Bot("echo")

    @bot.keyword("BOOM")
    async def boom(ctx: Context) -> None:
        raise ZeroDivisionError("handler bug")

    @bot.fallback
    async def echo(ctx: Context) -> None:
        ctx.data.setdefault("heard", []).append(ctx.text)
        ctx.reply(f"you said {ctx.text}")

    return bot


async def test_a_handler_exception_fails_the_test_with_that_exception(database):
    async with Harness([echo_bot()], TEMPLATES, db=database) as harness:
        with pytest.raises(ZeroDivisionError, match="handler bug"):
            await harness.phone().send("boom")


async def test_raise_errors_off_leaves_the_mo_failed_and_no_reply(database):
    async with Harness([echo_bot()], TEMPLATES, raise_errors=False, db=database) as harness:
        phone = harness.phone()
        assert await phone.send("boom") == []
        status = await harness.runtime.store.db.fetchval(
            "SELECT status FROM messages WHERE direction = 'mo'"
        )
        assert status == "failed"


async def test_a_failed_expectation_shows_the_conversation(database):
    async with Harness([echo_bot()], TEMPLATES, db=database) as harness:
        phone = harness.phone()
        await phone.send("first")
        await phone.send("second")
        with pytest.raises(AssertionError) as failure:
            phone.expect("third")
    message = str(failure.value)
    assert "conversation with +61400000001" in message
    assert "> first\n  < you said first\n  > second\n  < you said second" in message


async def test_reply_to_and_references_reach_the_bot(database):
    async with Harness([echo_bot()], TEMPLATES, db=database) as harness:
        phone = harness.phone()
        (first,) = await phone.send("one")
        await phone.send("two")
        await phone.send("three", reply_to=first)
        assert first.reference.startswith(f"t{first.thread_id}.m")
        assert (await phone.thread()).data == {"heard": ["one", "two", "three"]}


async def test_delivery_reports_are_the_tests_to_send(database):
    async with Harness([echo_bot()], TEMPLATES, db=database) as harness:
        phone = harness.phone()
        (reply,) = await phone.send("hi")
        assert reply.statuses == ()
        await phone.deliver(reply, "submitted")
        await phone.deliver(reply, "failed")
        assert phone.last.statuses == ("submitted", "failed")
        delivery = await harness.runtime.store.db.fetchval(
            "SELECT delivery FROM messages WHERE gateway_id = ?", (reply.id,)
        )
        assert delivery == "failed"


async def test_the_clock_stands_still_until_moved(database):
    clock = FakeClock()
    async with Harness([echo_bot()], TEMPLATES, clock=clock, db=database) as harness:
        start = clock()
        await harness.phone().send("hi")
        assert clock() == start
        await harness.advance(hours=2)
        assert (clock() - start).total_seconds() == 7200
        stamps = await harness.runtime.store.db.fetchall("SELECT created_at FROM messages")
        assert {row[0] for row in stamps} == {"2026-01-05T09:00:00.000000Z"}
    with pytest.raises(ValueError):
        clock.advance(-1)
