"""The database behind the store: SQLite (a file path) or PostgreSQL (a URL).

Both backends offer the same interface. A write function gets a `Tx`. SQLite runs one
at a time; PostgreSQL runs those of every process side by side (READ COMMITTED), so a
write function must be right beside others: a handset's conversation changes only
under that handset's claim, claims are taken under `tx.lock`, and a row others may
change is changed by one conditional statement, or locked before it is read. The
store writes SQLite's dialect with `?` placeholders; `postgres.py` holds every
difference.

    db = await Database.open("botkit.db")   # or "postgresql://user:pass@host/db"
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ..errors import ValidationError

T = TypeVar("T")

__all__ = [
    "Database",
    "DatabaseError",
    "Row",
    "Subscribers",
    "Tx",
    "existing_database",
    "existing_file",
    "is_url",
    "redact",
]


class DatabaseError(Exception):
    """The database could not commit (locked, disk full, unreachable): nothing was written."""


class Row(Protocol):
    """A result row: by position, by column name, and unpacked like a tuple."""

    def __getitem__(self, key: int | str, /) -> Any: ...
    def __iter__(self) -> Any: ...
    def __len__(self) -> int: ...
    def keys(self) -> Any: ...


# Event -> the URLs of the webhooks subscribed to it (botkit/webhooks/subscriptions.py).
Subscribers = Mapping[str, tuple[str, ...]]


class Tx(abc.ABC):
    """The statements one write (or read) function may run, in SQLite's dialect."""

    #: Appended to a SELECT that picks rows to claim: on PostgreSQL, rows another
    #: process is claiming are passed over, not waited for.
    skip_locked: str = ""
    #: Whether a statement's WITH may insert, update or delete (PostgreSQL's may), so
    #: that one statement, one round trip, writes two tables.
    writing_with: bool = False
    #: The webhooks subscribed to each event (their URLs): the database's `subscribers`
    #: as the write began. store/webhooks.py's `emit` reads it, so that an event nobody
    #: subscribes to costs not one statement.
    subscribers: Subscribers = MappingProxyType({})

    def next_id(self, table: str) -> str:
        """An expression for the id `table`'s next new row gets, so that one INSERT can
        write the id into another of the row's columns. SQLite numbers a row one more
        than the highest (its writes take turns); PostgreSQL takes it from the identity
        column's sequence (postgres.py)."""
        return f"(SELECT coalesce(max(id), 0) + 1 FROM {table})"

    @abc.abstractmethod
    async def lock(self, *names: str) -> None:
        """Hold the locks `names` until this transaction ends, across every process: what
        runs under one runs one at a time, as every write does on SQLite. Several are
        taken in one order, whatever the caller's, so that two writes never deadlock."""

    @abc.abstractmethod
    async def execute(self, sql: str, params: Iterable[Any] = ()) -> int:
        """Run a statement; return the number of rows it changed."""

    @abc.abstractmethod
    async def executemany(self, sql: str, rows: Iterable[Iterable[Any]]) -> None:
        """Run a statement once for each of `rows`, in order: on PostgreSQL in one round
        trip (asyncpg pipelines them), where one `execute` each would take one each."""

    @abc.abstractmethod
    async def fetchmany(self, sql: str, rows: Iterable[Iterable[Any]]) -> list[Row]:
        """Run a statement once for each of `rows`, in order, and return the rows each
        returned, one after another: on PostgreSQL in one round trip, as `executemany`."""

    @abc.abstractmethod
    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> Row | None: ...

    @abc.abstractmethod
    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[Row]: ...

    async def fetchval(self, sql: str, params: Iterable[Any] = ()) -> Any:
        row = await self.fetchone(sql, params)
        return None if row is None else row[0]


WriteFn = Callable[[Tx], Awaitable[T]]


class Commits:
    """Counts committed write transactions (of every process, on PostgreSQL), so that a
    reader (the dashboard's live updates) can sleep until something changed."""

    def __init__(self) -> None:
        self.count = 0
        self._event = asyncio.Event()

    def bump(self) -> None:
        self.count += 1
        self._event.set()
        self._event = asyncio.Event()

    async def wait(self, seen: int) -> int:
        """Wait until more than `seen` transactions have committed; return the count."""
        while self.count <= seen:
            await self._event.wait()
        return self.count


