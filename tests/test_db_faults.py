"""The database locked by another process, and the disk full (issues 6 and 16).

While the database cannot be written, the MO and DLR callbacks are kept in the spool
and answered 200; once the database can be written again they are stored and handled
once. Only when the spool cannot be written either (the disk it shares with the
database is full) do they answer `503 ERROR Temporarily unavailable`, which the
gateway retries. Nothing accepted before is lost. /healthz stays 200: the database is
still reachable for reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from subprocess import PIPE

import httpx
import pytest
from conftest import ROOT, client_to, eventually, rows, running
from servers import free_port, output, poll, start, wait_for

from botkit import Bot, Context, Settings, create_app
from botkit.testing import FakeClock

pytestmark = pytest.mark.fault

MO_URL = "/callbacks/test-token/mo"
DLR_URL = "/callbacks/test-token/dlr"
OK = (200, "OK")
UNAVAILABLE = (503, "ERROR Temporarily unavailable")
# Past the dispatcher's claim lease: an MO whose commit failed is claimed again.
PAST_THE_LEASE = 61
# For a whole test, the app's start and stop included: far beyond what one takes on a
# loaded machine (a stop may wait half a minute for the sender's last tries to record
# an answer), so that a hang fails the test instead of holding up CI.
DEADLINE = 180

# Holds the write lock of the database named on its command line until its stdin closes.
LOCKER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.read()
conn.rollback()
"""


def mo(gateway_id: int, text: str, handset: str = "+61400000001") -> dict[str, str]:
    """An MO callback's parameters."""
    return {"id": str(gateway_id), "source": handset, "destination": "4433", "content": text}


def dlr(gateway_id: int) -> dict[str, str]:
    """A DLR callback's parameters, with a carrier's own status (the simulator's DLRs
    for the app's replies carry the spec's statuses)."""
    return {"id": str(gateway_id), "status": "DELIVRD"}


def receipts(path: str) -> list[int]:
    """The gateway ids of the DLRs `dlr` made that are kept, in the order kept."""
    found = rows(path, "SELECT gateway_id FROM deliveries WHERE status = 'DELIVRD' ORDER BY id")
    return [row[0] for row in found]


def answer(response: httpx.Response) -> tuple[int, str]:
    """A response's status code and text."""
    return response.status_code, response.text


@contextlib.asynccontextmanager
async def locked(path: str) -> AsyncIterator[None]:
    """Another process holds `BEGIN EXCLUSIVE` on the database for the block."""
    command = [sys.executable, "-c", LOCKER, path]
    with subprocess.Popen(command, stdin=PIPE, stdout=PIPE, text=True) as locker:
        assert locker.stdin is not None and locker.stdout is not None
        try:
            assert await asyncio.to_thread(locker.stdout.readline) == "locked\n"
            yield
        finally:
            locker.stdin.close()
            assert await asyncio.to_thread(locker.wait, 20) == 0


def stored_mos(path: str) -> dict[int, str]:
    """The status of each stored MO, by gateway id."""
    found = rows(path, "SELECT gateway_id, status FROM messages WHERE direction = 'mo'")
    return {row["gateway_id"]: row["status"] for row in found}


def replies(path: str) -> list[tuple[str, str]]:
    """(handset, content) of every MT, in the order they were written."""
    found = rows(path, "SELECT handset, content FROM messages WHERE direction = 'mt' ORDER BY id")
    return [(row["handset"], row["content"]) for row in found]


def waiting_bot(entered: asyncio.Event, gate: asyncio.Event) -> Bot:
    """A bot whose WAIT handler holds its MO until `gate` opens; anything else is
    answered "got it"."""
    bot = Bot("waiting")

    @bot.keyword("WAIT")
    async def wait(ctx: Context) -> None:
        entered.set()
        await gate.wait()
        ctx.reply("waited")

    @bot.fallback
    async def answer(ctx: Context) -> None:
        ctx.reply("got it")

    return bot


