"""botkit db copy: a whole database from SQLite to PostgreSQL and back, checked."""

from __future__ import annotations

import asyncio
import functools
import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any

from conftest import ROOT, rows
from postgres import drop_database, fresh_database

from botkit.addresses import OurNumbers
from botkit.broadcast import Row, broadcast
from botkit.cli import main
from botkit.commands.db import report
from botkit.copy import TABLES, Copied, Counted
from botkit.db import Database
from botkit.messages import IncomingMO
from botkit.migrations import MIGRATIONS, migrate
from botkit.search import filters
from botkit.store import Store
from botkit.store.broadcasts import Plan
from botkit.testing import Harness

BOTS, TEMPLATES = ROOT / "bots", ROOT / "templates"


async def fill(path: Path) -> str:
    """A SQLite database as the app leaves it: conversations, a STOP, a list's double
    opt-in, a survey under way, broadcasts (one held for tomorrow), a delivery report,
    an MO that came in while the app was down, a contact with a visit booked (its campaign's
    events), a webhook's deliveries, and a dashboard session."""
    hooks = {"url": "https://crm.example/hooks", "secret": "whsec_0123456789abcdef"}
    told = {f"webhook_{key}": value for key, value in hooks.items()}
    async with Harness(BOTS, TEMPLATES, db=path, webhook_events="mo.received", **told) as harness:
        # Webhooks: one of the settings told of each MO (deliveries and their attempts),
        # and one kept in the database.
        await harness.runtime.store.webhooks.add(
            "https://crm.example/other", hooks["secret"], ("thread.ended",)
        )
        ada, grace, joan = (harness.phone(f"+6140000000{n}") for n in (1, 2, 3))
        await ada.send("hello")
        (greeting,) = await ada.send("Ada")
        await ada.deliver(greeting, "received")
        await grace.send("hello")
        await grace.send("STOP")
        await grace.send("STOPALL")
        await grace.send("START")
        await joan.send("JOIN")
        await joan.send("YES")
        await joan.send("SURVEY")
        await joan.send("5")
        # The clinic's campaign: events of the contact, timers of no conversation yet.
        await ada.update_contact(name="Ada", fields={"appointment_at": "2026-01-07 10:00"})
        store, templates = harness.runtime.store, harness.runtime.templates
        tomorrow = harness.clock() + timedelta(days=1)
        for plan, at in (
            (Plan(name="deals", address="4433", template="optin/confirm.txt"), tomorrow),
            (Plan(name="asked", address="4433", bot="survey", entry="survey:satisfaction"), None),
        ):
            recipients = [Row(2, "+61400000004"), Row(3, "+61400000002")]
            await broadcast(
                store,
                templates,
                plan,
                recipients,
                numbers=OurNumbers(["4433"], message_class="mt_message"),
                at=at,
            )
        await harness.advance()  # wakes the workers: the broadcasts did not
    db = await Database.open(str(path))
    try:
        mo = IncomingMO(gateway_id=77, source="+61400000005", destination="4433", content="hi")
        store = Store(db)
        await store.inbox.add(mo)
        await store.sessions.start("0" * 64, "ops", "token", "fingerprint", age=3600)
    finally:
        await db.close()
    return str(path)


def contents(database: str) -> dict[str, list[dict[str, Any]]]:
    """Every table's rows as dicts, ordered by primary key (in Python: the two
    databases may collate text differently)."""
    keys = primary_keys()
    return {
        table: sorted(
            (
                dict(zip(row.keys(), row, strict=True))
                for row in rows(database, f"SELECT * FROM {table}")
            ),
            key=lambda row, table=table: tuple(row[key] for key in keys[table]),
        )
        for table in TABLES
    }


@functools.cache
def primary_keys() -> dict[str, list[str]]:
    """Each table's primary key columns, as SQLite describes the latest schema."""
    conn = sqlite3.connect(":memory:")
    conn.row_factory = sqlite3.Row
    for migration in MIGRATIONS:
        for statement in migration.statements:
            conn.execute(statement)
    keys = {}
    for table in TABLES:
        columns = conn.execute(f"PRAGMA table_info({table})").fetchall()
        keys[table] = [c["name"] for c in sorted(columns, key=lambda c: c["pk"]) if c["pk"]]
    conn.close()
    return keys


async def searched(database: str, q: str) -> list[str]:
    """The handsets of the conversations the dashboard finds with `q=`."""
    db = await Database.open(database)
    try:
        threads, _ = await Store(db).conversations.page(None, filters({"q": q}))
    finally:
        await db.close()
    return sorted(row["handset"] for row in threads)


async def copy(*args: str) -> int:
    """`botkit db copy ARGS`, in-process, as the command line runs it."""
    return await asyncio.to_thread(main, ["db", "copy", *args])


def test_the_tables_are_every_table_of_the_schema_parents_first(tmp_path):
    db = tmp_path / "botkit.db"

    async def make() -> None:
        database = await Database.open(str(db))
        await migrate(database)
        await database.close()

    asyncio.run(make())
    # Not the full-text index (a virtual table, its shadow tables, and the messages it
    # has yet to index): each database indexes the rows it is given.
    listed = rows(db, "PRAGMA table_list")
    tables = {r["name"] for r in listed if (r["schema"], r["type"]) == ("main", "table")}
    own = {"schema_migrations", "sqlite_schema", "messages_fts_pending"}
    assert sorted(TABLES) == sorted(tables - own)
    for child in TABLES:
        for reference in rows(db, f"PRAGMA foreign_key_list({child})"):
            assert TABLES.index(reference["table"]) < TABLES.index(child), (child, reference)


