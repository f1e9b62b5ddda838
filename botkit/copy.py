"""Copy a whole botkit database into another: SQLite to PostgreSQL, or back.

The source is read, never changed. The destination gets the schema from `migrate`,
then every row of every table, parents before children (foreign keys), in batches of
one transaction each, ids and all; then each table's row count is compared. Stop the
app first: what it writes during a copy may be left out (and the counts then differ).
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from .db import Database, Row, Tx, existing_database, is_url, redact
from .errors import ValidationError
from .migrations import MIGRATIONS, Migration, migrate

BATCH = 1000
# The most values one statement binds: the least any SQLite takes (999 before 3.32).
VALUES_PER_STATEMENT = 999
LOOPBACK = {"localhost", "127.0.0.1", "::1"}


def created_tables(migrations: Iterable[Migration]) -> tuple[str, ...]:
    """The tables `migrations` create on both kinds of database (not SQLite's bookkeeping
    of its search index), in the order they create them: parents before children, as
    PostgreSQL creates no foreign key to a table that does not exist yet."""
    return tuple(
        match[1]
        for migration in migrations
        for statement in migration.statements_for("postgresql")
        if (match := re.match(r"\s*CREATE TABLE (\w+)", statement))
    )


#: Every table of botkit's data, parents first (schema_migrations is each database's own).
TABLES = created_tables(MIGRATIONS)


@dataclass(frozen=True)
class Counted:
    """A table's rows in the source and in the destination, after a copy."""

    table: str
    source: int
    destination: int


@dataclass(frozen=True)
class Copied:
    """What a copy did: each table's rows on both sides, the rows copied, how long."""

    counts: tuple[Counted, ...]
    rows: int
    seconds: float

    @property
    def differing(self) -> tuple[Counted, ...]:
        return tuple(count for count in self.counts if count.source != count.destination)


async def copy_database(
    source: str,
    destination: str,
    *,
    replace: bool = False,
    progress: Callable[[int, int], None] = lambda done, total: None,
) -> Copied:
    """Copy every row of `source` into `destination` (each a SQLite file or a PostgreSQL
    URL); `progress(rows done, rows in all)` after each batch. ValidationError for a
    source missing or of another schema version, a destination that is the source, or
    one that holds rows (unless `replace`: they are deleted first)."""
    _check_pair(source, destination)
    started = time.monotonic()
    async with contextlib.AsyncExitStack() as stack:
        src = await _open(stack, source, "SOURCE")
        await _check_version(src, source)
        dst = await _open(stack, destination, "DEST")
        await migrate(dst)
        await _clear(dst, destination, replace)
        total, done = sum((await _counts(src)).values()), 0
        progress(done, total)
        for table in TABLES:
            async with contextlib.aclosing(_batches(src, table)) as batches:
                async for batch in batches:
                    await dst.write(lambda tx, table=table, batch=batch: _insert(tx, table, batch))
                    done += len(batch)
                    progress(done, total)
        await dst.advance_ids(TABLES)
        in_source, in_destination = await _counts(src), await _counts(dst)
    counts = tuple(Counted(t, in_source[t], in_destination[t]) for t in TABLES)
    return Copied(counts, done, time.monotonic() - started)


def _check_pair(source: str, destination: str) -> None:
    """Refuse a source that is missing, and a destination that is the source itself."""
    try:
        existing_database(source)
    except ValidationError as exc:
        raise ValidationError("SOURCE", exc.reason) from None
    if not is_url(destination) and not Path(destination).parent.is_dir():
        raise ValidationError("DEST", f"{destination}: its folder does not exist")
    if _where(source) == _where(destination):
        raise ValidationError("DEST", f"{redact(destination)} is the source itself")


def _where(database: str) -> tuple[str | int | Path, ...]:
    """What tells one database from another: a file, or a server and a database name."""
    if not is_url(database):
        return (Path(database).resolve(),)
    parts = urlsplit(database)
    host = parts.hostname or "localhost"
    name = parts.path.strip("/") or parts.username or ""
    return ("localhost" if host in LOOPBACK else host, parts.port or 5432, name)


async def _open(stack: contextlib.AsyncExitStack, database: str, field: str) -> Database:
    """Open `database`, to be closed with `stack`; a file that is not SQLite is refused."""
    try:
        db = await Database.open(database)
    except sqlite3.DatabaseError as exc:
        raise ValidationError(field, f"{database} is not a SQLite database ({exc})") from None
    stack.push_async_callback(db.close)
    return db


async def _check_version(db: Database, source: str) -> None:
    """Refuse a source whose schema is not this botkit's: the copy's columns are the
    source's, and the destination gets the latest schema."""
    latest = max(migration.version for migration in MIGRATIONS)
    try:
        version = await db.fetchval("SELECT max(version) FROM schema_migrations")
    except Exception:  # no such table (SQLite's and PostgreSQL's errors share no type)
        raise ValidationError("SOURCE", f"{redact(source)} is not a botkit database") from None
    if version is None or version < latest:
        raise ValidationError(
            "SOURCE",
            f"{redact(source)} has schema version {version or 0}, behind this botkit's "
            f"{latest}: run `botkit migrate --db {redact(source)}` first",
        )
    if version > latest:
        raise ValidationError(
            "SOURCE",
            f"{redact(source)} has schema version {version}, newer than this botkit's "
            f"{latest}: copy it with the botkit that wrote it",
        )


async def _counts(db: Database) -> dict[str, int]:
    """Each table's number of rows, in one consistent view."""

    async def count(tx: Tx) -> dict[str, int]:
        return {table: await tx.fetchval(f"SELECT count(*) FROM {table}") for table in TABLES}

    return await db.read(count)


async def _clear(db: Database, destination: str, replace: bool) -> None:
    """Refuse a destination that holds rows; with `replace`, delete them, children first."""
    held = {table: rows for table, rows in (await _counts(db)).items() if rows}
    if held and not replace:
        tables = ", ".join(f"{table} ({rows})" for table, rows in held.items())
        raise ValidationError(
            "DEST",
            f"{redact(destination)} already holds rows: {tables}; "
            "--replace deletes them before the copy",
        )

    async def delete(tx: Tx) -> None:
        for table in reversed(TABLES):
            await tx.execute(f"DELETE FROM {table}")

    if held:
        await db.write(delete)


async def _batches(db: Database, table: str) -> AsyncIterator[list[Row]]:
    """The rows of `table`, `BATCH` at a time."""
    batch: list[Row] = []
    async for row in db.stream(f"SELECT * FROM {table}", batch=BATCH):
        batch.append(row)
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


async def _insert(tx: Tx, table: str, rows: list[Row]) -> None:
    """Insert rows as they were read, ids and all, by their columns' names: as many rows
    a statement as `VALUES_PER_STATEMENT` allows (a statement a row takes twice as long)."""
    columns = list(rows[0].keys())
    row_marks = f"({', '.join('?' for _ in columns)})"
    step = max(1, VALUES_PER_STATEMENT // len(columns))
    for start in range(0, len(rows), step):
        chunk = rows[start : start + step]
        await tx.execute(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
            + ", ".join([row_marks] * len(chunk)),
            [value for row in chunk for value in row],
        )
