"""The SQLite backend: one writer task that commits queued writes in groups, one reader.

aiosqlite queues each statement on its own, so two coroutines sharing a connection
would interleave their transactions. Every write therefore goes through `write(fn)`:
the writer task runs the queued functions one after another inside a single
`BEGIN IMMEDIATE ... COMMIT` (each in its own savepoint, so one failing function
rolls back only itself), and a caller's future resolves only after the commit.
One fsync then covers many callbacks: group commit.

Some failures (a full disk, an I/O error) make SQLite roll back the whole transaction,
not only the statement: the write that met one is answered with its error, and the
others of its batch, undone with it, are run again without it. Every queued write is
answered, whatever stops the writer task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, TypeVar

import aiosqlite

from . import Database, DatabaseError, Row, Tx, WriteFn

T = TypeVar("T")
log = logging.getLogger("botkit.db")

MAX_BATCH = 256
PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    # FULL: a 200 to the gateway must survive a power cut, not only a crash.
    "PRAGMA synchronous=FULL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=5000",
)


class SqliteTx(Tx):
    """The statements one write (or read) function may run. Each is one trip to the
    connection's thread (aiosqlite's cursors would take two or three): a message's
    handling runs a few dozen statements, and the trips were most of its cost."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def execute(self, sql: str, params: Iterable[Any] = ()) -> int:
        # rowcount: this statement's rows, not those its triggers change (migration 18's).
        async with self._conn.execute(sql, tuple(params)) as cursor:
            return max(cursor.rowcount, 0)

    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> Row | None:
        rows = await self._conn.execute_fetchall(sql, tuple(params))
        return next(iter(rows), None)

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        return list(await self._conn.execute_fetchall(sql, tuple(params)))

    async def lock(self, name: str) -> None:
        pass  # one write transaction at a time holds the whole file (BEGIN IMMEDIATE)


