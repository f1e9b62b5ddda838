"""The spool (issue 16): callbacks the database cannot take are kept on local disk,
answered 200, and stored once it is back, in order, each once.

Its files, torn and garbled records, and streams left by dead processes are tested on
a real folder; the callbacks against a real SQLite file held locked by another process.
Kills and a stopped PostgreSQL: test_spool_crash.py.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest
from conftest import ROOT, client_to, eventually, rows, running
from starlette.applications import Starlette
from test_db_faults import DLR_URL, MO_URL, OK, answer, locked, mo

from botkit import Bot, Context, Settings, create_app
from botkit.replay import REFUSALS, parse
from botkit.spool import Spool, SpoolError
from botkit.spool_records import Record, encode, read

pytestmark = pytest.mark.fault

DATABASE = "c0ffee00-database-id"
DEADLINE = 180  # for a whole test: a hang fails it rather than holding up CI


def fields(n: int, content: str = "hello") -> dict[str, object]:
    return {"gateway_id": n, "source": "+61400000001", "destination": "4433", "content": content}


def segment_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.spool"))


async def opened(folder: Path, database: str = DATABASE) -> Spool:
    spool = Spool(folder)
    await spool.open(database)
    return spool


async def test_records_are_read_back_as_they_were_appended(tmp_path: Path) -> None:
    spool = await opened(tmp_path)
    contents = ["hello", "two\nlines and a \u2028", "emoji \U0001f600" * 5000, '"quoted" \\']
    await asyncio.gather(*(spool.append("mo", fields(n, c)) for n, c in enumerate(contents)))
    assert spool.waiting == 4 and spool.pending
    [path] = segment_files(tmp_path)
    records, offset = read(path, 0, 100)
    assert [r.fields["content"] for r in records] == contents
    assert offset == path.stat().st_size
    # Read on from where a chunk stopped.
    first, middle = read(path, 0, 1)
    rest, end = read(path, middle, 100)
    assert first + rest == records and end == offset
    await spool.close()
    with pytest.raises(SpoolError, match="closed"):
        await spool.append("mo", fields(9))  # a callback after the stop is not kept here


async def test_a_torn_last_record_is_left_unread_and_a_garbled_one_passed_over(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    good = [encode("mo", 1.0, fields(n)) for n in range(3)]
    garbled = good[1].replace(b"hello", b"jello")  # its checksum fails
    torn = encode("mo", 1.0, fields(9))[:-10]  # a crash cut it short
    path = tmp_path / "1-abcd.000001.spool"
    path.write_bytes(good[0] + garbled + good[2] + torn)
    records, offset = read(path, 0, 100)
    assert [r.fields["gateway_id"] for r in records] == [0, 2]
    assert offset == len(good[0] + garbled + good[2])  # the torn line is not read
    assert "a garbled record" in caplog.text


DEAD_PROCESS = """
import asyncio, sys
from botkit.spool import Spool

async def main():
    spool = Spool(sys.argv[1])
    await spool.open(sys.argv[2])
    for n in range(3):
        await spool.append("mo", {"gateway_id": n, "source": "+61400000001",
                                  "destination": "4433", "content": "hi"})
    print("appended", flush=True)
    sys.stdin.read()

asyncio.run(main())
"""


def spooling_process(folder: Path, database: str) -> subprocess.Popen[str]:
    """Another process that spooled three records and waits, its stream locked."""
    command = [sys.executable, "-c", DEAD_PROCESS, str(folder), database]
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stdout.readline() == "appended\n"
    return process


def killed(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGKILL)
    process.communicate()  # its pipes closed


async def replay_all(spool: Spool) -> list[Record]:
    """What a replay would store, marked stored."""
    stored = []
    while (segment := await spool.next()) is not None:
        records, offset = await spool.read(segment, 1000)
        spool.replayed(segment, records, offset)
        spool.finished(segment)
        stored += records
    return stored


async def test_a_dead_process_spool_is_adopted_and_a_live_one_is_not(tmp_path: Path) -> None:
    other = spooling_process(tmp_path, DATABASE)
    spool = await opened(tmp_path)
    assert spool.waiting == 0 and not spool.pending  # its process lives: its stream is its own
    killed(other)
    assert await spool.adopt() == 3
    assert spool.waiting == 3 and spool.age > 0
    assert [r.fields["gateway_id"] for r in await replay_all(spool)] == [0, 1, 2]
    assert spool.waiting == 0
    await spool.close()
    assert list(tmp_path.iterdir()) == []  # the dead stream's lock went with its last file


@pytest.mark.parametrize("lock", ["empty", "missing"])
async def test_a_dead_stream_whose_lock_names_no_database_is_adopted(
    tmp_path: Path, lock: str
) -> None:
    """A lock whose name of the database never reached the disk (a power cut), or gone."""
    killed(spooling_process(tmp_path, DATABASE))
    [lock_file] = tmp_path.glob("*.lock")
    if lock == "empty":
        lock_file.write_bytes(b"")
    else:
        lock_file.unlink()
    spool = await opened(tmp_path)
    assert spool.waiting == 3
    assert len(await replay_all(spool)) == 3
    await spool.close()


async def test_another_databases_spool_is_left_alone(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    killed(spooling_process(tmp_path, "another-database-id"))
    spool = await opened(tmp_path)
    assert spool.waiting == 0 and not spool.pending
    assert list(spool.foreign.values()) == [3]
    assert "holds 3 records of another database, left alone" in caplog.text
    await spool.close()
    assert len(segment_files(tmp_path)) == 1  # for a process of its own database
    spool = await opened(tmp_path, "another-database-id")  # which adopts them
    assert spool.waiting == 3
    await spool.close()


FULL_DISK = """
import asyncio, resource, signal, sys
from botkit.spool import Spool, SpoolError

