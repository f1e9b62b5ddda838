"""The throwaway PostgreSQL the tests start, and what several app processes on one
PostgreSQL database rest on: unique keys, claims with leases and owners, row locks,
notifications and the shared send rate."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import pytest
from conftest import eventually
from postgres import drop_database, fresh_database
from servers import free_port

from botkit.addresses import OurNumbers
from botkit.db import Database, DatabaseError, redact, slots
from botkit.db.postgres import connect_options, literal
from botkit.messages import IncomingDLR, IncomingMO, Reply, Thread, Timer
from botkit.migrations import migrate
from botkit.store import Effects, Store
from botkit.store.base import ClaimLost

PHONE = "+61400000001"


async def test_a_throwaway_cluster_takes_connections_with_a_password(postgres):
    url = await fresh_database(postgres)
    conn = await asyncpg.connect(url)
    try:
        assert await conn.fetchval("SELECT current_user") == "botkit"
        assert await conn.fetchval("SHOW server_encoding") == "UTF8"
        await conn.execute("CREATE TABLE t (id BIGINT PRIMARY KEY)")
        assert await conn.fetchval("INSERT INTO t VALUES (1) RETURNING id") == 1
    finally:
        await conn.close()
    wrong = postgres.url().replace(postgres.password, "wrong")
    try:
        await asyncpg.connect(wrong)
    except asyncpg.InvalidPasswordError:
        pass
    else:
        raise AssertionError("a wrong password was accepted")


async def test_each_test_gets_a_database_of_its_own(postgres):
    first, second = await fresh_database(postgres), await fresh_database(postgres)
    assert first != second


# What several processes on one database rest on, each process being a `Store` over a
# `Database` of its own (as `botkit run` makes them).


@pytest.fixture
async def stores(postgres) -> AsyncIterator[list[Store]]:
    """Three "processes" on one new database."""
    url = await fresh_database(postgres)
    dbs = [await Database.open(url) for _ in range(3)]
    await migrate(dbs[0])
    yield [Store(db) for db in dbs]
    for db in dbs:
        await db.close()
    await drop_database(postgres, url)


def mo(n: int, phone: str = PHONE) -> IncomingMO:
    return IncomingMO(gateway_id=n, source=phone, destination="4433", content=f"m{n}")


async def test_one_gateway_id_at_every_process_at_once_is_stored_once(stores):
    added = await asyncio.gather(*(store.inbox.add(mo(77)) for store in stores for _ in range(5)))
    assert len([message_id for message_id in added if message_id is not None]) == 1
    assert await stores[0].db.fetchval("SELECT count(*) FROM messages") == 1
    assert await stores[0].inbox.depth() == 1


async def test_processes_claim_one_mo_of_a_handset_at_a_time_in_order(stores):
    for n in range(1, 31):
        await stores[0].inbox.add(mo(n, f"+6140000000{n % 3}"))
    handled: list[tuple[str, int]] = []
    while await stores[0].inbox.depth():
        claims = await asyncio.gather(*(store.inbox.claim(10, lease=60) for store in stores))
        taken = [
            (store, m) for store, messages in zip(stores, claims, strict=True) for m in messages
        ]
        handsets = [m.source for _, m in taken]
        assert len(handsets) == len(set(handsets)), "two claims of one handset at once"
        for store, message in taken:
            await store.inbox.finish(message, Effects(None))
            handled.append((message.source, message.gateway_id))
    for phone in {phone for phone, _ in handled}:
        ids = [gateway_id for who, gateway_id in handled if who == phone]
        assert ids == sorted(ids)
    assert len(handled) == 30


async def test_a_claim_whose_lease_ran_out_is_finished_by_another_process_alone(stores):
    slow, other = stores[0], stores[1]
    await slow.inbox.add(mo(1))
    (claimed,) = await slow.inbox.claim(1, lease=0.2)
    await asyncio.sleep(0.3)  # the slow process stalls past its lease
    (again,) = await other.inbox.claim(1, lease=60)
    assert again.id == claimed.id
    await other.inbox.finish(again, Effects(Thread(bot="b", handset=PHONE, address="4433")))
    with pytest.raises(ClaimLost):
        await slow.inbox.finish(claimed, Effects(Thread(bot="a", handset=PHONE, address="4433")))
    assert [r[0] for r in await other.db.fetchall("SELECT bot FROM threads")] == ["b"]


async def test_a_due_timer_fires_in_one_process_only(stores):
    await stores[0].inbox.add(mo(1))
    (message,) = await stores[0].inbox.claim(1, lease=60)
    due = stores[0].clock() - timedelta(seconds=1)
    thread = Thread(bot="b", handset=PHONE, address="4433")
    timers = [Timer(name=f"t{n}", due_at=due) for n in range(5)]
    await stores[0].inbox.finish(message, Effects(thread, schedule=timers))
    fired: list[int] = []
    for _ in range(10):
        claims = await asyncio.gather(*(store.timers.claim(5, lease=60) for store in stores))
        assert sum(len(claimed) for claimed in claims) <= 1  # one handset: one at a time
        for store, claimed in zip(stores, claims, strict=True):
            for timer in claimed:
                await store.timers.finish(timer, Effects(None))
                fired.append(timer.id)
    assert sorted(fired) == sorted(set(fired)) and len(fired) == 5


async def test_an_mo_stored_waits_for_its_handsets_lock_held_elsewhere(stores):
    """An MO is stored by one statement, a transaction of its own, which takes its
    handset's lock as `tx.lock` does: held by another process's write, the MO waits for
    its commit (so one handset's MOs are numbered in the order they commit)."""
    store, other = stores[0], stores[1]
    held, release = asyncio.Event(), asyncio.Event()

    async def holding(tx) -> None:
        await tx.lock(f"handset {PHONE}")
        held.set()
        await release.wait()

    holder = asyncio.create_task(other.db.write(holding))
    await held.wait()
    adding = asyncio.create_task(store.inbox.add(mo(1)))
    await eventually(lambda: _waiting_for_a_lock(store.db))  # the server says it waits
    assert not adding.done()
    assert await store.db.fetchval("SELECT count(*) FROM messages") == 0
    release.set()
    await holder
    assert await adding is not None
    assert await store.db.fetchval("SELECT count(*) FROM inbox") == 1


async def _waiting_for_a_lock(db: Database) -> bool:
    return bool(
        await db.fetchval(
            """SELECT count(*) FROM pg_stat_activity
               WHERE wait_event_type = 'Lock' AND wait_event = 'advisory'"""
        )
    )


async def test_a_single_write_is_one_statement_at_read_committed(stores):
    """A write `single` is one round trip: its statement is a transaction of its own,
    at READ COMMITTED whatever the database's default. A second statement, or a lock
    (let go as soon as taken), is a mistake in the code: refused."""
    name = await stores[0].db.fetchval("SELECT current_database()")
    await stores[0].db.fetchval(
        f"ALTER DATABASE \"{name}\" SET default_transaction_isolation = 'serializable'"
    )
    db = await Database.open(stores[0].db.url)  # connections made after the change
    try:
        isolation = "SELECT current_setting('transaction_isolation')"
        assert await db.write(lambda tx: tx.fetchval(isolation), single=True) == "read committed"

        async def two(tx) -> None:
            await tx.execute("INSERT INTO meta (name, value) VALUES ('a', '1')")
            await tx.execute("INSERT INTO meta (name, value) VALUES ('b', '2')")

        async def locking(tx) -> None:
            await tx.lock("a")

        for write in (two, locking):
            with pytest.raises(AssertionError, match="single write"):
                await db.write(write, single=True)
    finally:
        await db.close()


async def test_an_mo_and_a_timer_of_one_handset_are_never_claimed_at_once(stores):
    for n in range(10):
        phone = f"+6140000010{n}"
        await timer_due(stores[0], 100 + n, phone)
        timers, _ = await asyncio.gather(
            stores[1].timers.claim(5, lease=60), stores[2].inbox.add(mo(200 + n, phone))
        )
        messages = await stores[2].inbox.claim(5, lease=60)
        assert not (timers and messages), "a timer and an MO of one handset claimed at once"
        assert timers or messages


async def timer_due(store: Store, n: int, phone: str) -> None:
    """MO `n` from `phone` stored and handled, leaving a timer due in its thread."""
    await store.inbox.add(mo(n, phone))
    (message,) = await store.inbox.claim(1, lease=60)
    thread = Thread(bot="b", handset=phone, address="4433")
    due = store.clock() - timedelta(seconds=1)
    await store.inbox.finish(message, Effects(thread, schedule=[Timer(name="t", due_at=due)]))


async def reply_queued(store: Store, n: int, phone: str) -> None:
    """MO `n` from `phone` stored and handled, its one reply queued."""
    await store.inbox.add(mo(n, phone))
    (message,) = await store.inbox.claim(1, lease=60)
    thread = Thread(bot="b", handset=phone, address="4433")
    replies = [Reply(content="r", template=None, encoding="GSM-7", segments=1)]
    await store.inbox.finish(
        message, Effects(thread, replies, numbers=OurNumbers(["4433"], message_class="c"))
    )


async def test_mts_claimed_go_back_to_the_queue_when_their_settling_fails(stores):
    """A claim commits alone; an MT that may not go (expired, here) is settled after it.
    If that write fails, the claim's MTs are given back, not left `sending` unsent."""
    store = stores[0]
    await store.inbox.add(mo(1))
    (message,) = await store.inbox.claim(1, lease=60)
    thread = Thread(bot="b", handset=PHONE, address="4433")
    expired = Reply("r", None, "GSM-7", 1, expires="2000-01-01T00:00:00Z")
    numbers = OurNumbers(["4433"], message_class="c")
    await store.inbox.finish(message, Effects(thread, [expired], numbers=numbers))

    async def refuse_deletes(tx) -> None:  # the settle takes it out of the outbox
        await tx.execute(
            """CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS
               $$ BEGIN RAISE EXCEPTION 'refused'; END $$"""
        )
        await tx.execute(
            "CREATE TRIGGER refuse BEFORE DELETE ON outbox FOR EACH ROW EXECUTE FUNCTION refuse()"
        )

    await store.db.write(refuse_deletes)
    with pytest.raises(DatabaseError):
        await store.outbox.claim(5, lease=60, default="4433")
    (row,) = await store.db.fetchall(
        """SELECT o.state, o.claimed_by, o.attempts, m.status FROM outbox o
           JOIN messages m ON m.id = o.message_id"""
    )
    assert tuple(row) == ("queued", None, 0, "queued")
    await store.db.write(lambda tx: tx.execute("DROP TRIGGER refuse ON outbox"))
    assert await store.outbox.claim(5, lease=60, default="4433") == []  # settled: failed
    assert await store.db.fetchval("SELECT status FROM messages WHERE direction = 'mt'") == "failed"


async def test_senders_of_every_process_claim_each_mt_once(stores):
    await reply_queued(stores[0], 1, PHONE)
    for n in range(2, 61):  # 60 handsets, one MT each: all due at once
        await reply_queued(stores[0], n, f"+614100000{n:02d}")

    async def drain(store: Store) -> list[int]:
        taken = []
        while mts := await store.outbox.claim(3, lease=60, default="4433"):
            for mt in mts:
                taken.append(mt.id)
                await store.outbox.accepted([(mt.id, 10_000 + mt.id)])
        return taken

    claimed = await asyncio.gather(*(drain(store) for store in stores for _ in range(4)))
    every = [mt_id for taken in claimed for mt_id in taken]
    assert len(every) == len(set(every)) == 60
    assert sum(1 for taken in claimed if taken) > 1  # the work was shared


async def test_receipts_of_one_mt_recorded_at_once_leave_the_furthest_status(stores):
    # Each MT's receipts come at once to all three processes, the final one among them:
    # they take turns (a lock per MT), so whichever commits last reads the others'.
    for n in range(1, 21):
        await reply_queued(stores[0], n, f"+614100000{n:02d}")
    mts = await stores[0].outbox.claim(20, lease=60, default="4433")
    assert len(mts) == 20
    for mt in mts:
        await stores[0].outbox.accepted([(mt.id, 20_000 + mt.id)])
    statuses = ("submitted", "sent", "received")
    await asyncio.gather(
        *(
            store.deliveries.record(IncomingDLR(gateway_id=20_000 + mt.id, status=status))
            for mt in mts
            for store, status in zip(stores, statuses, strict=True)
        )
    )
    delivered = await stores[1].db.fetchall(
        "SELECT delivery FROM messages WHERE direction = 'mt' ORDER BY id"
    )
    assert [row["delivery"] for row in delivered] == ["received"] * 20


async def test_a_receipt_recorded_as_its_mt_is_accepted_joins_it(stores):
    # The gateway's receipt can reach one process while another is still recording the
    # MT it names as accepted: whichever commits first, the receipt ends up the MT's.
    for n in range(1, 41):
        await reply_queued(stores[0], n, f"+614200000{n:02d}")
    mts = await stores[0].outbox.claim(40, lease=60, default="4433")
    assert len(mts) == 40
    await asyncio.gather(
        *(
            job
            for mt in mts
            for job in (
                stores[0].outbox.accepted([(mt.id, 30_000 + mt.id)]),
                stores[1 + mt.id % 2].deliveries.record(
                    IncomingDLR(gateway_id=30_000 + mt.id, status="rejected")
                ),
            )
        )
    )
    rows = await stores[1].db.fetchall(
        """SELECT m.delivery, d.message_id FROM messages m
           JOIN deliveries d ON d.gateway_id = m.gateway_id
           WHERE m.direction = 'mt' ORDER BY m.id"""
    )
    assert [tuple(row) for row in rows] == [("rejected", mt.id) for mt in mts]


async def test_mts_accepted_together_join_receipts_that_came_before_and_during(stores):
    # The sender records the MTs the gateway took in batches, while other processes
    # record receipts for them: some before the batch, some as it commits.
    for n in range(1, 41):
        await reply_queued(stores[0], n, f"+614300000{n:02d}")
    mts = await stores[0].outbox.claim(40, lease=60, default="4433")
    assert len(mts) == 40
    for mt in mts[::4]:  # a receipt before the MT is known to be accepted: unmatched
        outcome = await stores[1].deliveries.record(
            IncomingDLR(gateway_id=40_000 + mt.id, status="submitted")
        )
        assert outcome.message_id is None
    batches = [mts[i : i + 10] for i in range(0, 40, 10)]
    await asyncio.gather(
        *(stores[n % 3].outbox.accepted([(mt.id, 40_000 + mt.id) for mt in batch])
          for n, batch in enumerate(batches)),
        *(stores[1 + mt.id % 2].deliveries.record(
            IncomingDLR(gateway_id=40_000 + mt.id, status="delivered"))
          for mt in mts[1::2]),
    )  # fmt: skip
    rows = await stores[1].db.fetchall(
        """SELECT m.id, m.status, m.delivery, o.message_id AS queued FROM messages m
           LEFT JOIN outbox o ON o.message_id = m.id
           WHERE m.direction = 'mt' ORDER BY m.id"""
    )
    expected = {mt.id: "delivered" if n % 2 else "submitted" if n % 4 == 0 else None
                for n, mt in enumerate(mts)}  # fmt: skip
    assert {row["id"]: row["delivery"] for row in rows} == expected
    assert {row["status"] for row in rows} == {"accepted"}
    assert {row["queued"] for row in rows} == {None}
    unmatched = await stores[2].db.fetchval(
        "SELECT count(*) FROM deliveries WHERE message_id IS NULL"
    )
    assert unmatched == 0


async def test_a_commit_in_one_process_wakes_the_live_views_of_every_process(stores):
    watcher = stores[2].db.commits
    seen = watcher.count
    await stores[0].inbox.add(mo(1))
    assert await asyncio.wait_for(watcher.wait(seen), timeout=10) > seen


async def test_the_send_rate_is_shared_by_every_process(stores):
    interval = 0.05
    started = time.monotonic()
    await asyncio.gather(*(store.db.pace(interval) for store in stores for _ in range(10)))
    # 30 slots, `interval` apart, whichever process asked: the last one 29 intervals on.
    assert time.monotonic() - started >= 29 * interval * 0.95


@pytest.mark.parametrize(
    ("behind", "interval", "most"),
    [
        (-0.3, 0.005, 16),  # due in 0.3 s: one slot, after the wait
        (0.03, 0.005, 16),  # late within PACE_SLACK: every slot since, so the rate holds
        (0.03, 0.005, 4),  # ... at most `most`
        (0.5, 0.005, 100),  # later: it catches up on PACE_SLACK only
        (5.0, 0.005, 16),  # idle for longer than PACE_IDLE: one slot, now, no burst
        (0.05, 1e-12, 16),  # a rate past counting (a "no limit" setting): `most`
    ],
)
async def test_the_shared_send_slots_follow_the_rule_of_slots(stores, behind, interval, most):
    """PostgreSQL hands out slots in one statement, in the server's clock: what `slots()`
    (SQLite's rule) hands out at some moment between the server's clock read before
    and after."""
    db = stores[0].db
    await db.pace(1.0)  # the row is there
    clock = "extract(epoch FROM clock_timestamp())::float8"

    async def behind_by(tx) -> float:
        return await tx.fetchval(
            f"UPDATE pace SET next_at = {clock} - ? RETURNING next_at", [behind]
        )

    was = await db.write(behind_by)
    before, started = await db.fetchval(f"SELECT {clock}"), time.monotonic()
    handed = await db.pace(interval, most)
    after = await db.fetchval(f"SELECT {clock}")
    first, last = slots(was, before, interval, most), slots(was, after, interval, most)
    assert first[1] <= handed <= last[1]
    next_at = await db.fetchval("SELECT next_at FROM pace WHERE name = 'send'")
    assert first[2] - 1e-6 <= next_at <= last[2] + 1e-6
    if behind < 0:  # it waited for its slot
        assert time.monotonic() - started >= (was - before) / 2


async def test_the_password_is_in_no_error_and_no_repr(postgres):
    url = postgres.url()
    wrong_port = url.replace(f":{postgres.port}/", f":{free_port()}/")
    with pytest.raises(DatabaseError) as refused:
        await Database.open(wrong_port)
    assert postgres.password not in str(refused.value)
    assert "***" in str(refused.value)
    wrong = url.replace(postgres.password, "not-the-Pa55word")
    with pytest.raises(DatabaseError) as failed:
        await Database.open(wrong)
    assert "not-the-Pa55word" not in str(failed.value)
    db = await Database.open(url)
    try:
        assert postgres.password not in repr(db)
        assert redact(url) in repr(db)
    finally:
        await db.close()


@pytest.mark.parametrize("command", [["run"], ["migrate"], ["export", "consent"]])
def test_commands_say_plainly_when_the_database_cannot_be_reached(postgres, command):
    import subprocess

    from servers import BOTKIT

    down = postgres.url().replace(f":{postgres.port}/", f":{free_port()}/")
    done = subprocess.run(
        [BOTKIT, *command, "--db", down, *(["--format", "csv"] if "export" in command else [])],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 1
    assert f"botkit: could not connect to {redact(down)}" in done.stderr
    assert "Traceback" not in done.stderr
    assert postgres.password not in done.stdout + done.stderr


async def test_live_views_hear_again_after_their_connection_dropped(stores):
    watcher = stores[2].db
    cut = await stores[0].db.fetchall(  # as a server restart would
        """SELECT pg_terminate_backend(pid) FROM pg_stat_activity
           WHERE datname = current_database() AND query LIKE 'LISTEN%'"""
    )
    assert len(cut) == 3

    async def heard() -> bool:
        seen = watcher.commits.count
        await stores[0].inbox.add(mo(int(time.time() * 1000)))
        try:
            await asyncio.wait_for(watcher.commits.wait(seen), timeout=0.5)
        except TimeoutError:
            return False
        return True

    for _ in range(40):
        if await heard():
            return
    raise AssertionError("the live views never heard a commit again")


def test_the_store_dialect_is_translated_outside_literals_and_comments():
    from botkit.db.postgres import translate

    assert translate("SELECT * FROM t WHERE a = ? AND b IN (?, ?)") == (
        "SELECT * FROM t WHERE a = $1 AND b IN ($2, $3)"
    )
    assert translate("SELECT '?', 'it''s ?' -- why?\nFROM t WHERE c = ?") == (
        "SELECT '?', 'it''s ?' -- why?\nFROM t WHERE c = $1"
    )
    assert translate("CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER, m_id INTEGER)") == (
        "CREATE TABLE t (id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, n BIGINT,"
        " m_id BIGINT)"
    )
    assert translate("CREATE TABLE inbox (message_id INTEGER PRIMARY KEY)") == (
        "CREATE TABLE inbox (message_id BIGINT PRIMARY KEY)"
    )


async def test_a_nul_in_text_from_anywhere_is_stored_as_the_replacement_character(stores):
    store = stores[0]
    await store.inbox.add(mo(1))
    (message,) = await store.inbox.claim(1, lease=60)
    thread = Thread(bot="b", handset=PHONE, address="4433", data={"note": "a\x00b"})
    reply = Reply(content="hi\x00", template=None, encoding="GSM-7", segments=1)
    await store.inbox.finish(
        message, Effects(thread, [reply], numbers=OurNumbers(["4433"], message_class="c"))
    )
    content = await store.db.fetchval("SELECT content FROM messages WHERE direction = 'mt'")
    assert content == "hi\ufffd"


async def test_one_handset_has_one_timer_fired_at_a_time_whichever_came_due_first(stores):
    await stores[0].inbox.add(mo(1))
    (message,) = await stores[0].inbox.claim(1, lease=60)
    now = stores[0].clock()
    thread = Thread(bot="b", handset=PHONE, address="4433")
    timers = [  # the older timer comes due after the newer one
        Timer(name="later", due_at=now + timedelta(seconds=0.3)),
        Timer(name="now", due_at=now - timedelta(seconds=1)),
    ]
    await stores[0].inbox.finish(message, Effects(thread, schedule=timers))
    (first,) = await stores[0].timers.claim(5, lease=60)
    assert first.name == "now"
    await asyncio.sleep(0.4)  # both due now, the first still being fired elsewhere
    assert await stores[1].timers.claim(5, lease=60) == []
    await stores[0].timers.finish(first, Effects(None))
    (second,) = await stores[1].timers.claim(5, lease=60)
    assert second.name == "later"


def test_a_password_in_the_query_string_is_hidden_too():
    url = "postgresql://botkit@db.example.com/botkit?password=s3cret-Pa55&sslmode=require"
    assert "s3cret-Pa55" not in redact(url)
    assert "password=***" in redact(url) and "sslmode=require" in redact(url)
    options = connect_options(url)
    assert options["password"] == "s3cret-Pa55" and "s3cret" not in options["dsn"]


async def test_a_lock_held_by_one_process_waits_for_its_release_even_after_a_failure(stores):
    """`Database.lock` (the migrations') holds across processes and is released however
    its block ends, a wait for it cut short included, on connections of its own."""
    first, second, third = (store.db for store in stores)
    entered = asyncio.Event()

    async def take(db: Database) -> None:
        async with db.lock("botkit test lock"):
            entered.set()

    with pytest.raises(LookupError):
        async with first.lock("botkit test lock"):
            cut_short = asyncio.create_task(take(second))
            await eventually(lambda: first.fetchval(ASKED))  # it asks, and waits
            cut_short.cancel()
            await asyncio.gather(cut_short, return_exceptions=True)
            await eventually(lambda: none_of(first, ASKED))  # it asks no more
            waiting = asyncio.create_task(take(third))
            await eventually(lambda: first.fetchval(ASKED))
            assert not entered.is_set()
            raise LookupError("the block failed")
    await asyncio.wait_for(waiting, 10)
    assert entered.is_set()
    await eventually(lambda: none_of(first, HELD))


async def test_a_writes_lock_is_the_names_key_however_odd_the_name(stores):
    """`tx.lock` sends its names as literals, with the write's BEGIN, in one round trip:
    a quote, a backslash or a NUL in a name is still that name's lock, the key every
    process (and a parameter, as before) takes for it, held until the write commits."""
    first, second = (store.db for store in stores[:2])
    name = "handset +61400000001'; SELECT 1 --\\ \x00"
    holding, release = asyncio.Event(), asyncio.Event()

    async def hold(tx) -> None:
        await tx.lock(name, "another")
        holding.set()
        await release.wait()

    async def take(tx) -> str:
        await tx.lock(name)
        return await tx.fetchval("SELECT 'taken'")

    held = asyncio.create_task(first.write(hold))
    await holding.wait()
    taking = asyncio.create_task(second.write(take))
    await eventually(lambda: first.fetchval(ASKED))  # the same key: it waits
    conn = await asyncpg.connect(**connect_options(second.url))
    try:  # held, under the key a parameter gives it (a NUL is stored as U+FFFD)
        taken = "SELECT pg_try_advisory_lock(hashtext($1))"
        assert not await conn.fetchval(taken, name.replace("\x00", "\ufffd"))
        for setting in ("off", "on"):  # the literal reads the same however the server is set
            await conn.execute(f"SET backslash_quote = {setting}")
            await conn.execute(f"SET standard_conforming_strings = {setting}")
            same = f"SELECT {literal(name)} = $1"
            assert await conn.fetchval(same, name.replace("\x00", "\ufffd"))
    finally:
        await conn.close()
    release.set()
    await held
    assert await asyncio.wait_for(taking, 10) == "taken"
    await eventually(lambda: none_of(first, HELD))


async def none_of(db: Database, count: str) -> bool:
    return await db.fetchval(count) == 0


# This test's database's advisory locks (the cluster is shared by every test).
ADVISORY = """SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'
    AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) AND """
ASKED, HELD = ADVISORY + "NOT granted", ADVISORY + "granted"


async def test_a_transaction_left_open_is_rolled_back_when_its_connection_goes_back(stores):
    """A connection goes back to the pool without asyncpg's reset query; a transaction
    left open on it (a task cancelled mid-write) is still rolled back, not committed by
    the next user, who finds the connection outside any transaction."""
    db = stores[0].db
    async with db._pool.acquire() as conn:
        await conn.execute("BEGIN")
        await conn.execute("INSERT INTO meta (name, value) VALUES ('left', 'open')")
    async with db._pool.acquire() as conn:
        assert not conn.is_in_transaction()

    async def write(tx) -> None:
        await tx.execute("INSERT INTO meta (name, value) VALUES ('next', 'write')")

    await db.write(write)
    assert await db.fetchval("SELECT count(*) FROM meta WHERE name = 'left'") == 0
    assert await db.fetchval("SELECT value FROM meta WHERE name = 'next'") == "write"


async def test_the_process_that_handles_an_mo_claims_the_next_that_waited_elsewhere(stores):
    holder, other = stores[0], stores[1]
    await holder.inbox.add(mo(1))
    (first,) = await holder.inbox.claim(5, lease=60)
    await other.inbox.add(mo(2))  # it waits behind the first
    assert await holder.inbox.claim(5, lease=60) == [] and not holder.inbox.unclaimed
    await holder.inbox.finish(first, Effects(None))
    holder.inbox.done_with(PHONE)
    assert holder.inbox.unclaimed  # the process that handled the first knows
    (taken,) = await holder.inbox.claim(5, lease=60)
    assert taken.gateway_id == 2