async def test_sqlite_copies_to_postgresql_and_back_and_the_copy_runs_the_app(
    tmp_path, postgres, capsys
):
    source = await fill(tmp_path / "botkit.db")
    filled = contents(source)
    empty = [table for table, found in filled.items() if not found]
    assert empty == ["pace"]  # one process on SQLite keeps its send slots in memory
    url = await fresh_database(postgres)
    try:
        assert await copy(source, url) == 0
        out, err = capsys.readouterr()
        assert contents(url) == filled
        total = sum(len(found) for found in filled.values())
        summary = out.splitlines()[-1]
        assert summary.startswith(f"copied {total} rows of {len(TABLES)} tables from {source}")
        assert "threads" in out and postgres.password not in out + err

        async with Harness(BOTS, TEMPLATES, db=url) as harness:
            await harness.phone("+61400000009").send("hello")
        for table in ("threads", "messages"):
            before = max(row["id"] for row in filled[table])
            new = [r["id"] for r in rows(url, f"SELECT id FROM {table} WHERE id > ?", (before,))]
            assert new, f"no new {table} after the copy's highest id {before}"
        assert len(rows(url, "SELECT * FROM inbox")) == 0  # the waiting MO was handled

        back = str(tmp_path / "back.db")
        assert await copy(url, back) == 0
        assert contents(back) == contents(url)
        assert postgres.password not in "".join(capsys.readouterr())
        for copied in (url, back):  # each database indexed the messages it was given
            assert await searched(copied, "ada") == ["+61400000001"]
            assert await searched(copied, "nice meet") == ["+61400000001"]
            assert "+61400000009" in await searched(copied, "what's your name")
        assert (
            rows(back, "INSERT INTO messages_fts (messages_fts) VALUES ('integrity-check')") == []
        )
    finally:
        await drop_database(postgres, url)


async def test_a_copy_between_two_databases_of_one_kind(tmp_path, postgres):
    source = await fill(tmp_path / "botkit.db")
    second = str(tmp_path / "second.db")
    assert await copy(source, second) == 0
    assert contents(second) == contents(source)
    first, other = await fresh_database(postgres), await fresh_database(postgres)
    try:
        assert await copy(source, first) == 0
        assert await copy(first, other) == 0
        assert contents(other) == contents(source)
    finally:
        await drop_database(postgres, first)
        await drop_database(postgres, other)


async def test_a_destination_with_rows_is_refused_unless_replaced(tmp_path, postgres, capsys):
    big = await fill(tmp_path / "big.db")
    small = str(tmp_path / "small.db")
    async with Harness(BOTS, TEMPLATES, db=small) as harness:
        await harness.phone().send("hello")
    url = await fresh_database(postgres)
    try:
        assert await copy(big, url) == 0
        capsys.readouterr()
        assert await copy(small, url) == 2
        err = capsys.readouterr().err
        assert "already holds rows: threads (" in err and "--replace" in err
        assert contents(url) == contents(big)

        assert await copy(small, url, "--replace") == 0
        assert contents(url) == contents(small)
        async with Harness(BOTS, TEMPLATES, db=url) as harness:
            await harness.phone("+61400000009").send("hello")
        assert [r["id"] for r in rows(url, "SELECT id FROM threads ORDER BY id")] == [1, 2]
    finally:
        await drop_database(postgres, url)


async def test_a_source_behind_on_migrations_is_refused_and_left_alone(tmp_path, capsys):
    source, dest = tmp_path / "old.db", tmp_path / "new.db"
    db = await Database.open(str(source))
    await migrate(db, MIGRATIONS[:-1])
    await db.close()
    assert await copy(str(source), str(dest)) == 2
    err = capsys.readouterr().err
    assert f"behind this botkit's {MIGRATIONS[-1].version}" in err
    assert f"run `botkit migrate --db {source}` first" in err
    versions = [r[0] for r in rows(source, "SELECT version FROM schema_migrations")]
    assert max(versions) == MIGRATIONS[-2].version
    assert not dest.exists()


async def test_bad_sources_and_destinations_are_refused_clearly(tmp_path, capsys):
    source = await fill(tmp_path / "botkit.db")
    not_sqlite = tmp_path / "notes.txt"
    not_sqlite.write_text("not a database, but long enough to look at " * 10)
    for args, said in (
        ((str(tmp_path / "missing.db"), str(tmp_path / "to.db")), "SOURCE: "),
        ((source, str(tmp_path / "." / "botkit.db")), "is the source itself"),
        ((source, str(tmp_path / "no" / "such" / "folder.db")), "its folder does not exist"),
        ((str(not_sqlite), str(tmp_path / "to.db")), "is not a SQLite database"),
    ):
        assert await copy(*args) == 2, args
        assert said in capsys.readouterr().err


async def test_a_password_is_never_shown_not_even_when_the_connection_fails(
    tmp_path, postgres, capsys
):
    source = await fill(tmp_path / "botkit.db")
    unreachable = postgres.url("botkit").replace(f":{postgres.port}/", ":1/")
    assert await copy(source, unreachable) == 1
    out, err = capsys.readouterr()
    assert "could not connect to postgresql://botkit:***@127.0.0.1:1/botkit" in err
    assert postgres.password not in out + err
    assert await copy(unreachable, str(tmp_path / "to.db")) == 1
    out, err = capsys.readouterr()
    assert "***" in err and postgres.password not in out + err


def test_counts_that_differ_are_shown_and_fail(capsys):
    copied = Copied((Counted("threads", 2, 2), Counted("messages", 9, 8)), rows=10, seconds=0.1)
    assert report(copied, "botkit.db", "postgresql://u:secret@db/botkit") == 1
    out, err = capsys.readouterr()
    assert "messages                          9            8" in out
    assert "row counts differ: messages (9 in the source, 8 in the destination)" in err
