"""Handling MOs: handler failures, per-handset order, thread lifecycle."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from conftest import eventually, rows, running

from botkit import Bot, Context, Settings, create_app
from botkit.db import Database, Tx, is_url
from botkit.intake import (
    BUSY,
    BUSY_STARTS,
    CATCH_UP,
    FLOOD_SECONDS,
    FLOODED,
    HOLD_SECONDS,
    WINDOW_SECONDS,
    Intake,
)
from botkit.messages import IncomingMO, Message
from botkit.migrations import migrate
from botkit.store import Store

pytestmark = pytest.mark.backends

PHONE = "+61400000001"


async def test_handler_that_raises_marks_mo_failed_and_leaves_thread_as_it_was(settings, caplog):
    bot = Bot("counter")

    @bot.keyword("COUNT")
    async def count(ctx: Context) -> None:
        ctx.data["n"] = ctx.data.get("n", 0) + 1
        ctx.reply(f"count {ctx.data['n']}")
        if ctx.text.endswith("boom"):
            ctx.state = None
            raise RuntimeError("the bot broke")

    async with running(create_app(settings, bots=[bot])) as app:
        sim = app.state.simulator
        await sim.send_mo(PHONE, "count")
        await eventually(lambda: len(sim.inbox(PHONE)) == 1)
        boom = await sim.send_mo(PHONE, "count boom")
        assert boom.answer == 200  # a handler's failure is never the gateway's problem
        await eventually(
            lambda: (
                rows(settings.db, "SELECT status FROM messages WHERE gateway_id = ?", (boom.id,))[
                    0
                ][0]
                == "failed"
            )
        )
        await eventually(lambda: len(sim.inbox(PHONE)) == 2)  # the apology
        await sim.send_mo(PHONE, "count")
        await eventually(lambda: len(sim.inbox(PHONE)) == 3)

    apology = "this service: sorry, something went wrong on our side"
    assert [m.content[: len(apology)] for m in sim.inbox(PHONE)] == ["count 1", apology, "count 2"]
    (failed,) = rows(settings.db, "SELECT * FROM messages WHERE gateway_id = ?", (boom.id,))
    assert failed["error"] == "RuntimeError: the bot broke"
    assert failed["thread_id"] is not None
    (thread,) = rows(settings.db, "SELECT * FROM threads")
    assert json.loads(thread["data"]) == {"n": 2}
    (said,) = rows(settings.db, "SELECT * FROM messages WHERE template = 'errors/failed.txt'")
    assert said["thread_id"] == failed["thread_id"]
    assert str(boom.id) in caplog.text and "the bot broke" in caplog.text


def broken_bot() -> Bot:
    """A bot whose every handler raises."""
    bot = Bot("broken")

    @bot.fallback
    async def broken(ctx: Context) -> None:
        raise LookupError("no such appointment")

    return bot


def with_apology(settings: Settings, tmp_path: Path, text: str) -> Settings:
    """`settings` with a templates folder whose errors/failed.txt is `text`."""
    (tmp_path / "tpl" / "errors").mkdir(parents=True)
    (tmp_path / "tpl" / "errors" / "failed.txt").write_text(text)
    return dataclasses.replace(settings, templates=str(tmp_path / "tpl"))


async def test_the_apology_for_a_failure_comes_from_its_template_or_not_at_all(settings, tmp_path):
    bot = broken_bot()
    ours = with_apology(settings, tmp_path, "Oops & sorry, {{ sender }}\n")
    ours = dataclasses.replace(ours, sender_name="Dr <Tan>")
    async with running(create_app(ours, bots=[bot])) as app:
        sim = app.state.simulator
        await sim.send_mo(PHONE, "hello")
        (said,) = await eventually(lambda: sim.inbox(PHONE))
    assert said.content == "Oops & sorry, Dr <Tan>"  # an SMS template: never HTML-escaped
    (thread,) = rows(settings.db, "SELECT bot, status FROM threads")  # a new thread: closed
    assert (thread["bot"], thread["status"]) == ("broken", "closed")

    other = "+61400000002"
    quiet = dataclasses.replace(ours, failed_reply=False)
    async with running(create_app(quiet, bots=[bot])) as app:
        mo = await app.state.simulator.send_mo(other, "hello")
        await eventually(
            lambda: (
                rows(settings.db, "SELECT * FROM messages WHERE gateway_id = ?", (mo.id,))[0][
                    "status"
                ]
                == "failed"
            )
        )
    assert (
        rows(settings.db, "SELECT * FROM messages WHERE handset = ? AND direction = 'mt'", (other,))
        == []
    )
    assert rows(settings.db, "SELECT * FROM threads WHERE handset = ?", (other,)) == []


async def test_data_that_is_not_json_fails_the_mo(settings):
    bot = Bot("bad")

    @bot.fallback
    async def keep_a_set(ctx: Context) -> None:
        ctx.data["tags"] = {"a", "b"}
        ctx.reply("noted")

    async with running(create_app(settings, bots=[bot])) as app:
        mo = await app.state.simulator.send_mo(PHONE, "anything")
        (failed,) = await eventually(
            lambda: rows(
                settings.db,
                "SELECT * FROM messages WHERE gateway_id = ? AND status = 'failed'",
                (mo.id,),
            )
        )
    assert "not JSON-safe" in failed["error"]
    # Not "noted": only the apology, in a new thread holding none of the handler's data.
    (mt,) = rows(settings.db, "SELECT * FROM messages WHERE direction = 'mt'")
    assert mt["template"] == "errors/failed.txt"
    (thread,) = rows(settings.db, "SELECT * FROM threads")
    assert (json.loads(thread["data"]), thread["status"]) == ({}, "closed")


async def test_one_handset_at_a_time_in_arrival_order_handsets_concurrently(
    settings, client_for, monkeypatch
):
    # An MO that waits behind its handset's is claimed as that one is handled, not by
    # the loop's claim now and then, which would be too late here.
    monkeypatch.setattr("botkit.dispatcher.POLL_SECONDS", 3600.0)
    seen: list[tuple[str, str]] = []
    busy: dict[str, int] = {}
    overlap = {"same": 0, "across": 0}

    bot = Bot("slow")

    @bot.fallback
    async def slow(ctx: Context) -> None:
        handset = ctx.message.source
        busy[handset] = busy.get(handset, 0) + 1
        overlap["same"] = max(overlap["same"], busy[handset])
        overlap["across"] = max(overlap["across"], sum(1 for v in busy.values() if v))
        await asyncio.sleep(0.01)
        seen.append((handset, ctx.text))
        busy[handset] -= 1

    phones = [f"+6140000010{i}" for i in range(4)]
    async with running(create_app(settings, bots=[bot])) as app, client_for(app) as client:

        async def texting(phone: str, texts: list[str]) -> None:
            """One handset: each MO sent once the last was answered, so their order
            of arrival is known; the handler is slow, so they queue up behind it."""
            for text in texts:
                params = {"id": f"{1000 + int(text[1:])}", "source": phone,
                          "destination": "4433", "content": text}  # fmt: skip
                answer = await client.get("/callbacks/test-token/mo", params=params)
                assert answer.status_code == 200

        sent = {phone: [f"m{n}" for n in range(i, 40, 4)] for i, phone in enumerate(phones)}
        await asyncio.gather(*(texting(phone, texts) for phone, texts in sent.items()))
        await eventually(lambda: len(seen) == 40)

    assert overlap["same"] == 1
    assert overlap["across"] > 1
    for phone, texts in sent.items():  # in the order the handset sent them
        assert [text for who, text in seen if who == phone] == texts


async def test_end_closes_thread_and_next_message_starts_a_new_one(settings):
    bot = Bot("once")

    @bot.keyword("VISIT")
    async def start(ctx: Context) -> None:
        ctx.data["visits"] = ctx.data.get("visits", 0) + 1
        ctx.reply(f"visit {ctx.data['visits']}")
        ctx.end()

    async with running(create_app(settings, bots=[bot])) as app:
        sim = app.state.simulator
        await sim.send_mo(PHONE, "visit")
        await eventually(lambda: len(sim.inbox(PHONE)) == 1)
        await sim.send_mo(PHONE, "visit")
        await eventually(lambda: len(sim.inbox(PHONE)) == 2)

    assert [m.content for m in sim.inbox(PHONE)] == ["visit 1", "visit 1"]
    threads = rows(settings.db, "SELECT status, closed_at FROM threads ORDER BY id")
    assert [t["status"] for t in threads] == ["closed", "closed"]
    assert all(t["closed_at"] for t in threads)


async def test_keyword_of_another_bot_leaves_the_open_thread_as_it_was(settings):
    quiz, shop = Bot("quiz"), Bot("shop")

    @quiz.keyword("QUIZ")
    async def ask(ctx: Context) -> None:
        ctx.reply("2+2?")
        ctx.state = "answer"

    @quiz.state("answer")
    async def answer(ctx: Context) -> None:
        ctx.reply("right" if ctx.text.strip() == "4" else "wrong")
        ctx.state = None

    @shop.keyword("SHOP")
    async def shop_open(ctx: Context) -> None:
        ctx.reply("shop is open")

    async with running(create_app(settings, bots=[quiz, shop])) as app:
        sim = app.state.simulator
        for text, count in (("quiz", 1), ("4", 2), ("shop", 3)):
            await sim.send_mo(PHONE, text)
            await eventually(lambda c=count: len(sim.inbox(PHONE)) == c)

    assert [m.content for m in sim.inbox(PHONE)] == ["2+2?", "right", "shop is open"]
    threads = rows(settings.db, "SELECT bot, status FROM threads ORDER BY id")
    assert [(t["bot"], t["status"]) for t in threads] == [("quiz", "open"), ("shop", "open")]


async def test_reply_to_finds_the_thread_of_the_answered_mt(settings):
    bot = Bot("echo")

    @bot.fallback
    async def echo(ctx: Context) -> None:
        ctx.data.setdefault("seen", []).append(ctx.text)
        ctx.reply(f"thread has {len(ctx.data['seen'])}")

    async with running(create_app(settings, bots=[bot])) as app:
        sim = app.state.simulator
        sim.number_sequence = True  # an account with one: replies name the MT they answer
        await sim.send_mo(PHONE, "one")
        (first,) = await eventually(lambda: sim.inbox(PHONE))
        mo = await sim.send_mo(PHONE, "two", reply_to=first.id)
        await eventually(lambda: len(sim.inbox(PHONE)) == 2)

    assert mo.reply_to == first.id and mo.reference == first.reference
    (stored,) = rows(settings.db, "SELECT * FROM messages WHERE gateway_id = ?", (mo.id,))
    assert stored["reply_to"] == first.id
    assert len(rows(settings.db, "SELECT * FROM threads")) == 1
    assert sim.inbox(PHONE)[1].content == "thread has 2"


async def test_a_broken_apology_is_said_at_start_and_the_mo_keeps_its_own_error(
    settings, tmp_path, caplog
):
    ours = with_apology(settings, tmp_path, "{{ nope }} sorry\n")
    async with running(create_app(ours, bots=[broken_bot()])) as app:
        assert "errors/failed.txt, line 1: 'nope' is undefined" in caplog.text  # at start
        mo = await app.state.simulator.send_mo(PHONE, "hello")
        (failed,) = await eventually(
            lambda: rows(
                settings.db,
                "SELECT * FROM messages WHERE gateway_id = ? AND status = 'failed'",
                (mo.id,),
            )
        )
    assert failed["error"] == "LookupError: no such appointment"
    assert rows(settings.db, "SELECT * FROM messages WHERE direction = 'mt'") == []


async def test_while_callbacks_wait_to_be_stored_mos_are_taken_on_as_fast_as_they_arrive(settings):
    """MO callbacks come first (botkit/intake.py): while many wait for their commit the
    dispatcher takes on, in each WINDOW_SECONDS, as many MOs as callbacks arrived, a
    CATCH_UP more for each, and BUSY_STARTS more, so a backlog is caught up a little at
    a time; handlers already running go on, and once the callbacks ease it takes on
    every MO at once again."""
    tickets = asyncio.Semaphore(0)  # one handler goes on per ticket the test gives
    inside: set[str] = set()

    bot = Bot("slow")

    @bot.fallback
    async def slow(ctx: Context) -> None:
        inside.add(ctx.message.source)
        await tickets.acquire()  # as a handler waiting on another service does
        inside.discard(ctx.message.source)
        ctx.reply("done")

    now = [0.0]
    # The dispatcher's alone, and time moves only when the test says: the simulator's
    # MOs, not counted as arriving, are a backlog to it.
    intake = Intake(clock=lambda: now[0])
    phones = [f"+614000002{i:02}" for i in range(22)]
    async with running(create_app(settings, bots=[bot])) as app:
        sim = app.state.simulator
        app.state.runtime.dispatcher.intake = intake
        with contextlib.ExitStack() as waiting:
            for _ in range(BUSY):  # as many callbacks as make it busy, waiting
                waiting.enter_context(intake.storing())
            now[0] += WINDOW_SECONDS  # they arrived a while ago: none arrives now
            for phone in phones[:14]:
                await sim.send_mo(phone, "hello")
            await eventually(lambda: len(inside) == BUSY_STARTS)
            now[0] += WINDOW_SECONDS
            await eventually(lambda: len(inside) == 2 * BUSY_STARTS)
            for _ in range(4):  # four callbacks arrive in this window: five more
                waiting.enter_context(intake.storing())
            assert int(4 * (1 + CATCH_UP)) == 5
            await eventually(lambda: len(inside) == 2 * BUSY_STARTS + 5)
            now[0] += WINDOW_SECONDS
            await eventually(lambda: len(inside) == 14)
        now[0] += HOLD_SECONDS  # the callbacks eased a while ago
        assert intake.waiting == 0

        for phone in phones[14:]:  # every one taken on at once
            await sim.send_mo(phone, "hello")
        await eventually(lambda: len(inside) == 22)
        for _ in range(22):
            tickets.release()
        await eventually(lambda: all(sim.inbox(phone) for phone in phones))


def test_callbacks_stay_busy_for_a_moment_after_they_ease():
    """While BUSY callbacks wait, and for HOLD_SECONDS after the last moment they did,
    the dispatcher may take on in each WINDOW_SECONDS as many MOs or timers as callbacks
    arrived in it, a CATCH_UP more for each, and BUSY_STARTS more; while FLOODED or
    more have waited on average for about FLOOD_SECONDS, BUSY_STARTS."""
    now = [100.0]
    intake = Intake(clock=lambda: now[0])
    assert intake.room() == (None, 0.0)
    with contextlib.ExitStack() as waiting:
        for _ in range(BUSY - 1):
            waiting.enter_context(intake.storing())
        assert intake.room() == (None, 0.0)  # one short of busy
        with intake.storing():
            keeping_pace = BUSY_STARTS + int(BUSY * (1 + CATCH_UP))
            assert intake.room() == (keeping_pace, 0.0)
            now[0] += 1.0  # BUSY wait a long while: busy all along, none arriving
            assert intake.room() == (BUSY_STARTS, 0.0)
            with contextlib.ExitStack() as flood:
                for _ in range(2 * FLOODED - BUSY):
                    flood.enter_context(intake.storing())
                # A burst is no flood: they are kept pace with.
                burst = int((2 * FLOODED - BUSY) * (1 + CATCH_UP))
                assert intake.room() == (BUSY_STARTS + burst, 0.0)
                now[0] += FLOOD_SECONDS  # but they keep waiting: a flood
                for _ in range(BUSY):  # and what arrives in a flood adds no room
                    flood.enter_context(intake.storing())
                assert intake.room() == (BUSY_STARTS, 0.0)
            now[0] += FLOOD_SECONDS  # stored: BUSY wait again, the flood is over
            with contextlib.ExitStack() as arriving:
                for _ in range(BUSY):
                    arriving.enter_context(intake.storing())
                assert intake.room() == (BUSY_STARTS + int(BUSY * (1 + CATCH_UP)), 0.0)
        now[0] += HOLD_SECONDS / 2  # all stored: fewer than BUSY wait, still busy
        intake.started(BUSY_STARTS)
        assert intake.room() == (0, pytest.approx(HOLD_SECONDS / 2))
        now[0] += WINDOW_SECONDS / 2
        intake.started(1)  # a timer, say
        assert intake.room() == (0, pytest.approx(HOLD_SECONDS / 4))
        with intake.storing(), intake.storing():  # two arrive: room for one more
            assert intake.room() == (1, 0.0)
        assert intake.room() == (1, 0.0)  # as long as they are in the window
    now[0] += HOLD_SECONDS
    assert intake.room() == (None, 0.0)
    assert intake.waiting == 0


async def test_an_mo_is_claimed_as_it_is_stored_only_when_its_handset_has_nothing_else(settings):
    if is_url(settings.db):
        pytest.skip("SQLite's only: PostgreSQL's processes claim from the inbox (test_inbox.py)")
    db = await Database.open(settings.db)
    await migrate(db)
    store = Store(db)

    def mo(gateway_id: int, source: str = PHONE) -> IncomingMO:
        return IncomingMO(gateway_id=gateway_id, source=source, destination="4433", content="x")

    try:
        message_id, claimed = await store.inbox.add_claimed(mo(1), lease=60)
        assert claimed is not None and (claimed.id, claimed.text) == (message_id, "x")
        (row,) = rows(settings.db, "SELECT claimed_by, attempts FROM inbox")
        assert tuple(row) == (store.owner, 1)
        # Its handset's next MO waits its turn behind it, and a duplicate is no MO.
        message_id, claimed = await store.inbox.add_claimed(mo(2), lease=60)
        assert message_id is not None and claimed is None
        assert await store.inbox.add_claimed(mo(2), lease=60) == (None, None)
        # Another handset's goes at once; one with a timer under way waits for it.
        assert (await store.inbox.add_claimed(mo(3, "+61400000002"), lease=60))[1] is not None

        async def timer_under_way(tx: Tx) -> None:
            await tx.execute(
                """INSERT INTO threads (id, bot, handset, address, created_at, updated_at)
                   VALUES (9, 'b', '+61400000003', '4433', '2000', '2000')"""
            )
            await tx.execute(
                """INSERT INTO timers (thread_id, handset, name, due_at, claimed_until,
                       created_at) VALUES (9, '+61400000003', 't', '2000', '9999', '2000')"""
            )

        await db.write(timer_under_way)
        assert (await store.inbox.add_claimed(mo(4, "+61400000003"), lease=60))[1] is None
    finally:
        await db.close()


def mo_from(gateway_id: int, source: str = PHONE) -> IncomingMO:
    return IncomingMO(gateway_id=gateway_id, source=source, destination="4433", content="x")


async def test_a_handset_the_loop_claims_as_its_next_mo_is_stored_stays_busy(settings):
    """Regression: the loop claimed MO 1 while the callback of MO 2 (same handset) was
    storing it; MO 2 was stored unclaimed, and giving its handset back to the loop
    marked the handset free while MO 1 was being handled."""
    if is_url(settings.db):
        pytest.skip("one process only: PostgreSQL's processes claim from the inbox")
    started, release = asyncio.Event(), asyncio.Event()
    bot = Bot("slow")

    @bot.fallback
    async def slow(ctx: Context) -> None:
        started.set()
        await release.wait()

    async with running(create_app(settings, bots=[bot])) as app:
        dispatcher, inbox = app.state.runtime.dispatcher, app.state.runtime.store.inbox
        await inbox.add(mo_from(1))  # waits for the loop's next round
        claiming, claim = asyncio.Event(), inbox.claim

        async def claim_noted(*args: Any, **kwargs: Any) -> list[Message]:
            claiming.set()
            return await claim(*args, **kwargs)

        inbox.claim = claim_noted  # type: ignore[method-assign]
        dispatcher.wake()
        await claiming.wait()  # the loop's claim is queued, the handset not busy yet
        assert await dispatcher.store_mo(mo_from(2)) is not None
        await started.wait()
        assert PHONE in dispatcher._busy()  # while MO 1 is handled
        release.set()
        await eventually(
            lambda: (
                [r[0] for r in rows(settings.db, "SELECT status FROM messages")]
                == ["handled", "handled"]
            )
        )


async def test_a_stopping_dispatcher_takes_on_no_mo_as_it_is_stored(settings):
    async with running(create_app(settings)) as app:
        dispatcher = app.state.runtime.dispatcher
        await dispatcher.stop()
        assert await dispatcher.store_mo(mo_from(1)) is not None
        (row,) = rows(settings.db, "SELECT claimed_by FROM inbox")
        assert row[0] is None  # left for the next start's loop
