"""Migrations: applied once, recorded, and a later one keeps the data already there."""

from __future__ import annotations

import pytest
from conftest import rows

from botkit.db import Database
from botkit.messages import IncomingMO
from botkit.migrations import MIGRATIONS, Migration, migrate
from botkit.store import Store

pytestmark = pytest.mark.backends


async def test_fresh_database_gets_every_migration_once(tmp_path):
    path = str(tmp_path / "m.db")
    db = await Database.open(path)
    assert await migrate(db) == [m.version for m in MIGRATIONS]
    assert await migrate(db) == []
    await db.close()
    recorded = rows(path, "SELECT version, name FROM schema_migrations ORDER BY version")
    assert [(r[0], r[1]) for r in recorded] == [(m.version, m.name) for m in MIGRATIONS]
    assert rows(path, "PRAGMA journal_mode")[0][0] == "wal"


async def test_a_later_migration_adds_to_an_existing_database_without_loss(tmp_path):
    path = str(tmp_path / "m.db")
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


async def test_a_failing_migration_leaves_nothing_half_done(tmp_path):
    path = str(tmp_path / "m.db")
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
    assert rows(path, "SELECT name FROM sqlite_master WHERE name = 'half'") == []
    versions = [r[0] for r in rows(path, "SELECT version FROM schema_migrations")]
    assert broken.version not in versions


def test_botkit_migrate_brings_a_database_up_to_date_and_says_so(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    from botkit.migrations import MIGRATIONS

    botkit = str(Path(sys.executable).parent / "botkit")
    db = tmp_path / "botkit.db"
    first = subprocess.run([botkit, "migrate", "--db", str(db)], capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    assert lines[0] == f"applied 1: {MIGRATIONS[0].name}"
    assert len(lines) == len(MIGRATIONS) + 1
    assert lines[-1] == f"{db}: schema version {MIGRATIONS[-1].version}, up to date"
    again = subprocess.run([botkit, "migrate", "--db", str(db)], capture_output=True, text=True)
    assert again.stdout.splitlines() == [
        f"{db}: schema version {MIGRATIONS[-1].version}, already up to date"
    ]
