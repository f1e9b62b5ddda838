"""`Batcher`: items written to the database together, as many as came meanwhile.

An MO stored, or an MT the gateway accepted, is a transaction of its own: on
PostgreSQL a BEGIN, a COMMIT and a round trip per statement, holding a pooled
connection, for every message. A batcher writes the first item at once and every item
that comes while that write commits in the next one, in one transaction with a few
statements for all of them. When idle, nothing waits; under load, one transaction
takes many: group commit, with no timer. Reads made by many at once (each MO's thread)
are batched the same way: one statement for all that came meanwhile.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

# Items in one write at most: the statements carry a row of parameters per item.
MOST = 64


class Batcher(Generic[T, R]):
    """`await batcher.add(item)` returns `item`'s result once `write` has committed a
    batch holding it (`write` returns one result per item, in order), or raises what
    that write raised. A batch of several that fails is written again one item at a
    time, so that an item the database refuses fails alone.

    Up to `writers` batches are written at once (on connections of their own): items
    whose order matters among themselves need one."""

    def __init__(
        self, write: Callable[[Sequence[T]], Awaitable[Sequence[R]]], writers: int = 1
    ) -> None:
        self._write = write
        self._most_writers = writers
        self._waiting: list[tuple[T, asyncio.Future[R]]] = []
        self._writers: set[asyncio.Task[None]] = set()

    async def add(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if len(self._writers) < self._most_writers:
            # The new writer takes its first batch now: one started just before it, not
            # yet running, must not take this item too.
            writer = asyncio.create_task(self._write_all(self._take()))
            self._writers.add(writer)
        # shield: a caller that goes away leaves its item in the batch, written all the
        # same (the others of its batch wait for that write).
        return await asyncio.shield(future)

    def _take(self) -> list[tuple[T, asyncio.Future[R]]]:
        batch, self._waiting = self._waiting[:MOST], self._waiting[MOST:]
        return batch

    async def _write_all(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        """Write `batch`, then those that came meanwhile, until none waits; then the next
        `add` starts a writer again."""
        try:
            while batch:
                try:
                    results = await self._write([item for item, _ in batch])
                except Exception as exc:
                    if len(batch) == 1:
                        _fail(batch[0][1], exc)
                    else:
                        for single in batch:
                            await self._write_alone(*single)
                else:
                    for (_, future), result in zip(batch, results, strict=True):
                        if not future.done():  # cancelled meanwhile: the loop closing
                            future.set_result(result)
                batch = self._take()
        finally:
            # Here, not in a done callback: until that ran, an `add` would count this
            # writer as running, start none, and leave its item waiting for ever.
            self._writers.discard(asyncio.current_task())  # type: ignore[arg-type]
            # Stopped before its batch was written (cancelled: the event loop closing).
            # The items waiting are the other writers' to take; with none left, no caller
            # may wait for ever.
            for _, future in batch + ([] if self._writers else self._take_all()):
                future.cancel()

    def _take_all(self) -> list[tuple[T, asyncio.Future[R]]]:
        waiting, self._waiting = self._waiting, []
        return waiting

    async def _write_alone(self, item: T, future: asyncio.Future[R]) -> None:
        try:
            (result,) = await self._write([item])
        except Exception as exc:
            _fail(future, exc)
        else:
            if not future.done():
                future.set_result(result)


def _fail(future: asyncio.Future[object], exc: Exception) -> None:
    if not future.done():  # cancelled meanwhile: the loop closing
        future.set_exception(exc)
