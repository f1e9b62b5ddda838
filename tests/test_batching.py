"""The batcher: one write for the items that came while the one before committed."""

from __future__ import annotations

import asyncio

import pytest
from conftest import eventually

from botkit.batching import MOST, Batcher
from botkit.db import DatabaseError


class Recorder:
    """A write that commits when told to, remembering each batch it was given; an item
    in `refuse` fails any batch that holds it. Each item's result is ten times it."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.writers: list[asyncio.Task] = []  # the task that wrote each batch
        self.commit = asyncio.Event()
        self.refuse: set[int] = set()

    async def write(self, items):
        self.batches.append(list(items))
        self.writers.append(asyncio.current_task())
        await self.commit.wait()
        if self.refuse & set(items):
            raise DatabaseError("could not commit")
        return [item * 10 for item in items]


async def test_items_that_come_while_a_write_commits_go_in_the_next_together():
    recorder = Recorder()
    batcher = Batcher(recorder.write)
    first = asyncio.ensure_future(batcher.add(1))
    await eventually(lambda: recorder.batches == [[1]])  # written at once, alone
    # Tasks run in the order they were scheduled: these add their items before the
    # first write learns that it committed.
    others = [asyncio.ensure_future(batcher.add(n)) for n in range(2, 6)]
    recorder.commit.set()
    assert await asyncio.gather(first, *others) == [10, 20, 30, 40, 50]
    assert recorder.batches == [[1], [2, 3, 4, 5]]


async def test_an_idle_batcher_writes_the_next_item_at_once():
    recorder = Recorder()
    recorder.commit.set()
    batcher = Batcher(recorder.write)
    assert await batcher.add(1) == 10
    assert await batcher.add(2) == 20
    assert recorder.batches == [[1], [2]]


async def test_a_batch_holds_at_most_MOST_items():
    recorder = Recorder()
    batcher = Batcher(recorder.write)
    first = asyncio.ensure_future(batcher.add(0))
    await eventually(lambda: recorder.batches == [[0]])
    others = [asyncio.ensure_future(batcher.add(n)) for n in range(1, MOST + 6)]
    recorder.commit.set()
    await asyncio.gather(first, *others)
    assert [len(batch) for batch in recorder.batches] == [1, MOST, 5]


async def test_an_item_the_database_refuses_fails_alone():
    recorder = Recorder()
    recorder.refuse = {1, 3}
    batcher = Batcher(recorder.write)
    first = asyncio.ensure_future(batcher.add(1))
    await eventually(lambda: recorder.batches == [[1]])
    later = [asyncio.ensure_future(batcher.add(n)) for n in (2, 3, 4)]
    recorder.commit.set()
    with pytest.raises(DatabaseError):
        await first
    # The batch that failed was written again one item at a time: only 3 failed.
    outcomes = await asyncio.gather(*later, return_exceptions=True)
    assert outcomes[0] == 20 and outcomes[2] == 40
    assert isinstance(outcomes[1], DatabaseError)
    assert recorder.batches == [[1], [2, 3, 4], [2], [3], [4]]


async def test_a_caller_that_goes_away_leaves_its_item_to_be_written():
    recorder = Recorder()
    batcher = Batcher(recorder.write)
    caller = asyncio.ensure_future(batcher.add(1))
    await eventually(lambda: recorder.batches == [[1]])
    caller.cancel()
    recorder.commit.set()
    assert await batcher.add(2) == 20
    assert recorder.batches == [[1], [2]]


async def test_several_writers_write_batches_at_once():
    recorder = Recorder()
    batcher = Batcher(recorder.write, writers=2)
    first = asyncio.ensure_future(batcher.add(1))
    second = asyncio.ensure_future(batcher.add(2))
    # Both written at once, each alone: neither waits for the other's commit.
    await eventually(lambda: recorder.batches == [[1], [2]])
    others = [asyncio.ensure_future(batcher.add(n)) for n in range(3, 6)]
    recorder.commit.set()
    assert await asyncio.gather(first, second, *others) == [10, 20, 30, 40, 50]
    assert sorted(item for batch in recorder.batches[2:] for item in batch) == [3, 4, 5]


async def test_a_writer_stopped_leaves_the_waiting_items_to_the_others():
    recorder = Recorder()
    batcher = Batcher(recorder.write, writers=2)
    first = asyncio.ensure_future(batcher.add(1))
    second = asyncio.ensure_future(batcher.add(2))
    await eventually(lambda: recorder.batches == [[1], [2]])
    third = asyncio.ensure_future(batcher.add(3))  # waits: both writers are busy
    await eventually(lambda: len(batcher._waiting) == 1)
    recorder.writers[0].cancel()  # the writer of item 1 stops (the event loop closing)
    with pytest.raises(asyncio.CancelledError):
        await first
    recorder.commit.set()
    # The other writer takes item 3 and answers it: nothing written goes unanswered.
    assert await asyncio.gather(second, third) == [20, 30]
    assert recorder.batches == [[1], [2], [3]]