class SqliteDatabase(Database):
    """One SQLite file in WAL mode."""

    def __init__(self, path: str, writer: aiosqlite.Connection, reader: aiosqlite.Connection):
        super().__init__(path)
        self._writer = writer
        self._reader = reader
        self._read_lock = asyncio.Lock()
        self._next_slot = 0.0
        self._closing = False
        self._queue: asyncio.Queue[tuple[WriteFn[Any], asyncio.Future[Any]] | None] = (
            asyncio.Queue()
        )
        self._task = asyncio.create_task(self._write_loop(), name="botkit-db-writer")

    @classmethod
    async def connect(cls, path: str) -> SqliteDatabase:
        writer = await _connect(path)
        try:
            reader = await _connect(path)
        except BaseException:
            await writer.close()
            raise
        return cls(path, writer, reader)

    async def write(self, fn: WriteFn[T]) -> T:
        if self._closing or self._task.done():
            raise DatabaseError("the database is closed")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((fn, future))
        # shield: a caller that goes away (a client hanging up) must not undo a queued write.
        return await asyncio.shield(future)

    @property
    def writing(self) -> bool:
        return not self._task.done()

    async def read(self, fn: Callable[[Tx], Awaitable[T]]) -> T:
        async with self._read_lock:
            return await fn(SqliteTx(self._reader))

    async def stream(
        self, sql: str, params: Iterable[Any] = (), batch: int = 500
    ) -> AsyncGenerator[Row, None]:
        conn = await _connect(self.url)
        try:
            async with conn.execute(sql, tuple(params)) as cursor:
                while rows := await cursor.fetchmany(batch):
                    for row in rows:
                        yield row
        finally:
            await conn.close()

    @contextlib.asynccontextmanager
    async def lock(self, name: str) -> AsyncIterator[None]:
        # One process at a time writes a SQLite file: BEGIN IMMEDIATE is the lock.
        yield

    async def pace(self, interval: float) -> None:
        # One process sends from a SQLite database: its own clock spaces the slots.
        now = time.monotonic()
        slot = max(now, self._next_slot)
        self._next_slot = slot + interval
        if slot > now:
            await asyncio.sleep(slot - now)

    async def advance_ids(self, tables: Iterable[str]) -> None:
        # A new rowid is one more than the table's highest: nothing to move on.
        pass

    async def close(self) -> None:
        self._closing = True
        try:
            if not self._task.done():
                self._queue.put_nowait(None)
                # shield: a close that is cancelled (a stop interrupted) must not cut short
                # the batch under way, whose callers would then wait for ever.
                await asyncio.shield(self._task)
        finally:
            # Even when cancelled: their threads would keep the process from exiting.
            await self._writer.close()
            await self._reader.close()

    async def _write_loop(self) -> None:
        batch: list[tuple[WriteFn[Any], asyncio.Future[Any]]] = []
        try:
            while True:
                item = await self._queue.get()
                if item is None:
                    return
                batch = [item]
                stop = False
                while len(batch) < MAX_BATCH and not self._queue.empty():
                    more = self._queue.get_nowait()
                    if more is None:
                        stop = True
                        break
                    batch.append(more)
                while batch:
                    batch = await self._commit_batch(batch)
                if stop:
                    return
        finally:
            self._answer_the_rest(batch)

    def _answer_the_rest(self, batch: list[tuple[WriteFn[Any], asyncio.Future[Any]]]) -> None:
        """Fail every write the stopped writer task will not run (those of its batch not
        answered yet, and those still queued), so that none of their callers waits for ever."""
        error = DatabaseError("the database writer stopped")
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if item is not None:
                batch.append(item)
        for _, future in batch:
            if not future.done():
                future.set_exception(error)

    async def _savepoint(
        self, tx: Tx, fn: WriteFn[Any], future: asyncio.Future[Any]
    ) -> tuple[asyncio.Future[Any], Any, BaseException | None]:
        """Run one write of a batch in a savepoint: its failure undoes it alone."""
        conn = self._writer
        await conn.execute("SAVEPOINT write")
        try:
            result = await fn(tx)
        except Exception as exc:
            if not conn.in_transaction:  # SQLite rolled back the whole transaction
                raise _BatchUndone(future, exc) from exc
            await conn.execute("ROLLBACK TO write")
            outcome: tuple[asyncio.Future[Any], Any, BaseException | None] = (
                future,
                None,
                _as_raised(exc),
            )
        else:
            outcome = (future, result, None)
        await conn.execute("RELEASE write")
        return outcome

    async def _commit_batch(
        self, batch: list[tuple[WriteFn[Any], asyncio.Future[Any]]]
    ) -> list[tuple[WriteFn[Any], asyncio.Future[Any]]]:
        """Run `batch` in one transaction and answer each write once it is committed.
        Returns the writes to run again: those a failure of another one undid."""
        conn, tx = self._writer, SqliteTx(self._writer)
        outcomes: list[tuple[asyncio.Future[Any], Any, BaseException | None]] = []
        try:
            await conn.execute("BEGIN IMMEDIATE")
            if len(batch) == 1:  # alone: no savepoint, its failure rolls everything back
                fn, future = batch[0]
                try:
                    outcomes.append((future, await fn(tx), None))
                except Exception as exc:
                    await conn.rollback()
                    future.set_exception(_as_raised(exc))
                    return []
            else:
                for fn, future in batch:
                    outcomes.append(await self._savepoint(tx, fn, future))
            await conn.execute("COMMIT")
            self.commits.bump()
        except _BatchUndone as undone:
            log.error("write failed, undoing its batch; the others run again: %s", undone.error)
            undone.future.set_exception(_as_raised(undone.error))
            return [(fn, future) for fn, future in batch if future is not undone.future]
        except Exception as exc:
            log.error("write transaction failed: %s", exc)
            with contextlib.suppress(Exception):
                if conn.in_transaction:
                    await conn.rollback()
            error = _database_error(exc)
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
            return []
        for future, result, exc in outcomes:
            if future.done():
                continue
            if exc is None:
                future.set_result(result)
            else:
                future.set_exception(exc)
        return []


class _BatchUndone(Exception):
    """A write of a batch failed in a way that made SQLite roll back the whole
    transaction (a full disk, an I/O error), undoing the writes before it too."""

    def __init__(self, future: asyncio.Future[Any], error: Exception) -> None:
        super().__init__(str(error))
        self.future = future
        self.error = error


def _as_raised(exc: Exception) -> Exception:
    """What a write's caller gets for its failure: sqlite3's errors as DatabaseError,
    any other exception as it was."""
    return _database_error(exc) if isinstance(exc, sqlite3.Error) else exc


def _database_error(exc: BaseException) -> DatabaseError:
    error = DatabaseError(f"could not commit: {exc}")
    error.__cause__ = exc
    return error


async def _connect(path: str) -> aiosqlite.Connection:
    conn = await aiosqlite.connect(path, isolation_level=None)
    try:
        conn.row_factory = sqlite3.Row
        for pragma in PRAGMAS:
            await conn.execute(pragma)
    except BaseException:
        # Its thread would keep the process alive after a failed start.
        await conn.close()
        raise
    return conn
