"""The SQLite backend: one writer task that commits queued writes in groups, one reader.

Each connection lives on a thread of its own, and every call on it is one hop to that
thread. A write function over a `SqliteTx` never waits for anything but its statements,
which run at once, so the writer task runs a whole batch of queued writes in one hop:
`BEGIN IMMEDIATE`, the writes, `COMMIT`; if one fails, the batch runs again with each
write in a savepoint of its own, so that the failing one is undone alone (so a write
may run twice: it must do nothing but its statements). A caller's future resolves only
after the commit, and one fsync covers many callbacks: group commit. A read is one hop
too.

Some failures (a full disk, an I/O error) make SQLite roll back the whole transaction,
not only the statement: the write that met one is answered with its error, and the
others of its batch, undone with it, are run again without it. Every queued write is
answered, whatever stops the writer task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3
import threading
import time
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, TypeVar

from . import Database, DatabaseError, Row, Subscribers, Tx, WriteFn, slots
from .fts5 import Pending

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
# One write's outcome: its result, or the exception its caller gets.
Outcome = tuple[Any, Exception | None]
# A queued write, and the future its caller waits on.
Write = tuple[WriteFn[Any], "asyncio.Future[Any]"]


class SqliteTx(Tx):
    """The statements one write (or read) function may run, on the connection's own
    thread. They are coroutines only to share `Tx` with PostgreSQL: none suspends."""

    def __init__(self, conn: sqlite3.Connection, subscribers: Subscribers | None = None) -> None:
        self._conn = conn
        if subscribers is not None:
            self.subscribers = subscribers

    async def execute(self, sql: str, params: Iterable[Any] = ()) -> int:
        cursor = self._conn.execute(sql, tuple(params))
        if cursor.description is not None:
            cursor.fetchall()  # a RETURNING or a PRAGMA's rows: step the statement to its end
        return max(cursor.rowcount, 0)

    async def executemany(self, sql: str, rows: Iterable[Iterable[Any]]) -> None:
        self._conn.executemany(sql, (tuple(row) for row in rows))

    async def fetchmany(self, sql: str, rows: Iterable[Iterable[Any]]) -> list[Row]:
        return [found for row in rows for found in self._conn.execute(sql, tuple(row))]

    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> Row | None:
        return self._conn.execute(sql, tuple(params)).fetchone()

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        return self._conn.execute(sql, tuple(params)).fetchall()

    async def lock(self, *names: str) -> None:
        pass  # one write transaction at a time holds the whole file (BEGIN IMMEDIATE)


class Connection:
    """A sqlite3 connection and the one thread it is used on: `run(fn)` calls
    `fn(connection)` there, after the calls before it.

    A thread of its own fed by a SimpleQueue, rather than a one-worker executor: each
    call is a hop there and back, several an MO, and the executor's futures, locks and
    conditions cost more of the event loop's time than the statements themselves."""

    def __init__(self, calls: queue.SimpleQueue[_Call | None]) -> None:
        self._calls = calls
        self._closed: asyncio.Future[None] | None = None

    @classmethod
    async def open(cls, path: str) -> Connection:
        calls: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        connected: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # A daemon: a process that exits without closing the database is not held up
        # by it (a write it cuts short was never answered, and SQLite rolls it back).
        threading.Thread(
            target=_serve, args=(path, calls, connected), name="botkit-sqlite", daemon=True
        ).start()
        try:
            await connected  # the thread ends by itself if the file cannot be opened
        except BaseException:
            calls.put(None)  # cancelled: the thread closes what it opened, and ends
            raise
        return cls(calls)

    def run(self, fn: Callable[[sqlite3.Connection], T]) -> asyncio.Future[T]:
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        if self._closed is not None:
            future.set_exception(DatabaseError("the database is closed"))
        else:
            self._calls.put((fn, future))
        return future

    def close(self) -> asyncio.Future[None]:
        """Close the connection once the calls queued before have run, and end the thread.
        Both happen even if no one awaits the future this returns (the same one each time)."""
        if self._closed is None:
            self._closed = self.run(sqlite3.Connection.close)
            self._calls.put(None)
        return self._closed


# A call for a connection's thread: the function, and the future its outcome goes to.
_Call = tuple[Callable[[sqlite3.Connection], Any], "asyncio.Future[Any]"]


def _serve(
    path: str, calls: queue.SimpleQueue[_Call | None], connected: asyncio.Future[None]
) -> None:
    """A connection's thread: open `path`, then run the calls queued until None comes."""
    try:
        conn = _connect(path)
    except BaseException as exc:
        _answer(connected, None, exc)
        return
    try:
        _answer(connected, None, None)
        while (call := calls.get()) is not None:
            fn, future = call
            try:
                result = fn(conn)
            except BaseException as exc:
                _answer(future, None, exc)
            else:
                _answer(future, result, None)
    finally:
        conn.close()  # again, after a close call: harmless


