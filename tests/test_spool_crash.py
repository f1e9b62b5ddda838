"""The spool under a stopped PostgreSQL and under SIGKILL (issue 16).

Handsets text one message after another, each sent once its last was answered, as a
gateway that never retries would. Afterwards every MO answered 200 is stored and
handled exactly once (one echo each), each handset's in the order it sent them.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import threading
from pathlib import Path
from subprocess import PIPE

import httpx
import pytest
from conftest import ROOT, eventually, rows, running, settings_for
from postgres import Cluster, fresh_database
from servers import free_port, output, poll, poll_down, start, wait_for
from test_db_faults import LOCKER, MO_URL, mo

from botkit import create_app

pytestmark = pytest.mark.fault

ECHO = """
from botkit import Bot, Context

bot = Bot("echo")


@bot.fallback
async def echo(ctx: Context) -> None:
    ctx.reply(f"echo {ctx.text}")
"""


def handset(h: int) -> str:
    return f"+614000{h:05}"


def text(h: int, n: int) -> str:
    return f"{h}-{n}"


def gateway_id(h: int, n: int) -> int:
    return 1_000_000 + h * 1000 + n


def assert_each_handled_once_in_order(db: str, answered: set[int]) -> None:
    """Every MO answered 200 is stored once and echoed once; each handset's MOs were
    stored, and echoed, in the order it sent them."""
    mos = rows(
        db, "SELECT gateway_id, handset, content FROM messages WHERE direction = 'mo' ORDER BY id"
    )
    mts = rows(db, "SELECT handset, content FROM messages WHERE direction = 'mt' ORDER BY id")
    stored = [m["gateway_id"] for m in mos]
    assert len(stored) == len(set(stored)), "an MO was stored twice"
    assert answered <= set(stored), f"lost: {sorted(answered - set(stored))[:10]}"
    for number in {m["handset"] for m in mos}:
        sent = [m["content"] for m in mos if m["handset"] == number]
        assert sent == sorted(sent, key=lambda t: int(t.split("-")[1])), number
        echoes = [m["content"] for m in mts if m["handset"] == number]
        assert echoes == [f"echo {t}" for t in sent], number


# -- PostgreSQL stopped in the middle of a burst -------------------------------------


async def test_postgresql_stopped_in_a_burst_loses_nothing(
    cluster: Cluster, tmp_path: Path
) -> None:
    (tmp_path / "bots").mkdir()
    (tmp_path / "bots" / "echo.py").write_text(ECHO)
    url = await fresh_database(cluster)
    settings = settings_for(tmp_path, url, bots=tmp_path / "bots")
    handsets, each = 12, 40
    app = create_app(settings)
    spool = app.state.runtime.spool
    answered: set[int] = set()
    async with asyncio.timeout(300), running(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:

            async def texting(h: int) -> None:
                for n in range(each):
                    params = mo(gateway_id(h, n), text(h, n), handset(h))
                    response = await client.get(MO_URL, params=params)
                    assert (response.status_code, response.text) == (200, "OK")
                    answered.add(gateway_id(h, n))

            async def outage() -> None:
                await eventually(lambda: len(answered) >= handsets * each // 4, timeout=60)
                await asyncio.to_thread(cluster.stop)
                await eventually(lambda: spool.waiting >= handsets * 3, timeout=60)
                # The dashboard and /api say the database is away, and what waits.
                local = httpx.ASGITransport(app=app, client=("127.0.0.1", 1234))
                async with httpx.AsyncClient(transport=local, base_url="http://localhost") as web:
                    for path in ("/dashboard/", "/api/conversations"):
                        page = await web.get(path)
                        assert page.status_code == 503, path
                        assert "The database is away" in page.text, path
                        assert "callbacks waiting to be stored" in page.text, path
                await asyncio.to_thread(cluster.start)

            await asyncio.gather(outage(), *(texting(h) for h in range(handsets)))
            assert len(answered) == handsets * each
            await eventually(lambda: spool.waiting == 0, timeout=120)

            def echoed() -> int:
                return rows(url, "SELECT count(*) FROM messages WHERE direction = 'mt'")[0][0]

            await eventually(lambda: echoed() >= len(answered), timeout=180)
            # Receipts of the echoes that met the outage, spooled too, are stored.
            await eventually(lambda: not list((tmp_path / "spool").glob("*.spool")), timeout=60)
    assert_each_handled_once_in_order(url, answered)
    spooled = rows(url, "SELECT count(*) FROM messages WHERE flags = 'spooled'")[0][0]
    print(f"{len(answered)} MOs, {spooled} of them through the spool")
    assert spooled >= handsets * 3


# -- SIGKILL while spooling, and while replaying -------------------------------------


class Texting(threading.Thread):
    """Handsets texting a `botkit run` one message after another; each stops at the
    first MO not answered 200 (the app was killed)."""

    def __init__(self, url: str, handsets: int, each: int) -> None:
        super().__init__(daemon=True)
        self.url, self.handsets, self.each = url, handsets, each
        self.answered: set[int] = set()

    def run(self) -> None:
        asyncio.run(self._all())

    async def _all(self) -> None:
        async with httpx.AsyncClient(base_url=self.url, timeout=60) as client:
            await asyncio.gather(*(self._texts(client, h) for h in range(self.handsets)))

    async def _texts(self, client: httpx.AsyncClient, h: int) -> None:
        for n in range(self.each):
            params = mo(gateway_id(h, n), text(h, n), handset(h))
            try:
                response = await client.get(MO_URL, params=params)
            except httpx.TransportError:
                return
            if response.status_code != 200:
                return
            self.answered.add(gateway_id(h, n))


class Locked:
    """Another process holding `BEGIN EXCLUSIVE` on a SQLite file until released."""

    def __init__(self, db: str) -> None:
        command = [sys.executable, "-c", LOCKER, db]
        self.process = subprocess.Popen(command, stdin=PIPE, stdout=PIPE, text=True)
        assert self.process.stdout is not None
        assert self.process.stdout.readline() == "locked\n"

    def release(self) -> None:
        self.process.communicate(timeout=20)
        assert self.process.returncode == 0


@pytest.fixture
def served_app(tmp_path: Path, processes):
    """Start `botkit run` (the simulator its gateway, an echo bot) on a SQLite file."""
    (tmp_path / "bots").mkdir()
    (tmp_path / "bots" / "echo.py").write_text(ECHO)
    db = str(tmp_path / "botkit.db")
    port = free_port()
    run = ["run", "--port", str(port), "--db", db, "--bots", str(tmp_path / "bots"),
           "--templates", str(ROOT / "templates")]  # fmt: skip
    env = {"BOTKIT_CALLBACK_TOKEN": "test-token", "BOTKIT_SEND_RATE": "1000"}
    url = f"http://127.0.0.1:{port}"

    def serve() -> subprocess.Popen:
        app = start(processes, run, env=env)
        wait_for(f"{url}/healthz", app)
        return app

    return db, url, serve


def killed(app: subprocess.Popen) -> None:
    app.send_signal(signal.SIGKILL)
    app.wait()


def spool_files(db: str) -> list[Path]:
    return list(Path(f"{db}-spool").glob("*.spool"))


def assert_all_stored_after(db: str, answered: set[int]) -> None:
    """Once a restarted app has stored its spool and echoed every MO answered 200: each
    was handled once, in order. (An MO whose answer the kill cut off may be stored too:
    it was spooled; the gateway would have sent it again.)"""
    stored = "SELECT gateway_id, status FROM messages WHERE direction = 'mo'"

    def left() -> int:
        found = rows(db, stored)
        unhandled = sum(row["status"] != "handled" for row in found)
        return len(answered - {row["gateway_id"] for row in found}) + unhandled

    poll_down(left)
    poll(lambda: spool_files(db) == [])
    assert_each_handled_once_in_order(db, answered)


def test_sigkill_while_spooling_loses_nothing_answered(served_app) -> None:
    db, url, serve = served_app
    app = serve()
    lock = Locked(db)
    texting = Texting(url, handsets=10, each=60)
    texting.start()
    poll(lambda: len(texting.answered) >= 150, timeout=120)  # the spool takes them
    killed(app)  # in the middle of appends, a batch half written perhaps
    texting.join(60)
    lock.release()
    answered = set(texting.answered)
    assert spool_files(db)

    app = serve()  # adopts the dead process's spool, and stores it
    assert_all_stored_after(db, answered)
    assert "records left by an earlier process" in output(app)


def test_sigkill_while_replaying_loses_nothing_and_stores_nothing_twice(served_app) -> None:
    db, url, serve = served_app
    app = serve()
    lock = Locked(db)
    texting = Texting(url, handsets=30, each=100)
    texting.start()
    texting.join(300)
    answered = set(texting.answered)
    assert len(answered) == 3000  # all spooled
    lock.release()

    # The database is back: the spool is being stored; killed part way.
    poll(lambda: rows(db, "SELECT count(*) FROM messages WHERE direction = 'mo'")[0][0] > 0)
    killed(app)
    stored = rows(db, "SELECT count(*) FROM messages WHERE direction = 'mo'")[0][0]
    print(f"killed with {stored} of {len(answered)} spooled MOs stored")
    assert stored < len(answered)

    serve()  # stores the rest; what was stored already is found stored
    assert_all_stored_after(db, answered)
