"""The SQLite writer task: however a write of a batch fails, and whatever stops the task,
every caller of `write` gets an answer, and no write fails for another one's sake."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from conftest import eventually

from botkit.db import Database, DatabaseError, Tx
from botkit.db.sqlite import MAX_BATCH

# Far beyond what any of these takes, even on a loaded machine: a bug fails the test
# instead of hanging it.
DEADLINE = 30


async def table(path: Path) -> Database:
    """A new database holding an empty table `t`."""
    db = await Database.open(str(path / "writer.db"))
    await db.write(lambda tx: tx.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"))
    return db


def insert(value: str) -> Callable[[Tx], Awaitable[int]]:
    """A write that inserts `value` into `t`."""
    return lambda tx: tx.execute("INSERT INTO t (v) VALUES (?)", (value,))


async def test_a_write_that_fills_the_disk_fails_alone_and_its_batch_commits(tmp_path):
    db = await table(tmp_path)
    try:
        pages = await db.fetchval("PRAGMA page_count")
        await db.write(lambda tx: tx.execute(f"PRAGMA max_page_count = {pages}"))
        big = "x" * 100_000
        # Queued together, so run in one batch: SQLite answers the big insert's SQLITE_FULL
        # by rolling back the whole transaction, the writes before it included.
        async with asyncio.timeout(DEADLINE):
            small, full, lifted = await asyncio.gather(
                db.write(insert("small")),
                db.write(insert(big)),
                db.write(lambda tx: tx.execute("PRAGMA max_page_count = 1073741823")),
                return_exceptions=True,
            )
        assert small == 1 and lifted == 0
        assert isinstance(full, DatabaseError) and "database or disk is full" in str(full)
        await db.write(insert(big))  # the limit was lifted
        assert [row[0] for row in await db.fetchall("SELECT v FROM t ORDER BY id")] == [
            "small",
            big,
        ]
    finally:
        await db.close()


async def test_a_write_that_raises_is_undone_alone_and_the_rest_of_its_batch_commits(tmp_path):
    async def half_done(tx: Tx) -> None:
        await tx.execute("INSERT INTO t (v) VALUES ('half')")
        raise ValueError("a bad write")

    db = await table(tmp_path)
    try:
        async with asyncio.timeout(DEADLINE):
            before, failed, after = await asyncio.gather(
                db.write(insert("before")),
                db.write(half_done),
                db.write(insert("after")),
                return_exceptions=True,
            )
        assert (before, after) == (1, 1)
        assert isinstance(failed, ValueError) and str(failed) == "a bad write"
        rows = await db.fetchall("SELECT v FROM t ORDER BY id")
        assert [row[0] for row in rows] == ["before", "after"]
    finally:
        await db.close()


async def test_a_savepoint_that_cannot_be_rolled_back_fails_its_batch_and_answers_everyone(
    tmp_path,
):
    async def breaks_its_savepoint(tx: Tx) -> None:
        await tx.execute("RELEASE write")  # ROLLBACK TO write then fails: no such savepoint
        raise ValueError("a bad write")

    db = await table(tmp_path)
    try:
        async with asyncio.timeout(DEADLINE):
            answers = await asyncio.gather(
                db.write(insert("before")),
                db.write(breaks_its_savepoint),
                db.write(insert("after")),
                return_exceptions=True,
            )
        # The batch is in a state no one foresaw: all of it fails, and says so.
        assert all(isinstance(answer, DatabaseError) for answer in answers)
        assert await db.fetchall("SELECT * FROM t") == []
        assert await db.write(insert("later")) == 1  # the writer carries on
    finally:
        await db.close()


def holding(value: str) -> tuple[Callable[[Tx], Awaitable[None]], threading.Event, threading.Event]:
    """A write that inserts `value`, then holds the writer's thread (as a slow disk
    would) until released; and the events saying it has started and releasing it."""
    entered, release = threading.Event(), threading.Event()

    async def write(tx: Tx) -> None:
        await tx.execute("INSERT INTO t (v) VALUES (?)", (value,))
        entered.set()
        release.wait(DEADLINE)

    return write, entered, release


async def hold(db: Database, value: str) -> tuple[asyncio.Future[None], threading.Event]:
    """A `holding` write of `value` under way on the writer's thread: its future, and the
    event that releases it."""
    write, entered, release = holding(value)
    under_way = asyncio.ensure_future(db.write(write))
    await eventually(entered.is_set)
    return under_way, release


async def test_an_urgent_write_commits_in_a_batch_of_its_own_before_those_queued(tmp_path):
    slow, slow_entered, release_slow = holding("slow")
    db = await table(tmp_path)
    release_first = threading.Event()
    try:
        async with asyncio.timeout(DEADLINE):
            under_way, release_first = await hold(db, "first")
            queued = [asyncio.ensure_future(db.write(w)) for w in (slow, insert("queued"))]
            urgent = asyncio.ensure_future(db.write(insert("urgent"), urgent=True))
            await eventually(lambda: len(db._queued) == 2 and len(db._urgent) == 1)
            release_first.set()
            # The callback's write commits alone: the batch queued before it is held up
            # in its first write, and in one batch it would have waited for it.
            assert await urgent == 1
            await eventually(slow_entered.is_set)  # the next batch is under way
            assert not queued[0].done() and not queued[1].done()
            release_slow.set()
            await asyncio.gather(under_way, *queued)
        values = [row[0] for row in await db.fetchall("SELECT v FROM t ORDER BY id")]
        assert values == ["first", "urgent", "slow", "queued"]
    finally:
        release_first.set()
        release_slow.set()
        await db.close()


async def test_a_flood_of_urgent_writes_does_not_crowd_out_the_others(tmp_path):
    db = await table(tmp_path)
    release = threading.Event()
    try:
        async with asyncio.timeout(DEADLINE):
            under_way, release = await hold(db, "first")
            other = asyncio.ensure_future(db.write(insert("other")))
            flood = [
                asyncio.ensure_future(db.write(insert(f"urgent {n}"), urgent=True))
                for n in range(2 * MAX_BATCH + 50)
            ]
            await eventually(lambda: len(db._queued) == 1 and len(db._urgent) == len(flood))
            release.set()
            await asyncio.gather(under_way, other, *flood)
        values = [row[0] for row in await db.fetchall("SELECT v FROM t ORDER BY id")]
        # One batch of urgent writes, then the other write, first of the next batch: not
        # after the whole flood.
        assert values.index("other") == 1 + MAX_BATCH
    finally:
        release.set()
        await db.close()


async def test_every_queued_write_is_answered_when_the_writer_task_stops(tmp_path):
    stuck, entered, release = holding("stuck")
    db = await table(tmp_path)
    try:
        first = asyncio.ensure_future(db.write(stuck))
        async with asyncio.timeout(DEADLINE):
            await eventually(entered.is_set)
            second = asyncio.ensure_future(db.write(insert("queued")))
            await eventually(lambda: len(db._queued) == 1)  # queued behind the stuck batch
            db._task.cancel()  # whatever stops the writer: here, a cancel
            answers = await asyncio.gather(first, second, return_exceptions=True)
        assert all(isinstance(answer, DatabaseError) for answer in answers)
        with pytest.raises(DatabaseError, match="closed"):
            await db.write(insert("refused"))
    finally:
        release.set()
        await db.close()


async def test_a_cancelled_close_answers_every_write_and_closes_the_connections(tmp_path):
    slow, entered, release = holding("slow")
    before = threading.active_count()
    db = await table(tmp_path)
    async with asyncio.timeout(DEADLINE):
        first = asyncio.ensure_future(db.write(slow))
        await eventually(entered.is_set)
        second = asyncio.ensure_future(db.write(insert("queued")))
        closing = asyncio.create_task(db.close())
        await eventually(lambda: db._closing)  # close() now waits for the writer
        closing.cancel()  # a stop interrupted (a second Ctrl-C, a test's deadline)
        with pytest.raises(asyncio.CancelledError):
            await closing
        release.set()
        # The batch under way commits; the write queued behind it finds the connection
        # closed. Every caller has its answer.
        assert await first is None
        with pytest.raises(DatabaseError):
            await second
    # Threads left running would keep the process from exiting.
    await eventually(lambda: threading.active_count() <= before)


async def test_an_export_cancelled_as_its_connection_opens_leaves_no_thread(tmp_path):
    """Regression: a `stream` cancelled while its connection was opening (a client of an
    export hanging up) left the connection's thread waiting for calls for ever."""
    db = await table(tmp_path)

    def threads() -> set[threading.Thread]:
        return {t for t in threading.enumerate() if t.name == "botkit-sqlite"}

    before = threads()

    async def export() -> None:
        async for _ in db.stream("SELECT * FROM t"):
            pass

    for _ in range(5):
        task = asyncio.ensure_future(export())
        async with asyncio.timeout(DEADLINE):
            while threads() == before:  # until the export's connection starts opening
                await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    await eventually(lambda: threads() == before)
    await db.close()