def _answer(future: asyncio.Future[Any], result: Any, exc: BaseException | None) -> None:
    """From a connection's thread: resolve `future` on its event loop (unless the loop
    has closed meanwhile: then no one waits for it)."""
    with contextlib.suppress(RuntimeError):
        future.get_loop().call_soon_threadsafe(_resolve, future, result, exc)


def _resolve(future: asyncio.Future[Any], result: Any, exc: BaseException | None) -> None:
    """Give `future` its outcome, unless it has one (its caller cancelled it)."""
    if future.done():
        return
    if exc is None:
        future.set_result(result)
    else:
        future.set_exception(exc)


class SqliteDatabase(Database):
    """One SQLite file in WAL mode."""

    def __init__(self, path: str, writer: Connection, reader: Connection):
        super().__init__(path)
        self._writer = writer
        self._reader = reader
        self._pending = Pending()  # the search index's, on the writer's thread
        self._next_slot = 0.0
        self._closing = False
        self._queued: deque[Write] = deque()
        self._urgent: deque[Write] = deque()  # writes a callback waits on
        self._more = asyncio.Event()  # something was queued (or close asked)
        self._task = asyncio.create_task(self._write_loop(), name="botkit-db-writer")

    @classmethod
    async def connect(cls, path: str) -> SqliteDatabase:
        writer = await Connection.open(path)
        try:
            reader = await Connection.open(path)
        except BaseException:
            await writer.close()
            raise
        return cls(path, writer, reader)

    async def write(
        self, fn: WriteFn[T], *, sending: bool = False, urgent: bool = False, single: bool = False
    ) -> T:
        # One writer: the sender's claims take their turn with the rest (one hop a batch);
        # urgent writes go first, in a batch of their own (_write_loop). A write `single`
        # is one like the others: it runs in the writer's transaction of its batch.
        if self._closing or self._task.done():
            raise DatabaseError("the database is closed")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        (self._urgent if urgent else self._queued).append((fn, future))
        self._more.set()
        # shield: a caller that goes away (a client hanging up) must not undo a queued write.
        return await asyncio.shield(future)

    @property
    def writing(self) -> bool:
        return not self._task.done()

    async def read(self, fn: Callable[[Tx], Awaitable[T]]) -> T:
        # The reader's one thread runs reads one at a time: each sees one snapshot.
        return await self._reader.run(lambda conn: _complete(fn(SqliteTx(conn))))

    async def stream(
        self, sql: str, params: Iterable[Any] = (), batch: int = 500
    ) -> AsyncGenerator[Row, None]:
        conn = await Connection.open(self.url)
        try:
            cursor = await conn.run(lambda c: c.execute(sql, tuple(params)))
            while rows := await conn.run(lambda _: cursor.fetchmany(batch)):
                for row in rows:
                    yield row
        finally:
            await conn.close()

    @contextlib.asynccontextmanager
    async def lock(self, name: str) -> AsyncIterator[None]:
        # One process at a time writes a SQLite file: BEGIN IMMEDIATE is the lock.
        yield

    async def pace(self, interval: float, most: int = 1) -> int:
        # One process sends from a SQLite database: its own clock spaces the slots.
        wait, count, self._next_slot = slots(self._next_slot, time.monotonic(), interval, most)
        if wait > 0:
            await asyncio.sleep(wait)
        return count

    async def unpace(self, interval: float, count: int) -> None:
        self._next_slot -= count * interval

    async def advance_ids(self, tables: Iterable[str]) -> None:
        # A new rowid is one more than the table's highest: nothing to move on.
        pass

    async def close(self) -> None:
        self._closing = True
        try:
            if not self._task.done():
                self._more.set()
                # shield: a close that is cancelled (a stop interrupted) must not cut short
                # the batch under way, whose callers would then wait for ever.
                await asyncio.shield(self._task)
        finally:
            # Even when cancelled, without waiting then: their threads would keep the
            # process from exiting.
            closed = (self._writer.close(), self._reader.close())
        await asyncio.gather(*closed)

    async def _write_loop(self) -> None:
        """Commit the queued writes in batches until the database is closed and none is
        left. Urgent writes (a callback's MO) first, in a batch of their own, so that an
        answer waits only for the batch under way and its own, not for the handlers'
        commits queued before it; then the rest (and urgent ones that came meanwhile, if
        there is room), each round: the rest waits for at most one urgent batch."""
        batch: list[Write] = []
        try:
            while True:
                if not self._urgent and not self._queued:
                    if self._closing:
                        return
                    self._more.clear()
                    await self._more.wait()
                    continue
                if self._urgent:
                    batch = _take(self._urgent, MAX_BATCH)
                    while batch:
                        batch = await self._commit_batch(batch)
                # The others first: a flood of urgent writes must not crowd them out.
                batch = _take(self._queued, MAX_BATCH)
                batch += _take(self._urgent, MAX_BATCH - len(batch))
                while batch:
                    batch = await self._commit_batch(batch)
        finally:
            self._answer_the_rest(batch)

    def _answer_the_rest(self, batch: list[Write]) -> None:
        """Fail every write the stopped writer task will not run (those of its batch not
        answered yet, and those still queued), so that none of their callers waits for ever."""
        error = DatabaseError("the database writer stopped")
        for _, future in [*batch, *self._urgent, *self._queued]:
            if not future.done():
                future.set_exception(error)
        self._urgent.clear()
        self._queued.clear()

    async def _commit_batch(self, batch: list[Write]) -> list[Write]:
        """Run `batch` in one transaction, in one hop to the writer's thread, and answer
        each write once it is committed. Returns the writes to run again: those a failure
        of another one undid."""
        fns = [fn for fn, _ in batch]
        try:
            committed, outcomes = await self._writer.run(
                lambda conn: _transaction(conn, fns, self._pending, self.subscribers)
            )
        except _BatchUndone as undone:
            log.error("write failed, undoing its batch; the others run again: %s", undone.error)
            batch[undone.index][1].set_exception(_as_raised(undone.error))
            return [item for i, item in enumerate(batch) if i != undone.index]
        except Exception as exc:
            log.error("write transaction failed: %s", exc)
            error = _database_error(exc)
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
            return []
        if committed:
            self.commits.bump()
        for (_, future), (result, exc) in zip(batch, outcomes, strict=True):
            _resolve(future, result, exc)
        return []


