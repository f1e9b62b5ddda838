"""Migrations: applied once, recorded, and a later one keeps the data already there."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import pytest
from conftest import ROOT, rows

from botkit.db import Database, is_url, redact
from botkit.messages import IncomingMO
from botkit.migrations import MIGRATIONS, Migration, migrate
from botkit.store import Store
from botkit.testing import Harness

pytestmark = pytest.mark.backends


def has_table(database: str, name: str) -> bool:
    try:
        rows(database, f"SELECT count(*) FROM {name}")
    except Exception:
        return False
    return True


async def test_fresh_database_gets_every_migration_once(database):
    db = await Database.open(database)
    assert await migrate(db) == [m.version for m in MIGRATIONS]
    assert await migrate(db) == []
    await db.close()
    recorded = rows(database, "SELECT version, name FROM schema_migrations ORDER BY version")
    assert [(r[0], r[1]) for r in recorded] == [(m.version, m.name) for m in MIGRATIONS]
    if not is_url(database):
        assert rows(database, "PRAGMA journal_mode")[0][0] == "wal"


async def test_processes_starting_together_migrate_once(database):
    dbs = [await Database.open(database) for _ in range(3)]
    try:
        applied = await asyncio.gather(*(migrate(db) for db in dbs))
    finally:
        for db in dbs:
            await db.close()
    assert sorted(v for each in applied for v in each) == [m.version for m in MIGRATIONS]


async def test_a_later_migration_adds_to_an_existing_database_without_loss(database):
    path = database
    db = await Database.open(path)
    await migrate(db)
    store = Store(db)
    await store.inbox.add(
        IncomingMO(gateway_id=9, source="+61400000001", destination="4433", content="kept")
    )
    later = Migration(
        MIGRATIONS[-1].version + 1,
        "test: a table added later",
        ("CREATE TABLE later_things (id INTEGER PRIMARY KEY, name TEXT NOT NULL)",),
    )
    assert await migrate(db, (*MIGRATIONS, later)) == [later.version]
    await db.close()
    assert rows(path, "SELECT content FROM messages")[0][0] == "kept"
    assert rows(path, "SELECT count(*) FROM later_things")[0][0] == 0


async def test_a_failing_migration_leaves_nothing_half_done(database):
    path = database
    db = await Database.open(path)
    await migrate(db)
    broken = Migration(
        MIGRATIONS[-1].version + 1,
        "test: broken",
        ("CREATE TABLE half (id INTEGER)", "THIS IS NOT SQL"),
    )
    try:
        await migrate(db, (*MIGRATIONS, broken))
    except Exception as exc:
        assert "syntax error" in str(exc)
    else:
        raise AssertionError("the broken migration was applied")
    await db.close()
    assert not has_table(path, "half")
    versions = [r[0] for r in rows(path, "SELECT version FROM schema_migrations")]
    assert broken.version not in versions


def test_botkit_migrate_brings_a_database_up_to_date_and_says_so(database):
    import subprocess
    import sys
    from pathlib import Path

    botkit = str(Path(sys.executable).parent / "botkit")
    shown = redact(database)  # a URL's password is not printed
    first = subprocess.run([botkit, "migrate", "--db", database], capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    assert lines[0] == f"applied 1: {MIGRATIONS[0].name}"
    assert len(lines) == len(MIGRATIONS) + 1
    assert lines[-1] == f"{shown}: schema version {MIGRATIONS[-1].version}, up to date"
    again = subprocess.run([botkit, "migrate", "--db", database], capture_output=True, text=True)
    assert again.stdout.splitlines() == [
        f"{shown}: schema version {MIGRATIONS[-1].version}, already up to date"
    ]
    if is_url(database):
        assert urlsplit(database).password not in first.stdout + first.stderr


# A database of the first schema version, as the first release of botkit left it: a
# conversation under way, an MO waiting to be handled, an MT waiting to be sent and
# one delivered with its receipts. (Ids as both backends number them: from 1.)
VERSION_1_ROWS = (
    """INSERT INTO threads (bot, handset, address, state, data, status, created_at,
           updated_at)
       VALUES ('hello', '+61400000001', '4433', 'ask_name', '{"visits":1}', 'open',
               '2026-01-04T09:00:00.000000Z', '2026-01-04T09:00:00.000000Z')""",
    """INSERT INTO messages (direction, gateway_id, thread_id, handset, address, content,
           encoding, status, delivery, created_at, updated_at)
       VALUES ('mo', 9000000000000000001, 1, '+61400000001', '4433', 'hello', 'GSM-7',
               'handled', NULL, '2026-01-04T09:00:00.000000Z', '2026-01-04T09:00:00.000000Z'),
              ('mt', 9000000000000000002, 1, '+61400000001', '4433', 'What is your name?',
               'GSM-7', 'accepted', 'received', '2026-01-04T09:00:01.000000Z',
               '2026-01-04T09:00:02.000000Z'),
              ('mt', NULL, 1, '+61400000001', '4433', 'A reply still queued', 'GSM-7',
               'queued', NULL, '2026-01-04T09:00:03.000000Z', '2026-01-04T09:00:03.000000Z'),
              ('mo', 9000000000000000004, NULL, '+61400000001', '4433', 'Grace', 'GSM-7',
               'received', NULL, '2026-01-04T09:01:00.000000Z', '2026-01-04T09:01:00.000000Z')""",
    "INSERT INTO inbox (message_id, handset) VALUES (4, '+61400000001')",
    """INSERT INTO outbox (message_id, state, next_attempt_at)
       VALUES (3, 'queued', '2026-01-04T09:00:03.000000Z')""",
    """INSERT INTO deliveries (gateway_id, status, message_id, received_at)
       VALUES (9000000000000000002, 'submitted', 2, '2026-01-04T09:00:01.500000Z'),
              (9000000000000000002, 'received', 2, '2026-01-04T09:00:02.000000Z')""",
)


async def test_a_database_of_the_first_version_upgrades_to_the_latest_with_nothing_lost(
    database,
):
    db = await Database.open(database)
    assert await migrate(db, MIGRATIONS[:1]) == [1]

    async def fill(tx):
        for statement in VERSION_1_ROWS:
            await tx.execute(statement)

    await db.write(fill)
    before = {
        table: [dict(r) for r in rows(database, f"SELECT * FROM {table} ORDER BY 1")]
        for table in ("threads", "messages", "inbox", "outbox", "deliveries")
    }
    assert await migrate(db) == [m.version for m in MIGRATIONS[1:]]
    await db.close()

    for table, kept in before.items():  # every row and value kept; new columns at defaults
        after = [dict(r) for r in rows(database, f"SELECT * FROM {table} ORDER BY 1")]
        assert [{k: row[k] for k in old} for row, old in zip(after, kept, strict=True)] == kept
    (outbox,) = rows(database, "SELECT handset, claimed_by FROM outbox")
    assert (outbox["handset"], outbox["claimed_by"]) == ("+61400000001", None)  # filled in
    assert {r["exempt"] for r in rows(database, "SELECT exempt FROM messages")} == {0}

    # The app takes over where the first version stopped: the queued MT goes out, the
    # waiting MO is handled in its thread, and new rows get new ids.
    async with Harness(ROOT / "bots", ROOT / "templates", db=database) as harness:
        await harness.settle()
        sent = [m.content for m in harness.simulator.inbox("+61400000001")]
        assert sent[0] == "A reply still queued"
        assert sent[1].startswith("Nice to meet you, Grace!")
    (grace,) = rows(database, "SELECT status, thread_id FROM messages WHERE id = 4")
    assert (grace["status"], grace["thread_id"]) == ("handled", 1)
    (reply,) = rows(database, "SELECT direction, content FROM messages WHERE id > 4")
    assert (reply["direction"], reply["content"]) == ("mt", sent[1])  # a new id, after 4