async def main():
    spool = Spool(sys.argv[1])
    await spool.open("database-id")
    await spool.append("mo", {"gateway_id": 1, "content": "fits"})
    # Files may grow no further than this: as when the disk is full.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
    try:
        await spool.append("mo", {"gateway_id": 2, "content": "x" * 8000})
    except SpoolError as exc:
        print("refused:", exc)
    await spool.append("mo", {"gateway_id": 3, "content": "fits too"})
    print("waiting:", spool.waiting)

asyncio.run(main())
"""


def test_a_spool_that_cannot_be_written_raises_and_keeps_what_it_had(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", FULL_DISK, str(tmp_path)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "refused: could not write to the spool in" in done.stdout
    assert "waiting: 2" in done.stdout
    [path] = segment_files(tmp_path)
    records, _ = read(path, 0, 100)
    assert [r.fields["gateway_id"] for r in records] == [1, 3]  # the failed one cut away


def local_client(app: Starlette) -> httpx.AsyncClient:
    """A browser on this machine, which the dashboard lets in without a login."""
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 1234))
    return httpx.AsyncClient(transport=transport, base_url="http://localhost")


def echo_bot() -> Bot:
    bot = Bot("echo")

    @bot.fallback
    async def echo(ctx: Context) -> None:
        ctx.reply(f"echo {ctx.text}")

    return bot


def mos_by_handset(db: str) -> dict[str, list[str]]:
    """Each handset's MOs' texts, in the order they were stored."""
    found = rows(db, "SELECT handset, content FROM messages WHERE direction = 'mo' ORDER BY id")
    by_handset: dict[str, list[str]] = {}
    for row in found:
        by_handset.setdefault(row["handset"], []).append(row["content"])
    return by_handset


def replies(db: str) -> list[str]:
    found = rows(db, "SELECT content FROM messages WHERE direction = 'mt' ORDER BY id")
    return [row["content"] for row in found]


async def test_callbacks_are_spooled_while_the_database_is_locked_and_stored_once_after(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(settings, bots=[echo_bot()])
    handsets = ["+61400000001", "+61400000002"]
    async with (
        asyncio.timeout(DEADLINE),
        running(app),
        client_to(app) as client,
        local_client(app) as dashboard,
    ):
        assert answer(await client.get(MO_URL, params=mo(1, "before"))) == OK
        await eventually(lambda: replies(settings.db) == ["echo before"])
        async with locked(settings.db):
            # Each handset texts three times, each text after the last was answered.
            for n in range(3):
                for h, handset in enumerate(handsets):
                    params = mo(10 * n + h + 2, f"{h}-{n}", handset)
                    assert answer(await client.get(MO_URL, params=params)) == OK
            assert answer(await client.get(DLR_URL, params={"id": "77", "status": "sent"})) == OK
            # A repeat of a spooled MO (the gateway sent it again) is answered 200 too.
            assert answer(await client.get(MO_URL, params=mo(2, "0-0", handsets[0]))) == OK
            health = await client.get("/healthz")
            assert health.status_code == 200
            assert "callbacks waiting to be stored, the oldest" in health.text
            assert segment_files(settings.spool_folder)
            page = await dashboard.get("/dashboard/")
            assert "from the gateway wait on disk for the database" in page.text
            assert "spooled, to be stored later: the database" in caplog.text
            assert mos_by_handset(settings.db) == {"+61400000001": ["before"]}

        # The database is back: stored in order, each once, and answered once.
        expected = {h: [f"{i}-{n}" for n in range(3)] for i, h in enumerate(handsets)}
        await eventually(
            lambda: len(replies(settings.db)) == 7 and app.state.runtime.spool.waiting == 0,
            timeout=60,
        )
        stored = mos_by_handset(settings.db)
        assert stored == {
            handsets[0]: ["before", *expected[handsets[0]]],
            handsets[1]: expected[handsets[1]],
        }
        assert sorted(replies(settings.db)) == sorted(
            ["echo before", *(f"echo {t}" for texts in expected.values() for t in texts)]
        )
        flagged = rows(settings.db, "SELECT flags FROM messages WHERE direction = 'mo' ORDER BY id")
        # The first was spooled when its write had waited too long; that write may
        # still have committed once the lock went (the replay then found it stored).
        assert flagged[1]["flags"] in (None, "spooled")
        assert [row["flags"] for row in flagged[2:]] == ["spooled"] * 5
        receipt = rows(settings.db, "SELECT status, flags FROM deliveries WHERE gateway_id = 77")
        assert [tuple(r) for r in receipt] == [("sent", "spooled")]
        assert segment_files(settings.spool_folder) == []
        assert answer(await client.get("/healthz")) == OK
        assert "on disk for the database" not in (await dashboard.get("/dashboard/")).text


def test_a_spool_folder_that_cannot_be_made_stops_the_start(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    env = {
        **os.environ,
        "BOTKIT_SPOOL": str(blocker / "spool"),
        "BOTKIT_DB": str(tmp_path / "b.db"),
    }
    code = textwrap.dedent(
        """
        import asyncio
        from botkit import Settings, create_app
        app = create_app(Settings.load())
        async def main():
            async with app.router.lifespan_context(app):
                pass
        asyncio.run(main())
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode != 0
    assert "BOTKIT_SPOOL" in done.stderr