class Database(abc.ABC):
    """A database of botkit's tables, opened with `await Database.open(path_or_url)`."""

    #: True when several processes may share it (their claims then rest on leases alone).
    shared: bool = False
    #: The dialect of its SQL: a migration may give statements of its own for a dialect
    #: other than SQLite's (see migrations.py).
    dialect: str = "sqlite"

    def __init__(self, url: str) -> None:
        self.url = url
        self.commits = Commits()
        #: What each write's `Tx.subscribers` is: replaced (never changed in place) when
        #: the webhooks change.
        self.subscribers: Subscribers = MappingProxyType({})

    @staticmethod
    async def open(url: str) -> Database:
        """Open a SQLite file (created if missing) or connect to a PostgreSQL database."""
        if is_url(url):
            from .postgres import PostgresDatabase

            return await PostgresDatabase.connect(url)
        from .sqlite import SqliteDatabase

        return await SqliteDatabase.connect(url)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {redact(self.url)}>"

    @abc.abstractmethod
    async def write(
        self, fn: WriteFn[T], *, sending: bool = False, urgent: bool = False, single: bool = False
    ) -> T:
        """Run `fn` in a write transaction; return its result once it is committed.

        A failure of the database itself is raised as DatabaseError: nothing of `fn` was
        written, and a callback can say so with a status worth retrying. A caller that
        goes away does not undo a write already under way. `fn` may be run again (after
        a deadlock on PostgreSQL): it changes nothing outside the transaction.
        `sending`: a write of the sender's between its send slots (a claim), which its
        rate waits for; on PostgreSQL it runs on the sender's own connection, never
        queued behind other writes for one. `urgent`: a write a caller waits on with a
        request open (a callback's MO); on SQLite it goes ahead of those queued before
        it, in a batch of its own. `single`: on PostgreSQL, `fn` runs one statement, which
        is a transaction of its own (one round trip, where BEGIN and COMMIT make three),
        and takes no `lock` (the statement may take locks itself, which it holds until it
        ends); on SQLite, a write like any other.
        """

    @abc.abstractmethod
    async def read(self, fn: Callable[[Tx], Awaitable[T]]) -> T:
        """Run `fn` on a consistent view of every committed write."""

    @abc.abstractmethod
    def stream(
        self, sql: str, params: Iterable[Any] = (), batch: int = 500
    ) -> AsyncGenerator[Row, None]:
        """Yield a query's rows, `batch` at a time, without holding them all in memory,
        on a connection of its own so that a long export holds up no other read."""

    @abc.abstractmethod
    def lock(self, name: str) -> contextlib.AbstractAsyncContextManager[None]:
        """Hold a lock named `name` across every process of the database (migrations)."""

    @abc.abstractmethod
    async def pace(self, interval: float, most: int = 1) -> int:
        """Wait for this deployment's next send slot, `interval` seconds after the last
        one handed out by any process of the database; take it and those after it that
        are due by then, `most` in all. Returns how many were taken."""

    @abc.abstractmethod
    async def unpace(self, interval: float, count: int) -> None:
        """Give back the last `count` slots taken, unused: the rate is not spent on them.
        Unless another process has taken slots since: those are never handed out twice."""

    @abc.abstractmethod
    async def advance_ids(self, tables: Iterable[str]) -> None:
        """Number the next new row of each of `tables` after its highest id, once rows
        were written with their ids given (a copy of another database)."""

    @property
    @abc.abstractmethod
    def writing(self) -> bool:
        """True while the database can take writes (its writer runs, its pool is open)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Finish the writes under way, refuse new ones, close every connection."""

    async def text_search(self, words: Sequence[str]) -> tuple[str, list[Any]]:
        """A condition on threads `t`: those with a message that holds every one of
        `words` (botkit/search.py says how), and its parameters. SQLite's, on the FTS5
        index of migration 18, is in fts5.py; postgres.py has PostgreSQL's."""
        from .fts5 import text_search

        return await text_search(self, words)

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        return await self.read(lambda tx: tx.fetchall(sql, params))

    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> Row | None:
        return await self.read(lambda tx: tx.fetchone(sql, params))

    async def fetchval(self, sql: str, params: Iterable[Any] = ()) -> Any:
        return await self.read(lambda tx: tx.fetchval(sql, params))


# How far the send slots may fall behind the clock and still be handed out: a sender
# that comes late for its slot (a busy event loop, a slow claim, every gateway slot
# taken) catches up on that much instead of losing the time, so the rate holds. Later
# still, it catches up on PACE_SLACK and loses only the rest. Slots further behind than
# PACE_IDLE were idle time: the next starts now, with no burst. Either way, the slots
# handed out within any second span at most 1 + PACE_SLACK seconds.
PACE_SLACK = 0.1
PACE_IDLE = 1.0


def slots(next_at: float, now: float, interval: float, most: int) -> tuple[float, int, float]:
    """The send slots to hand out at `now`, the next being due at `next_at`: how long to
    wait for the first, how many (up to `most`: those due by then), and the next after."""
    if next_at >= now - PACE_SLACK:
        start = next_at
    elif next_at >= now - PACE_IDLE:
        start = now - PACE_SLACK
    else:
        start = now
    count = 1 if start > now else min(most, int((now - start) / interval) + 1)
    return max(0.0, start - now), count, start + count * interval


def is_url(value: str) -> bool:
    """True for a `postgresql://` (or `postgres://`) URL, False for a SQLite path."""
    return value.startswith(("postgresql://", "postgres://"))


def redact(value: str) -> str:
    """`value` fit to show: a URL's password (after the user, or `?password=`) as `***`;
    any other value (a SQLite path) as it is."""
    if "://" not in value:
        return value
    parts = urlsplit(value)
    if parts.password is not None:
        userinfo, _, host = parts.netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        parts = parts._replace(netloc=f"{user}:***@{host}")
    query = [(k, "***" if k == "password" else v) for k, v in parse_qsl(parts.query)]
    return urlunsplit(parts._replace(query=urlencode(query, safe="*")))


def existing_database(value: str) -> str:
    """The database at `value` (BOTKIT_DB or --db) for commands that read one: a
    PostgreSQL URL, or a SQLite file that exists (rather than an empty one created)."""
    return value if is_url(value) else str(existing_file(value))


def existing_file(path: str) -> Path:
    """The SQLite file at `path` (BOTKIT_DB or --db), for commands that read a database:
    a URL or a missing file is refused rather than an empty database created."""
    if is_url(path):
        raise ValidationError("BOTKIT_DB", f"{redact(path)} is a URL; this needs a SQLite file")
    if not Path(path).is_file():
        raise ValidationError("BOTKIT_DB", f"{path} does not exist")
    return Path(path)
