"""botkit backup: a consistent, checked copy of the database while the app writes to it."""

from __future__ import annotations

import asyncio
import sqlite3
import time

import pytest
from conftest import eventually, rows

from botkit.backup import backup
from botkit.cli import main

TABLES = ("messages", "threads", "inbox", "outbox", "deliveries", "schema_migrations")


def counts(path) -> dict[str, int]:
    return {table: rows(path, f"SELECT count(*) FROM {table}")[0][0] for table in TABLES}


def integrity(path) -> list[str]:
    return [row[0] for row in rows(path, "PRAGMA integrity_check")]


async def settle(app, sim) -> None:
    """Wait until every MO is handled, every MT answered and every DLR delivered."""
    store = app.state.runtime.store

    async def idle() -> bool:
        return await store.inbox.depth() == 0 and await store.outbox.depth() == 0

    await eventually(idle)
    await sim.drain()
    await eventually(idle)


async def test_backup_while_the_app_writes_is_a_consistent_snapshot(app, settings, tmp_path):
    sim = app.state.simulator
    stop = asyncio.Event()

    async def chatter() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            await sim.send_mo(f"+614000000{n % 20:02d}", "hello" if n % 3 else "Ada")

    writer = asyncio.create_task(chatter())
    await eventually(lambda: counts(settings.db)["messages"] > 30)
    before = counts(settings.db)
    steps: list[tuple[int, int]] = []

    def progress(done: int, total: int) -> None:
        steps.append((done, total))
        time.sleep(0.005)  # give the app time to write between steps

    target = tmp_path / "backups" / "copy.db"
    target.parent.mkdir()
    pages = await asyncio.to_thread(backup, settings.db, target, pages=1, progress=progress)
    during = counts(settings.db)
    stop.set()
    await writer

    assert during["messages"] > before["messages"]  # the app wrote while the copy was made
    assert len(steps) > 1 and steps[-1] == (pages, pages)
    assert [done for done, _ in steps] == sorted(done for done, _ in steps)  # never restarted
    assert integrity(target) == ["ok"]
    # The full-text index of the copy agrees with its messages (FTS5's own check).
    assert rows(target, "INSERT INTO messages_fts (messages_fts) VALUES ('integrity-check')") == []
    indexed = "SELECT count(*) FROM messages_fts WHERE messages_fts MATCH 'hello'"
    held = "SELECT count(*) FROM messages WHERE content LIKE '%hello%'"
    assert rows(target, indexed)[0][0] == rows(target, held)[0][0] > 0
    copied = counts(target)
    assert before["messages"] <= copied["messages"] <= during["messages"]
    orphans = "SELECT count(*) FROM inbox WHERE message_id NOT IN (SELECT id FROM messages)"
    assert rows(target, orphans)[0][0] == 0
    assert sorted(p.name for p in target.parent.iterdir()) == ["copy.db"]  # no -wal, no temp

    await settle(app, sim)
    code = await asyncio.to_thread(main, ["backup", str(target), "--db", settings.db, "--force"])
    assert code == 0
    assert counts(target) == counts(settings.db)
    assert rows(target, "PRAGMA journal_mode")[0][0] == "delete"


async def test_an_existing_file_is_kept_without_force(app, settings, tmp_path, capsys):
    target = tmp_path / "copy.db"
    target.write_text("precious")
    code = await asyncio.to_thread(main, ["backup", str(target), "--db", settings.db])
    assert code == 2
    assert "exists; pass --force" in capsys.readouterr().err
    assert target.read_text() == "precious"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


@pytest.mark.parametrize(
    ("db", "path", "message"),
    [
        ("missing.db", "copy.db", "missing.db does not exist"),
        ("postgresql://db/botkit", "copy.db", "is a URL"),
        ("botkit.db", "no/such/folder/copy.db", "does not exist"),
        ("botkit.db", "botkit.db", "is the database itself"),
    ],
)
def test_bad_arguments_are_clear_errors(tmp_path, monkeypatch, capsys, db, path, message):
    monkeypatch.chdir(tmp_path)
    sqlite3.connect("botkit.db").close()
    assert main(["backup", path, "--db", db, "--force"]) == 2
    assert message in capsys.readouterr().err


def test_a_file_that_is_not_a_database_is_a_failed_backup(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "botkit.db").write_text("not a database " * 100)
    assert main(["backup", "copy.db", "--db", "botkit.db"]) == 1
    assert "backup failed" in capsys.readouterr().err
    assert not (tmp_path / "copy.db").exists()
