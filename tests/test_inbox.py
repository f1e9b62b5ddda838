"""MOs that come together (on PostgreSQL stored in batches, on SQLite in the writer's
groups): each is stored once, numbered in the order it came, and a repeated gateway id
is told apart, also within one batch. Handled together, each commits its own effects,
and one whose claim was lost fails alone."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from conftest import rows

from botkit.addresses import OurNumbers
from botkit.db import Database
from botkit.messages import IncomingMO, Message, Reply, Thread
from botkit.migrations import migrate
from botkit.store import Store
from botkit.store.base import ClaimLost
from botkit.store.effects import Effects

pytestmark = pytest.mark.backends


NUMBERS = OurNumbers(["4433"], message_class="c")
REPLY = Reply(content="thanks", template=None, encoding="GSM-7", segments=1)


def mo(gateway_id: int, handset: str, text: str) -> IncomingMO:
    return IncomingMO(gateway_id=gateway_id, source=handset, destination="4433", content=text)


async def claimed_mos(store: Store, count: int, first: int) -> list[Message]:
    """`count` new MOs of as many handsets, stored and claimed."""
    for n in range(count):
        await store.inbox.add(mo(first + n, f"+61400{first + n:06}", f"text {n}"))
    claimed = await store.inbox.claim(count, lease=60)
    assert len(claimed) == count
    return claimed


def replying(claimed: list[Message], numberless: int | None = None) -> list[Effects]:
    """A reply to each of `claimed` in a new thread (with our numbers, but the
    `numberless`-th: its effects cannot be written)."""
    return [
        Effects(Thread(bot="b", handset=message.source, address="4433"), [REPLY],
                numbers=None if i == numberless else NUMBERS)
        for i, message in enumerate(claimed)
    ]  # fmt: skip


async def finish_together(
    store: Store, claimed: list[Message], effects: list[Effects]
) -> list[object]:
    """Each MO's finish, all at once; what each returned or raised."""
    finishing = (store.inbox.finish(m, e) for m, e in zip(claimed, effects, strict=True))
    return await asyncio.gather(*finishing, return_exceptions=True)


def statuses(database: str, messages: list[Message]) -> list[str]:
    status = {r["id"]: r["status"] for r in rows(database, "SELECT id, status FROM messages")}
    return [status[message.id] for message in messages]


@pytest.fixture
async def store(database: str) -> AsyncIterator[Store]:
    """A store over the test's database, migrated; closed after the test."""
    db = await Database.open(database)
    await migrate(db)
    yield Store(db)
    await db.close()


async def test_mos_that_come_together_are_stored_once_each_in_their_order(database, store):
    assert await store.inbox.add(mo(1, "+61400000001", "first")) is not None
    # Forty MOs at once from four handsets: one repeats an id of the burst, one the
    # id of the MO stored before.
    burst = [mo(100 + n, f"+6140000000{n % 4}", f"text {n}") for n in range(40)]
    burst[10] = mo(105, burst[10].source, "a repeat")
    burst[20] = mo(1, burst[20].source, "an old repeat")
    ids = await asyncio.gather(*(store.inbox.add(m) for m in burst))

    assert ids[10] is None and ids[20] is None  # repeats: stored before them
    new = [i for i in ids if i is not None]
    assert len(new) == len(set(new)) == 38
    assert new == sorted(new)  # numbered in the order they came
    stored = rows(database, "SELECT id, gateway_id, content FROM messages ORDER BY id")
    kept = [m.gateway_id for i, m in zip(ids, burst, strict=True) if i is not None]
    assert [r["gateway_id"] for r in stored] == [1, *kept]
    assert "a repeat" not in {r["content"] for r in stored}
    waiting = rows(database, "SELECT message_id FROM inbox ORDER BY message_id")
    assert [r["message_id"] for r in waiting] == [stored[0]["id"], *new]


async def test_mos_handled_together_commit_together_and_a_lost_claim_fails_alone(database, store):
    db = store.db
    claimed = await claimed_mos(store, 8, 200)
    # Another process took one claim over after its lease ran out.
    taken = claimed[3]
    await db.write(
        lambda tx: tx.execute(
            "UPDATE inbox SET claimed_by = 'elsewhere' WHERE message_id = ?", (taken.id,)
        )
    )
    handled = replying(claimed)
    outcomes = await finish_together(store, claimed, handled)

    assert isinstance(outcomes[3], ClaimLost)
    assert all(isinstance(ids, list) and len(ids) == 1 for i, ids in enumerate(outcomes) if i != 3)
    assert handled[3].thread.id is None  # not committed
    assert all(effects.thread.id is not None for i, effects in enumerate(handled) if i != 3)
    assert statuses(database, claimed) == [
        *["handled"] * 3,
        "received",
        *["handled"] * 4,
    ]
    queued = rows(database, "SELECT m.handset FROM messages m JOIN outbox o ON o.message_id = m.id")
    assert sorted(r["handset"] for r in queued) == sorted(
        message.source for i, message in enumerate(claimed) if i != 3
    )
    left = rows(database, "SELECT message_id, claimed_by FROM inbox")
    assert [(r["message_id"], r["claimed_by"]) for r in left] == [(taken.id, "elsewhere")]


