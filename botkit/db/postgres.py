"""The PostgreSQL backend (asyncpg), for several app processes on one database.

Every difference from SQLite lives here:

- SQL: the store writes `?` placeholders, PostgreSQL takes `$1, $2, ...`; in DDL an
  `id INTEGER PRIMARY KEY` (SQLite's rowid) is an identity column, and every INTEGER
  is a BIGINT (SQLite's integers are 64-bit: the gateway's ids need it).
- Writes: each runs in a READ COMMITTED transaction on a pooled connection, side by
  side with those of other processes (SERIALIZABLE was tried: on small, busy tables
  its coarse predicate locks made unrelated handsets conflict by the thousand); a
  write `single`, one statement, is a transaction of its own (no BEGIN or COMMIT: one
  round trip where they make three). What must run one at a time takes an advisory
  lock (`tx.lock`, pg_advisory_xact_lock); a claim of the outbox locks the row it
  takes (FOR UPDATE SKIP LOCKED), so senders pass over each other's rows. A deadlock
  runs the transaction again.
- Live updates: a process that committed tells the others (NOTIFY) at most every
  `NOTIFY_EVERY` seconds, one NOTIFY for all its commits since (a NOTIFY in every
  transaction would make the server take its commits one at a time); each bumps its
  `commits`.
- Ids: an identity column numbers new rows from a sequence, which rows copied in with
  their ids do not move on (`advance_ids` does).
- Text: PostgreSQL cannot store a NUL; one in a parameter is stored as U+FFFD (the
  callbacks already turn NULs into it, on both backends: this covers the rest).
- The send rate: one row holds the deployment's next free send slot, in the
  server's clock, so that every process shares one rate.
- Text search: a GIN index of each message's words (`to_tsvector('simple', content)`,
  migration 18) where SQLite has FTS5; the query is a tsquery of the same words, read
  as the planner's estimate of how many messages hold them says (TEXT_MATCH).

The password is given to asyncpg apart from the URL, so that no error shows it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import re
import secrets
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Sequence,
)
from functools import lru_cache
from typing import Any, TypeVar
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import asyncpg

from . import (
    PACE_IDLE,
    PACE_SLACK,
    Database,
    DatabaseError,
    Row,
    Subscribers,
    Tx,
    WriteFn,
    redact,
)

T = TypeVar("T")
log = logging.getLogger("botkit.db")

POOL_SIZE = 10
# The sender's own connection, for its slots (pace) and its claims, which it takes one
# after another: the send rate waits for them, so they never queue behind the
# callbacks' writes for a connection. Opened once the sender needs it.
SENDING_POOL_SIZE = 1
# A transaction left open this long by a process that stalled (paused, cut off) is
# ended by the server, so that the locks it holds (the claims' above all) hold up no
# other process for longer. botkit's transactions take milliseconds.
# A single write's statement runs at the server's default isolation: READ
# COMMITTED, as every write's BEGIN says, whatever the server's configuration.
SERVER_SETTINGS = {
    "idle_in_transaction_session_timeout": "30s",
    "default_transaction_isolation": "read committed",
}
# Statements each connection keeps prepared (asyncpg's default is 100). A batch's
# statements have one form per number of rows (up to batching.MOST): with too few
# kept, they would push each other out, and each would be prepared again, one more
# round trip.
STATEMENTS = 1024
CHANNEL = "botkit_commits"
# How long closing a connection may wait for the server's goodbye before it is aborted.
CLOSE_SECONDS = 10.0
NOTIFY_EVERY = 0.05
# A write that keeps meeting concurrent ones is given up after this many tries.
ATTEMPTS = 10
# Conflicts worth running the transaction again for.
RETRY = (asyncpg.DeadlockDetectedError, asyncpg.SerializationError)
# What a failed statement, or a lost or broken connection, raises: asyncpg's own
# InternalClientError too, met on a connection the server dropped mid-operation.
FAILURES = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError)
# Of those, what says the server is away (down, restarting, shutting down, unreachable),
# not that a read was wrong: a read that meets one raises DatabaseError, like a write.
AWAY = (
    OSError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    asyncpg.PostgresConnectionError,
    asyncpg.OperatorInterventionError,
)

_TOKENS = re.compile(r"'(?:[^']|'')*'|--[^\n]*|\?|\bid INTEGER PRIMARY KEY\b|\bINTEGER\b")


@lru_cache(maxsize=1024)
def translate(sql: str) -> str:
    """SQLite's dialect as the store writes it, in PostgreSQL's (see the module's doc)."""
    count = 0

    def replace(match: re.Match[str]) -> str:
        nonlocal count
        token = match.group()
        if token == "?":
            count += 1
            return f"${count}"
        if token == "INTEGER":
            return "BIGINT"
        if token.startswith("id INTEGER"):
            return "id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"
        return token  # a string literal or a comment, as it was

    return _TOKENS.sub(replace, sql)


def bind(params: Iterable[Any]) -> list[Any]:
    """The parameters as PostgreSQL takes them: a NUL in text (or in a list's text) as
    U+FFFD."""
    return [bind(value) if isinstance(value, list) else _text(value) for value in params]


def _text(value: Any) -> Any:
    return value.replace("\x00", "\ufffd") if isinstance(value, str) and "\x00" in value else value


def changed(status: str) -> int:
    """The number of rows a command changed, from its status ("UPDATE 3", "INSERT 0 1")."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() and not status.startswith("SELECT") else 0


def literal(text: str) -> str:
    """`text` as an SQL string literal: an escape string (E'...', a quote doubled), read
    the same whatever the server sets standard_conforming_strings and backslash_quote
    to; a NUL as U+FFFD, as `bind` does."""
    escaped = text.replace("\\", "\\\\").replace("'", "''").replace("\x00", "\ufffd")
    return f"E'{escaped}'"


BEGIN = "BEGIN ISOLATION LEVEL READ COMMITTED"


class PostgresTx(Tx):
    """Statements on one pooled connection, in the transaction of the write or read.

    A write's BEGIN waits for its first statement: when that is `lock`, the two go to
    the server as one simple query, one round trip where they were two (most writes
    that lock, lock first). A write that runs no statement begins nothing. A write
    `single` runs one statement, with no transaction around it but its own."""

    skip_locked = " FOR UPDATE SKIP LOCKED"
    writing_with = True

    def __init__(
        self,
        conn: asyncpg.Connection,
        begin: str | None = None,
        *,
        single: bool = False,
        subscribers: Subscribers | None = None,
    ) -> None:
        self._conn = conn
        if subscribers is not None:
            self.subscribers = subscribers
        self._begin = begin  # still to send, before the first statement
        self.began = False  # whether it was sent: there is a transaction to end
        self._single = single
        self._ran = False  # whether a statement ran (a write `single` runs one)

    async def _start(self) -> None:
        """Send the BEGIN, if one waits; refuse a write `single` its second statement."""
        if self._single:
            if self._ran:
                raise AssertionError("a single write runs one statement, in no transaction")
            self._ran = True
        if self._begin is not None:
            begin, self._begin, self.began = self._begin, None, True
            await self._conn.execute(begin)

    def next_id(self, table: str) -> str:
        return f"nextval(pg_get_serial_sequence('{table}', 'id'))"

    async def lock(self, *names: str) -> None:
        if self._single:  # its statement takes its locks itself (Database.write)
            raise AssertionError("a single write has no transaction to hold locks")
        # The names as literals, not parameters: a simple query may hold several
        # statements, so the BEGIN still to send and every lock (in order: two writes
        # taking the same locks never wait for each other's) are one round trip.
        statements = [
            f"SELECT pg_advisory_xact_lock(hashtext({literal(name)}))"
            for name in sorted(set(names))
        ]
        if self._begin is not None:
            statements.insert(0, self._begin)
            self._begin, self.began = None, True
        if statements:
            await self._conn.execute("; ".join(statements))

    async def execute(self, sql: str, params: Iterable[Any] = ()) -> int:
        await self._start()
        return changed(await self._conn.execute(translate(sql), *bind(params)))

    async def executemany(self, sql: str, rows: Iterable[Iterable[Any]]) -> None:
        await self._start()
        await self._conn.executemany(translate(sql), [bind(row) for row in rows])

    async def fetchmany(self, sql: str, rows: Iterable[Iterable[Any]]) -> list[Row]:
        await self._start()
        return await self._conn.fetchmany(translate(sql), [bind(row) for row in rows])

    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> Row | None:
        await self._start()
        return await self._conn.fetchrow(translate(sql), *bind(params))

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        await self._start()
        return await self._conn.fetch(translate(sql), *bind(params))

    async def fetchval(self, sql: str, params: Iterable[Any] = ()) -> Any:
        await self._start()
        return await self._conn.fetchval(translate(sql), *bind(params))


def connect_options(url: str) -> dict[str, Any]:
    """asyncpg's options for `url`: the URL without its password, and the password
    (given after the user, or as `?password=`)."""
    parts = urlsplit(url)
    password = None if parts.password is None else unquote(parts.password)
    if password is not None:
        userinfo, _, host = parts.netloc.rpartition("@")
        parts = parts._replace(netloc=f"{userinfo.split(':', 1)[0]}@{host}")
    query = parse_qsl(parts.query)
    password = next((v for k, v in query if k == "password"), password)
    query = [(k, v) for k, v in query if k != "password"]
    options: dict[str, Any] = {"dsn": urlunsplit(parts._replace(query=urlencode(query)))}
    if password is not None:
        options["password"] = password
    return options


# The send slots `slots()` hands out ($1 the interval, $2 the most, $3 PACE_SLACK, $4
# PACE_IDLE), in the server's clock, the one every process shares: how long to wait
# for the first, how many, and where the row is left. The UPDATE takes the row only as
# it was read (a process that moved it meanwhile makes it take none: read again).
PACE = """
WITH clock AS (
    SELECT extract(epoch FROM clock_timestamp())::float8 AS now
), slot AS (
    SELECT next_at, now, CASE WHEN next_at >= now - $3 THEN next_at
                              WHEN next_at >= now - $4 THEN now - $3
                              ELSE now END AS start
    FROM pace, clock WHERE name = 'send'
), handed AS (
    SELECT next_at, now, start, CASE WHEN start > now THEN 1
                                     ELSE least($2, floor((now - start) / $1) + 1)::int
                                END AS count
    FROM slot
)
UPDATE pace SET next_at = handed.start + handed.count * $1
FROM handed WHERE pace.name = 'send' AND pace.next_at = handed.next_at
RETURNING greatest(0, handed.start - handed.now), handed.count, pace.next_at
"""


class PostgresDatabase(Database):
    """A pool of connections to one PostgreSQL database, shared with other processes."""

    shared = True
    dialect = "postgresql"

    def __init__(self, url: str, pool: asyncpg.Pool, sending: asyncpg.Pool) -> None:
        super().__init__(url)
        self._pool = pool
        self._sending = sending  # the sender's own connection (SENDING_POOL_SIZE)
        self._listener: asyncpg.Connection | None = None
        self._relisten: asyncio.Task[None] | None = None
        self._writes: set[asyncio.Task[Any]] = set()
        self._closing = False
        self._paced_to: float | None = None  # where its last pace left the slot row
        self._name = secrets.token_hex(8)  # its own NOTIFYs come back: to tell them apart
        self._committed = asyncio.Event()
        self._notifier = asyncio.create_task(self._notify(), name="botkit-db-notify")

    @classmethod
    async def connect(cls, url: str) -> PostgresDatabase:
        pools: list[asyncpg.Pool] = []
        try:
            for least, most in ((1, POOL_SIZE), (0, SENDING_POOL_SIZE)):
                pools.append(
                    await asyncpg.create_pool(
                        min_size=least,
                        max_size=most,
                        server_settings=SERVER_SETTINGS,
                        statement_cache_size=STATEMENTS,
                        reset=_returned,
                        **connect_options(url),
                    )
                )
        except FAILURES as exc:
            await asyncio.gather(*(pool.close() for pool in pools))
            raise DatabaseError(f"could not connect to {redact(url)}: {exc}") from None
        except BaseException:  # cancelled: no pool left open either
            await asyncio.gather(*(pool.close() for pool in pools))
            raise
        db = cls(url, *pools)
        try:
            await db._listen()
        except BaseException:
            db._notifier.cancel()
            await asyncio.gather(*(pool.close() for pool in pools))
            raise
        return db

    async def _listen(self) -> None:
        """Listen for the commits of every process, on a connection of its own."""
        listener = await asyncpg.connect(**connect_options(self.url))
        await listener.add_listener(CHANNEL, self._notified)
        listener.add_termination_listener(self._deaf)
        self._listener = listener

    def _notified(self, connection: object, pid: int, channel: str, payload: str) -> None:
        if payload != self._name:
            self.commits.bump()

    async def _notify(self) -> None:
        """Tell the other processes that this one committed: one NOTIFY for the commits
        of `NOTIFY_EVERY` seconds. Their live views learn of it that much later."""
        while True:
            await self._committed.wait()
            self._committed.clear()
            try:
                await self._pool.execute(f"NOTIFY {CHANNEL}, '{self._name}'")
            except FAILURES as exc:
                log.warning("could not tell the other processes of a commit: %s", exc)
            await asyncio.sleep(NOTIFY_EVERY)

    def _deaf(self, *_: object) -> None:
        """The listening connection dropped (a server restart): connect it again."""
        if not self._closing:
            self._relisten = asyncio.ensure_future(self._listen_again())

    async def _listen_again(self) -> None:
        delay = 0.5
        while not self._closing:
            try:
                await self._listen()
            except FAILURES as exc:
                log.warning("could not listen for commits, again in %gs: %s", delay, exc)
                await asyncio.sleep(delay)
                delay = min(30.0, delay * 2)
                continue
            self.commits.bump()  # what others committed meanwhile went unheard
            return

    async def write(
        self, fn: WriteFn[T], *, sending: bool = False, urgent: bool = False, single: bool = False
    ) -> T:
        if self._closing:
            raise DatabaseError("the database is closed")
        pool = self._sending if sending else self._pool
        task = asyncio.ensure_future(self._write(fn, pool, single))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)
        # shield: a caller that goes away (a client hanging up) must not undo a write.
        return await asyncio.shield(task)

    async def _write(self, fn: WriteFn[T], pool: asyncpg.Pool, single: bool) -> T:
        for attempt in range(1, ATTEMPTS + 1):
            try:
                async with pool.acquire() as conn:
                    if single:
                        tx = PostgresTx(conn, single=True, subscribers=self.subscribers)
                        result = await fn(tx)
                    else:
                        result = await _transaction(conn, fn, self.subscribers)
                self.commits.bump()
                self._committed.set()
                return result
            except RETRY:
                if attempt == ATTEMPTS:
                    raise DatabaseError(f"gave up after {attempt} conflicting attempts") from None
                await asyncio.sleep(random.uniform(0, 0.002 * attempt))
            except FAILURES as exc:
                log.error("write transaction failed: %s", exc)
                error = DatabaseError(f"could not commit: {exc}")
                raise error from exc
        raise AssertionError("unreachable")

    async def read(self, fn: Callable[[Tx], Awaitable[T]]) -> T:
        try:
            async with (
                self._pool.acquire() as conn,
                conn.transaction(isolation="repeatable_read", readonly=True),
            ):
                return await fn(PostgresTx(conn))
        except AWAY as exc:
            raise DatabaseError(f"could not read: {exc}") from exc

    async def text_search(self, words: Sequence[str]) -> tuple[str, list[Any]]:
        query = tsquery(words)
        estimate = f"EXPLAIN (FORMAT JSON) SELECT 1 FROM messages WHERE {TEXT_MATCH}"
        plan = json.loads(await self.fetchval(estimate, [query]))
        many = plan[0]["Plan"]["Plan Rows"] > MANY
        return (TEXT_WALK if many else TEXT_THREADS), [query]

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        return await self._one(lambda tx: tx.fetchall(sql, params))

    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> Row | None:
        return await self._one(lambda tx: tx.fetchone(sql, params))

    async def fetchval(self, sql: str, params: Iterable[Any] = ()) -> Any:
        return await self._one(lambda tx: tx.fetchval(sql, params))

    async def _one(self, fn: Callable[[Tx], Awaitable[T]]) -> T:
        """One statement on a pooled connection: no transaction needed."""
        try:
            async with self._pool.acquire() as conn:
                return await fn(PostgresTx(conn))
        except AWAY as exc:
            raise DatabaseError(f"could not read: {exc}") from exc

    async def stream(
        self, sql: str, params: Iterable[Any] = (), batch: int = 500
    ) -> AsyncGenerator[Row, None]:
        conn = await asyncpg.connect(**connect_options(self.url))
        try:
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                async for row in conn.cursor(translate(sql), *bind(params), prefetch=batch):
                    yield row
        finally:
            await conn.close()

    @contextlib.asynccontextmanager
    async def lock(self, name: str) -> AsyncIterator[None]:
        # On a connection of its own, which closing releases: a pooled one would go back
        # to the pool still holding the lock if its unlock were cut short (_returned).
        try:
            conn = await asyncpg.connect(**connect_options(self.url))
        except FAILURES as exc:
            raise DatabaseError(f"could not take the lock {name!r}: {exc}") from None
        try:
            await conn.execute("SELECT pg_advisory_lock(hashtext($1))", name)
            yield
        finally:
            await conn.close(timeout=CLOSE_SECONDS)  # past it, aborted: the lock goes too

    async def pace(self, interval: float, most: int = 1) -> int:
        # On the sender's own connection (SENDING_POOL_SIZE). One statement reads the
        # slot row and moves it on, unless another process moved it since its read
        # (then it reads again): no transaction held, one round trip.
        try:
            async with self._sending.acquire() as conn:
                while True:
                    row = await conn.fetchrow(PACE, interval, most, PACE_SLACK, PACE_IDLE)
                    if row is not None:
                        wait, count, self._paced_to = row
                        break
                    # Not there yet (or gone: a copy replaced the database), or moved
                    # meanwhile: made if missing, and read again.
                    await conn.execute(
                        "INSERT INTO pace (name, next_at) VALUES ('send', 0) ON CONFLICT DO NOTHING"
                    )
        except FAILURES as exc:
            raise DatabaseError(f"could not take a send slot: {exc}") from exc
        if wait > 0:
            await asyncio.sleep(wait)
        return count

    async def unpace(self, interval: float, count: int) -> None:
        # Only if no process paced since: slots handed out after ours must not be handed
        # out again (ours are then lost, the rate a little slow for a moment).
        try:
            await self._sending.execute(
                "UPDATE pace SET next_at = next_at - $1 WHERE name = 'send' AND next_at = $2",
                count * interval,
                self._paced_to,
            )
        except FAILURES as exc:
            raise DatabaseError(f"could not give back send slots: {exc}") from exc

    async def advance_ids(self, tables: Iterable[str]) -> None:
        # An identity column takes its next value from a sequence, which rows written
        # with their ids given have not moved on.
        async with self._pool.acquire() as conn:
            for table, column in await conn.fetch(IDENTITIES, list(tables)):
                await conn.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), "
                    f"coalesce(max({column}), 0) + 1, false) FROM {table}"
                )

    @property
    def writing(self) -> bool:
        return not self._closing and not self._pool.is_closing()

    async def close(self) -> None:
        self._closing = True
        if self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)
        self._notifier.cancel()
        if self._relisten is not None:
            self._relisten.cancel()
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await self._listener.close()
        await asyncio.gather(self._pool.close(), self._sending.close())


# Whether a message's words match a tsquery: the expression is migration 18's index's,
# word for word (an expression index serves only the same expression).
TEXT_MATCH = "to_tsvector('simple', content) @@ to_tsquery('simple', ?)"
# A search reads the thread of each message it finds: fast while they are few, as each
# one's row is read for its thread. For words in more than MANY messages, as the planner
# estimates them (from the index's statistics: close, for a common word), the page
# fills sooner the other way round: walking the threads in its order, each read until a
# message holds the words. The planner would choose by itself, but given a LIMIT it may
# walk for a rare word too (it cannot tell how rare), computing to_tsvector for every
# message until the page fills: 5 to 8 s, a million messages, for a word none holds. So
# a rare word's search is fenced in (OFFSET 0): its messages are read once, from the
# index. (SQLite counts the messages found instead, in db/fts5.py: FTS5 counts them from
# its index alone, where here counting one reads its row.)
MANY = 20_000
TEXT_THREADS = f"t.id IN (SELECT thread_id FROM messages WHERE {TEXT_MATCH} OFFSET 0)"
TEXT_WALK = f"EXISTS (SELECT 1 FROM messages WHERE thread_id = t.id AND {TEXT_MATCH})"


def tsquery(words: Sequence[str]) -> str:
    """The tsquery of messages that hold every one of `words`, each the start of a word
    (as SQLite's fts5_query): each is a quoted operand (nothing in it is syntax: `'` is
    doubled and a backslash escaped), which to_tsquery splits into a phrase the way
    to_tsvector split the messages, every token a prefix; all must match."""
    quoted = ("'" + word.replace("\\", "\\\\").replace("'", "''") + "':*" for word in words)
    return " & ".join(quoted)


# The identity columns (an `id INTEGER PRIMARY KEY` of the store's DDL) of some tables.
IDENTITIES = """
SELECT table_name, column_name FROM information_schema.columns
WHERE table_schema = current_schema() AND is_identity = 'YES' AND table_name = ANY($1::text[])
"""


async def _returned(conn: asyncpg.Connection) -> None:
    """Ready a connection given back to the pool for its next user: nothing to do.
    asyncpg has rolled back a transaction left open, and botkit leaves no other state on
    a pooled connection (no LISTEN, SET, cursor or session lock), so asyncpg's own reset
    (RESET ALL, UNLISTEN *, ...) would be one more round trip for every read and write."""


async def _transaction(
    conn: asyncpg.Connection, fn: Callable[[Tx], Awaitable[T]], subscribers: Subscribers
) -> T:
    """Run `fn` in one transaction and commit it (a write that runs no statement begins
    none: nothing to commit)."""
    tx = PostgresTx(conn, begin=BEGIN, subscribers=subscribers)
    try:
        result = await fn(tx)
        if tx.began:
            await conn.execute("COMMIT")
    except BaseException:
        if tx.began and not conn.is_closed():
            with contextlib.suppress(Exception):
                await conn.execute("ROLLBACK")
        raise
    return result