async def test_a_locked_database_spools_callbacks_and_nothing_accepted_is_lost(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    entered, gate = asyncio.Event(), asyncio.Event()
    clock = FakeClock()
    app = create_app(settings, bots=[waiting_bot(entered, gate)], clock=clock)
    async with asyncio.timeout(DEADLINE), running(app), client_to(app) as client:
        # Accepted before the lock: one handled, one in its handler when the lock comes.
        assert answer(await client.get(MO_URL, params=mo(1, "hello"))) == OK
        await eventually(lambda: stored_mos(settings.db) == {1: "handled"})
        assert answer(await client.get(MO_URL, params=mo(2, "WAIT", "+61400000002"))) == OK
        await asyncio.wait_for(entered.wait(), 10)

        async with locked(settings.db):
            gate.set()  # MO 2's handler returns; its commit meets the lock
            new_mo, receipt, health = await asyncio.gather(
                client.get(MO_URL, params=mo(3, "after", "+61400000003")),
                client.get(DLR_URL, params=dlr(77)),
                client.get("/healthz"),
            )
            assert answer(new_mo) == OK  # spooled
            assert answer(receipt) == OK
            assert health.status_code == 200 and health.text.startswith("OK")
            assert app.state.runtime.intake.waiting == 0  # a spooled MO waits no more
            # Behind the spool's tries to store, each waiting out the lock too.
            await eventually(lambda: "mo 2: could not commit, will retry" in caplog.text, 60)
            assert "mo 3: spooled, to be stored later" in caplog.text
            assert stored_mos(settings.db) == {1: "handled", 2: "received"}
            assert receipts(settings.db) == []

        # The spool is stored; a repeat of the DLR is stored once; MO 2's claim runs
        # out and it is handled again.
        await eventually(lambda: receipts(settings.db) == [77], timeout=30)
        assert answer(await client.get(DLR_URL, params=dlr(77))) == OK
        clock.advance(PAST_THE_LEASE)
        app.state.runtime.dispatcher.wake()
        await eventually(lambda: set(stored_mos(settings.db).values()) == {"handled"})
        assert sorted(stored_mos(settings.db)) == [1, 2, 3]
        assert sorted(replies(settings.db)) == [
            ("+61400000001", "got it"),
            ("+61400000002", "waited"),
            ("+61400000003", "got it"),
        ]
        assert receipts(settings.db) == [77]


async def test_a_full_database_spools_callbacks_and_nothing_accepted_is_lost(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    app = create_app(settings, clock=clock)
    spool = app.state.runtime.spool
    async with asyncio.timeout(DEADLINE), running(app), client_to(app) as client:
        for n in range(1, 4):  # before the database fills
            assert answer(await client.get(MO_URL, params=mo(n, "hi", f"+6140000{n:04}"))) == OK
        db = app.state.runtime.db
        pages = await db.fetchval("PRAGMA page_count")
        # SQLite's own limit on the file's size: the next write that needs a page fails
        # with SQLITE_FULL, as when the disk is full. It holds for this connection only.
        await db.write(lambda tx: tx.execute(f"PRAGMA max_page_count = {pages}"))

        # The database fills: MOs are stored until one is spooled, and all after it.
        accepted = [1, 2, 3]
        for n in range(4, 1000):
            response = await client.get(MO_URL, params=mo(n, "x" * 500, f"+6140000{n:04}"))
            assert answer(response) == OK
            accepted.append(n)
            if spool.waiting:
                break
        for late in range(n + 1, n + 4):
            params = mo(late, "late", f"+6140000{late:04}")
            assert answer(await client.get(MO_URL, params=params)) == OK
            accepted.append(late)
        for n in range(1, 4):
            assert answer(await client.get(DLR_URL, params=dlr(n))) == OK
        assert "database or disk is full" in caplog.text
        health = await client.get("/healthz")
        assert health.status_code == 200 and "callbacks waiting to be stored" in health.text
        assert len(stored_mos(settings.db)) < len(accepted)

        # Space is freed: what waited in the spool is stored and handled, once.
        await db.write(lambda tx: tx.execute("PRAGMA max_page_count = 1073741823"))
        await eventually(lambda: spool.waiting == 0, timeout=60)
        clock.advance(PAST_THE_LEASE)  # MOs whose handling could not commit
        app.state.runtime.dispatcher.wake()
        await eventually(lambda: stored_mos(settings.db) == dict.fromkeys(accepted, "handled"))
        # Handled once: one reply to each handset.
        handsets = [handset for handset, _ in replies(settings.db)]
        assert sorted(handsets) == [f"+6140000{n:04}" for n in accepted]
        assert receipts(settings.db) == [1, 2, 3]


def mount_namespace() -> list[str] | None:
    """How to run a command in a mount namespace of its own, where it may mount a tmpfs
    that no one else sees: as an unprivileged user (`unshare -rm`), or as root (`unshare
    -m`, which needs no user namespace); None when this machine allows neither."""
    if shutil.which("unshare") is None:
        return None
    for unshare in (["unshare", "-rm"], ["unshare", "-m"]):
        check = [*unshare, "mount", "-t", "tmpfs", "tmpfs", "/mnt"]
        if subprocess.run(check, capture_output=True).returncode == 0:
            return unshare
    return None


@pytest.fixture
def private_mounts() -> list[str]:
    """The `unshare` command of `mount_namespace`; fails in CI when there is none (CI
    must test a real full disk), skips elsewhere, saying why."""
    unshare = mount_namespace()
    if unshare is None:
        why = "no mount namespace for a full tmpfs: `unshare -rm` and `unshare -m` both fail"
        if os.environ.get("CI"):
            pytest.fail(f"{why} in CI: run it as root, or allow user namespaces")
        pytest.skip(why)
    return unshare


def fill(folder: Path) -> Path:
    """Write a file in `folder` until its filesystem has no space left; return it."""
    filler = folder / "filler"
    # Unbuffered: nothing is left to write when the file is closed.
    with filler.open("wb", buffering=0) as out, contextlib.suppress(OSError):  # ENOSPC
        while True:
            out.write(bytes(65536))
    return filler


def copied(folder: Path, to: Path) -> str:
    """A copy of the database in `folder` (its file and write-ahead log), to read.

    SQLite resolves symbolic links in a path, and /proc/PID/root is one: opened there,
    it would open the path in this process's namespace instead.
    """
    to.mkdir(exist_ok=True)
    for name in ("botkit.db", "botkit.db-wal"):
        shutil.copyfile(folder / name, to / name)
    return str(to / "botkit.db")


def test_a_real_full_disk_is_a_503_and_the_retry_is_stored_once(
    tmp_path, processes, private_mounts
):
    # `botkit run` with its database, and its spool beside it, on a 2 MB tmpfs that only
    # its mount namespace sees; this test reaches the tmpfs through /proc/PID/root.
    disk = tmp_path / "disk"
    disk.mkdir()
    port = free_port()
    mounted = [*private_mounts, "sh", "-c", 'mount -t tmpfs -o size=2m tmpfs "$0" && exec "$@"']
    env = {"BOTKIT_DB": str(disk / "botkit.db"), "BOTKIT_CALLBACK_TOKEN": "test-token"}
    app = start(processes, ["run", "--port", str(port)], env, ROOT, [*mounted, str(disk)])
    url = f"http://127.0.0.1:{port}"
    wait_for(f"{url}/healthz", app)
    seen = Path(f"/proc/{app.pid}/root") / disk.relative_to("/")

    def db() -> str:
        return copied(seen, tmp_path / "copy")

    assert answer(httpx.get(url + MO_URL, params=mo(1, "hi"))) == OK
    poll(lambda: stored_mos(db()) == {1: "handled"})
    filler = fill(seen)
    assert answer(httpx.get(url + MO_URL, params=mo(2, "x" * 2000, "+61400000002"))) == UNAVAILABLE
    assert answer(httpx.get(url + DLR_URL, params=dlr(77))) == UNAVAILABLE
    assert answer(httpx.get(f"{url}/healthz")) == OK
    assert "database or disk is full" in output(app)
    assert "nor spooled, the gateway may retry" in output(app)

    filler.unlink()  # space is freed; the gateway retries
    assert answer(httpx.get(url + MO_URL, params=mo(2, "x" * 2000, "+61400000002"))) == OK
    assert answer(httpx.get(url + DLR_URL, params=dlr(77))) == OK
    poll(lambda: stored_mos(db()) == {1: "handled", 2: "handled"})
    assert sorted(handset for handset, _ in replies(db())) == ["+61400000001", "+61400000002"]
    assert receipts(db()) == [77]
