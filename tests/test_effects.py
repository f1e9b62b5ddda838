"""Effects of several handlers committed together (`commit_all`, as a batch of handled
MOs is on PostgreSQL): each as it would be alone, whatever the others do, with each
thread's replies numbered in their order. And the reads and statements that batch:
`Tx.fetchmany`, and `Threads.open_for` asked by many at once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from conftest import rows

from botkit.addresses import OurNumbers
from botkit.db import Database
from botkit.messages import ConsentChange, Reply, Thread, Timer
from botkit.migrations import migrate
from botkit.store import Store, schedule
from botkit.store import threads as stored_threads
from botkit.store.effects import Effects, commit_all
from botkit.store.schedule import END_HOOK

pytestmark = pytest.mark.backends

NOW = "2026-12-04T10:00:00.000Z"
NUMBERS = OurNumbers(["4433"], message_class="c")


def reply(text: str, *, exempt: bool = False) -> Reply:
    return Reply(content=text, template=None, encoding="GSM-7", segments=1, exempt=exempt)


def thread(handset: str, **fields: object) -> Thread:
    return Thread(bot="b", handset=handset, address="4433", **fields)  # type: ignore[arg-type]


async def opened(db: Database, handset: str, **fields: object) -> Thread:
    saved = await db.write(lambda tx: stored_threads.save(tx, thread(handset, **fields), NOW))
    assert saved is not None and saved.id is not None
    return saved


async def test_effects_committed_together_are_each_as_alone(database):
    db = await Database.open(database)
    await migrate(db)
    try:
        kept = await opened(db, "+61400000002", state="asked")
        ended = await opened(db, "+61400000003")
        taken = await opened(db, "+61400000004")
        # Since their handlers ran: an operator ended one thread, and took another over.
        await db.write(
            lambda tx: tx.execute("UPDATE threads SET status = 'closed' WHERE id = ?", (ended.id,))
        )
        await db.write(
            lambda tx: tx.execute(
                "UPDATE threads SET paused_by = 'ops@example.org' WHERE id = ?", (taken.id,)
            )
        )
        opt_out = ConsentChange("+61400000005", "4433", "opt-out", "sms", keyword="STOP")
        batch = [
            # A new thread whose replies' statements differ (one is exempt).
            Effects(thread("+61400000001"), [reply("one"), reply("two", exempt=True),
                    reply("three")], numbers=NUMBERS),
            Effects(kept, [reply("again")], numbers=NUMBERS),
            Effects(ended, [reply("too late")], numbers=NUMBERS),
            Effects(taken, [reply("silenced")], numbers=NUMBERS),
            # STOP: opted out, only the exempt confirmation is queued; the other refused.
            Effects(thread("+61400000005", status="closed"),
                    [reply("bye", exempt=True), reply("refused")],
                    consent=[opt_out], numbers=NUMBERS),
            Effects(None),
        ]  # fmt: skip
        done = await db.write(lambda tx: commit_all(tx, batch, NOW))
    finally:
        await db.close()

    (new_id, new_mts), kept_done, ended_done, taken_done, (stop_id, stop_mts), nothing = done
    assert new_id is not None and len(new_mts) == 3 and new_mts == sorted(new_mts)
    assert kept_done[0] == kept.id and len(kept_done[1]) == 1
    assert ended_done == (ended.id, []) and taken_done == (taken.id, [])
    assert stop_id is not None and len(stop_mts) == 2 and nothing == (None, [])
    mts = {
        r["id"]: r for r in rows(database, "SELECT id, content, status, thread_id FROM messages")
    }
    assert [mts[i]["content"] for i in new_mts] == ["one", "two", "three"]
    assert {mts[i]["thread_id"] for i in new_mts} == {new_id}
    assert [(mts[i]["content"], mts[i]["status"]) for i in stop_mts] == [
        ("bye", "queued"),
        ("refused", "refused"),
    ]
    queued = {r["message_id"] for r in rows(database, "SELECT message_id FROM outbox")}
    assert queued == {*new_mts, *kept_done[1], stop_mts[0]}
    state = {r["id"]: r for r in rows(database, "SELECT id, status, state FROM threads")}
    assert state[ended.id]["status"] == "closed"  # left as the operator left it
    assert state[kept.id]["state"] == "asked"


async def test_fetchmany_returns_each_run_s_rows_in_order(database):
    db = await Database.open(database)
    await migrate(db)
    try:
        for name in ("a", "b", "c"):
            await opened(db, f"+6140000001{len(name)}", state=name)
        found = await db.write(
            lambda tx: tx.fetchmany(
                "SELECT state FROM threads WHERE state = ? OR state = ? ORDER BY state",
                [("c", "a"), ("x", "y"), ("b", "b")],
            )
        )
    finally:
        await db.close()

    assert [r["state"] for r in found] == ["a", "c", "b"]


async def test_open_threads_asked_for_at_once_are_each_found(database):
    db = await Database.open(database)
    await migrate(db)
    store = Store(db)
    try:
        older = await opened(db, "+61400000021")
        newer = await opened(db, "+61400000021")  # the most recent of two open threads
        # Of the two open ones, the one with the latest message, whatever their ids.
        earlier = await opened(db, "+61400000024")
        later = await opened(db, "+61400000024")
        for talked in (later, earlier):
            effects = Effects(talked, [reply("hello")], numbers=NUMBERS)
            await db.write(lambda tx, effects=effects: commit_all(tx, [effects], NOW))
        other_bot = await db.write(
            lambda tx: stored_threads.save(
                tx, Thread(bot="quiz", handset="+61400000022", address="4433"), NOW
            )
        )
        await opened(db, "+61400000023", status="closed")
        reads = 0
        fetchall = db.fetchall

        async def counting(sql, params=()):
            nonlocal reads
            reads += 1
            return await fetchall(sql, params)

        db.fetchall = counting
        asked = [
            ("+61400000021", "4433", None, None),
            ("+61400000022", "4433", "b", None),  # open, but of another bot
            ("+61400000022", "4433", "quiz", None),
            ("+61400000023", "4433", None, None),  # closed
            ("+61400000021", "4433", None, "2027-01-01T00:00:00.000Z"),  # quiet since
            ("+61400000021", "9999", None, None),  # another number
            ("+61400000024", "4433", None, None),
        ]
        found = await asyncio.gather(
            *(store.threads.open_for(h, a, bot=bot, since=since) for h, a, bot, since in asked)
        )
    finally:
        await db.close()

    assert older.id != newer.id and earlier.id < later.id
    assert [t.id if t else None for t in found] == [
        newer.id, None, other_bot.id, None, None, None, earlier.id
    ]  # fmt: skip
    if db.shared:  # read together, as they were asked while the first was read
        assert reads < len(asked)
    else:
        assert reads == len(asked)


async def test_a_stop_and_a_thread_s_timers_committed_together(database):
    db = await Database.open(database)
    await migrate(db)
    try:
        quiz = await db.write(
            lambda tx: stored_threads.save(
                tx, Thread(bot="quiz", handset="+61400000031", address="4433"), NOW
            )
        )
        await db.write(lambda tx: schedule.schedule(tx, quiz.id, quiz.handset, timer("nudge"), NOW))
        mine = await opened(db, "+61400000032")
        await db.write(lambda tx: schedule.schedule(tx, mine.id, mine.handset, timer("old"), NOW))
        opt_out = ConsentChange("+61400000031", "4433", "opt-out", "sms", keyword="STOP")
        batch = [
            Effects(thread("+61400000031", status="closed"), [reply("bye", exempt=True)],
                    closing=[quiz.id], consent=[opt_out], on_end=frozenset({"quiz"}),
                    numbers=NUMBERS),
            Effects(mine, [reply("a")], cancel=None, schedule=[timer("new")], numbers=NUMBERS),
        ]  # fmt: skip
        await db.write(lambda tx: commit_all(tx, batch, NOW))
        with pytest.raises(ValueError, match="another handset"):
            twice = [Effects(mine), Effects(mine)]
            await db.write(lambda tx: commit_all(tx, twice, NOW))
    finally:
        await db.close()

    ended = rows(database, "SELECT status, end_reason FROM threads WHERE id = ?", (quiz.id,))
    assert [tuple(r) for r in ended] == [("closed", "opted_out")]
    timers = rows(database, "SELECT thread_id, name, state FROM timers ORDER BY id")
    assert [tuple(r) for r in timers] == [
        (quiz.id, "nudge", "cancelled"),
        (mine.id, "old", "cancelled"),
        (quiz.id, END_HOOK, "pending"),  # the quiz's on_end runs after the commit
        (mine.id, "new", "pending"),
    ]
    queued = rows(database, "SELECT m.content FROM outbox o JOIN messages m ON m.id = o.message_id")
    assert sorted(r["content"] for r in queued) == ["a", "bye"]


def timer(name: str) -> Timer:
    return Timer(name=name, due_at=datetime(2027, 1, 1, tzinfo=UTC))
