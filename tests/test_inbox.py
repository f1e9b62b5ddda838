"""MOs that come together (on PostgreSQL stored in batches, on SQLite in the writer's
groups): each is stored once, numbered in the order it came, and a repeated gateway id
is told apart, also within one batch."""

from __future__ import annotations

import asyncio

import pytest
from conftest import rows

from botkit.db import Database
from botkit.messages import IncomingMO
from botkit.migrations import migrate
from botkit.store import Store

pytestmark = pytest.mark.backends


def mo(gateway_id: int, handset: str, text: str) -> IncomingMO:
    return IncomingMO(gateway_id=gateway_id, source=handset, destination="4433", content=text)


async def test_mos_that_come_together_are_stored_once_each_in_their_order(database):
    db = await Database.open(database)
    await migrate(db)
    store = Store(db)
    try:
        assert await store.inbox.add(mo(1, "+61400000001", "first")) is not None
        # Forty MOs at once from four handsets: one repeats an id of the burst, one the
        # id of the MO stored before.
        burst = [mo(100 + n, f"+6140000000{n % 4}", f"text {n}") for n in range(40)]
        burst[10] = mo(105, burst[10].source, "a repeat")
        burst[20] = mo(1, burst[20].source, "an old repeat")
        ids = await asyncio.gather(*(store.inbox.add(m) for m in burst))
    finally:
        await db.close()

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