def _take(writes: deque[Write], most: int) -> list[Write]:
    """Up to `most` of `writes`, the oldest first, taken off it."""
    return [writes.popleft() for _ in range(min(most, len(writes)))]


def _transaction(
    conn: sqlite3.Connection, fns: list[WriteFn[Any]], pending: Pending, subscribers: Subscribers
) -> tuple[bool, list[Outcome]]:
    """On the writer's thread: run `fns` in one transaction, and index the messages they
    inserted. Returns whether it committed and each write's outcome.

    The writes run one after the other in one savepoint, none of their own (two
    statements fewer each, and a write seldom fails). If one fails, the savepoint is
    rolled back, the transaction and its lock kept, and the writes run again each in a
    savepoint of its own, so that the failing one is undone alone; a write alone is
    simply answered with its failure."""
    tx = SqliteTx(conn, subscribers)
    alone = len(fns) == 1
    try:
        conn.execute("BEGIN IMMEDIATE")
        if not alone:
            conn.execute("SAVEPOINT batch")
        try:
            outcomes: list[Outcome] = [(_complete(fn(tx)), None) for fn in fns]
        except Exception as exc:
            if alone:
                conn.rollback()
                return False, [(None, _as_raised(exc))]
            _undo(conn)
            outcomes = [_savepoint(conn, tx, fn, i) for i, fn in enumerate(fns)]
        if not alone:
            conn.execute("RELEASE batch")
        pending.index(conn)
        conn.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(Exception):
            if conn.in_transaction:
                conn.rollback()
        raise
    return True, outcomes


def _undo(conn: sqlite3.Connection) -> None:
    """Undo a batch's writes to run them again, in the same transaction unless SQLite
    rolled it back itself (a full disk): then in a new one."""
    if conn.in_transaction:
        conn.execute("ROLLBACK TO batch")
    else:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("SAVEPOINT batch")


def _savepoint(conn: sqlite3.Connection, tx: SqliteTx, fn: WriteFn[Any], index: int) -> Outcome:
    """Run one write of a batch in a savepoint: its failure undoes it alone."""
    conn.execute("SAVEPOINT write")
    try:
        outcome: Outcome = (_complete(fn(tx)), None)
    except Exception as exc:
        if not conn.in_transaction:  # SQLite rolled back the whole transaction
            raise _BatchUndone(index, exc) from exc
        conn.execute("ROLLBACK TO write")
        outcome = (None, _as_raised(exc))
    conn.execute("RELEASE write")
    return outcome


def _complete(awaitable: Awaitable[T]) -> T:
    """Run a write or read function over a `SqliteTx` to its end, here and now: it awaits
    only its statements, which never suspend."""
    steps = awaitable.__await__()
    try:
        steps.send(None)
    except StopIteration as done:
        return done.value
    steps.close()
    raise RuntimeError("a database function waited for something other than its statements")


class _BatchUndone(Exception):
    """A write of a batch failed in a way that made SQLite roll back the whole
    transaction (a full disk, an I/O error), undoing the writes before it too."""

    def __init__(self, index: int, error: Exception) -> None:
        super().__init__(str(error))
        self.index = index
        self.error = error


def _as_raised(exc: Exception) -> Exception:
    """What a write's caller gets for its failure: sqlite3's errors as DatabaseError,
    any other exception as it was."""
    return _database_error(exc) if isinstance(exc, sqlite3.Error) else exc


def _database_error(exc: BaseException) -> DatabaseError:
    error = DatabaseError(f"could not commit: {exc}")
    error.__cause__ = exc
    return error


def _connect(path: str) -> sqlite3.Connection:
    """Open `path` on the calling thread (the connection's own) with botkit's pragmas."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.row_factory = sqlite3.Row
        for pragma in PRAGMAS:
            conn.execute(pragma)
    except BaseException:
        conn.close()
        raise
    return conn
