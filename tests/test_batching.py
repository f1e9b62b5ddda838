"""The batcher: one write for the items that came while the one before committed."""

from __future__ import annotations

import asyncio

import pytest
from conftest import eventually

from botkit.batching import Batcher
from botkit.db import DatabaseError


class Recorder:
    """A write that commits when told to, remembering each batch it was given."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.commit = asyncio.Event()
        self.fail: set[int] = set()

    async def write(self, items):
        self.batches.append(list(items))
        await self.commit.wait()
        if self.fail & set(items):
            raise DatabaseError("could not commit")


async def test_items_that_come_while_a_write_commits_go_in_the_next_together():
    recorder = Recorder()
    batcher = Batcher(recorder.write)
    first = asyncio.ensure_future(batcher.add(1))
    await eventually(lambda: recorder.batches == [[1]])  # written at once, alone
    # Tasks run in the order they were scheduled: these add their items before the
    # first write learns that it committed.
    others = [asyncio.ensure_future(batcher.add(n)) for n in range(2, 6)]
    recorder.commit.set()
    await asyncio.gather(first, *others)
    assert recorder.batches == [[1], [2, 3, 4, 5]]


async def test_an_idle_batcher_writes_the_next_item_at_once():
    recorder = Recorder()
    recorder.commit.set()
    batcher = Batcher(recorder.write)
    await batcher.add(1)
    await batcher.add(2)
    assert recorder.batches == [[1], [2]]


async def test_a_failed_write_fails_its_own_batch_only():
    recorder = Recorder()
    recorder.fail = {1}
    batcher = Batcher(recorder.write)
    first = asyncio.ensure_future(batcher.add(1))
    await eventually(lambda: recorder.batches == [[1]])
    later = asyncio.ensure_future(batcher.add(2))
    recorder.commit.set()
    with pytest.raises(DatabaseError):
        await first
    await later  # its own batch committed
    assert recorder.batches == [[1], [2]]


async def test_a_caller_that_goes_away_leaves_its_item_to_be_written():
    recorder = Recorder()
    batcher = Batcher(recorder.write)
    caller = asyncio.ensure_future(batcher.add(1))
    await eventually(lambda: recorder.batches == [[1]])
    caller.cancel()
    recorder.commit.set()
    await batcher.add(2)
    assert recorder.batches == [[1], [2]]