async def test_a_record_the_store_refuses_is_set_aside_and_the_rest_stored(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(settings, bots=[echo_bot()])
    spool = app.state.runtime.spool
    async with asyncio.timeout(DEADLINE), running(app), client_to(app) as client:
        # The store refuses MO 666 for good, while the database answers.
        poison = """CREATE TRIGGER poison BEFORE INSERT ON messages WHEN NEW.gateway_id = 666
                    BEGIN SELECT RAISE(ABORT, 'refused'); END"""
        await app.state.runtime.db.write(lambda tx: tx.execute(poison))
        async with locked(settings.db):
            for n in (665, 666, 667):
                assert answer(await client.get(MO_URL, params=mo(n, f"m{n}"))) == OK
        await eventually(lambda: not spool.pending, timeout=60)
        await eventually(lambda: len(replies(settings.db)) == 2)
        assert mos_by_handset(settings.db) == {"+61400000001": ["m665", "m667"]}
        [aside] = settings.spool_folder.glob("*.set-aside")
        records, _ = read(aside, 0, 10)
        assert [r.fields["gateway_id"] for r in records] == [666]
        assert "(gateway id 666) set aside" in caplog.text
        # What comes next is stored at once.
        assert answer(await client.get(MO_URL, params=mo(668, "m668"))) == OK
        assert mos_by_handset(settings.db)["+61400000001"][-1] == "m668"


async def test_a_record_of_another_botkit_version_is_stored(settings: Settings) -> None:
    app = create_app(settings, bots=[echo_bot()])
    async with asyncio.timeout(DEADLINE), running(app):
        spool = app.state.runtime.spool
        # A dead process of a later botkit left one, with a field this one does not know.
        (settings.spool_folder / "1-00c0ffee.lock").write_text(spool.database)
        record = {**fields(700, "from the future"), "sent_at": "2027-01-01", "v": 2}
        (settings.spool_folder / "1-00c0ffee.000001.spool").write_bytes(encode("mo", 1.0, record))
        assert await spool.adopt() == 1
        await eventually(lambda: replies(settings.db) == ["echo from the future"], timeout=30)
        await eventually(lambda: segment_files(settings.spool_folder) == [])


async def test_a_long_lock_sets_nothing_aside(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """SQLite locked by another process still reads: only a write tells the replay that
    the database is away, not that the record is refused (a helper lost an MO so)."""
    app = create_app(settings, bots=[echo_bot()])
    async with asyncio.timeout(DEADLINE), running(app), client_to(app) as client:
        async with locked(settings.db):
            assert answer(await client.get(MO_URL, params=mo(1, "m1"))) == OK
            await eventually(
                lambda: caplog.text.count("the database is still away") >= REFUSALS, timeout=150
            )
        await eventually(lambda: replies(settings.db) == ["echo m1"], timeout=60)
    assert "set aside" not in caplog.text
    assert list(settings.spool_folder.glob("*.set-aside")) == []


def test_a_record_that_reads_as_no_mo_or_dlr_is_none() -> None:
    assert parse(Record("mo", 1.0, fields(1))) is not None
    assert parse(Record("mo", 1.0, {**fields(1), "flags": 5})) is None  # no list
    assert parse(Record("mo", 1.0, {"gateway_id": 1})) is None  # fields missing
    assert parse(Record("receipt", 1.0, fields(1))) is None  # no such kind