async def test_mos_handled_at_once_share_transactions_on_postgresql(database, store):
    db = store.db
    for n in range(12):
        await store.inbox.add(mo(300 + n, f"+6140000020{n:02}", f"text {n}"))
    claimed = await store.inbox.claim(12, lease=60)
    transactions = 0
    write = db.write

    async def counting(fn, **options):
        nonlocal transactions
        transactions += 1
        return await write(fn, **options)

    db.write = counting
    handled = [
        (message, Effects(Thread(bot="b", handset=message.source, address="4433")))
        for message in claimed
    ]
    await asyncio.gather(*(store.inbox.finish(m, effects) for m, effects in handled))

    assert len(claimed) == 12
    assert all(effects.thread.id is not None for _, effects in handled)
    if db.shared:  # three at once, the rest together as they came
        assert transactions < 12
    else:  # SQLite's writer groups the commits itself
        assert transactions == 12
    status = {r["status"] for r in rows(database, "SELECT status FROM messages")}
    assert status == {"handled"} and rows(database, "SELECT * FROM inbox") == []


async def test_a_handled_mo_whose_commit_fails_fails_alone_in_its_batch(database, store):
    claimed = await claimed_mos(store, 4, 400)
    # The third's effects cannot be written: replies without our numbers.
    outcomes = await finish_together(store, claimed, replying(claimed, numberless=2))

    assert isinstance(outcomes[2], ValueError)
    assert all(isinstance(ids, list) and len(ids) == 1 for i, ids in enumerate(outcomes) if i != 2)
    assert statuses(database, claimed) == ["handled", "handled", "received", "handled"]


async def test_the_inbox_says_when_an_mo_may_wait_unclaimed(store):
    """The dispatcher claims from the inbox only while an MO may wait there unclaimed
    (`Inbox.unclaimed`), not after every MO (on SQLite most are claimed as they are
    stored)."""
    phone = "+61400000001"
    assert store.inbox.unclaimed  # at the start, whatever the last run left
    assert await store.inbox.claim(5, lease=60) == []
    assert not store.inbox.unclaimed
    await store.inbox.add(mo(1, phone, "a"))
    assert store.inbox.unclaimed  # stored unclaimed
    (first,) = await store.inbox.claim(5, lease=60)
    assert not store.inbox.unclaimed
    await store.inbox.add(mo(2, phone, "b"))
    assert store.inbox.unclaimed  # it waits behind the first
    assert await store.inbox.claim(5, lease=60) == []
    assert not store.inbox.unclaimed
    await store.inbox.finish(first, Effects(None))
    assert not store.inbox.unclaimed  # the dispatcher still holds the handset
    store.inbox.done_with(phone)
    assert store.inbox.unclaimed  # the first handled: the second may go now
    (second,) = await store.inbox.claim(5, lease=60)
    assert second.gateway_id == 2 and not store.inbox.unclaimed
    await store.inbox.finish(second, Effects(None))
    store.inbox.done_with(phone)
    assert not store.inbox.unclaimed  # nothing waited behind it
    for n in (3, 4):
        await store.inbox.add(mo(n, f"+6140000000{n}", "c"))
    assert len(await store.inbox.claim(1, lease=60)) == 1
    assert store.inbox.unclaimed  # a claim that took all it asked for may have left more
    assert len(await store.inbox.claim(5, lease=60)) == 1
    assert not store.inbox.unclaimed


async def test_an_mo_is_claimed_as_it_is_stored_on_sqlite_only(store):
    """On SQLite the dispatcher claims an MO in the transaction that stores it; on
    PostgreSQL its loop claims them from the inbox in batches, and the store refuses."""
    phone = "+61400000001"
    if store.db.shared:
        with pytest.raises(ValueError, match="SQLite only"):
            await store.inbox.add_claimed(mo(1, phone, "a"), lease=60)
        assert await store.inbox.depth() == 0
        return
    assert await store.inbox.claim(5, lease=60) == [] and not store.inbox.unclaimed
    _, first = await store.inbox.add_claimed(mo(1, phone, "a"), lease=60)
    assert first is not None and not store.inbox.unclaimed  # claimed as it was stored
    _, second = await store.inbox.add_claimed(mo(2, phone, "b"), lease=60)
    assert second is None and store.inbox.unclaimed  # it waits behind the first
