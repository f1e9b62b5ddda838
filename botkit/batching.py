"""`Batcher`: items written to the database together, as many as came meanwhile.

The sender records each MT the gateway accepted. One transaction each costs the
connection a BEGIN, a COMMIT and a round trip per statement (on PostgreSQL), for every
MT; a batcher writes the first item at once and every item that comes while that write
commits in the next one. When idle, nothing waits; under load, one transaction takes
many: group commit, with no timer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")


class Batcher(Generic[T]):
    """`await batcher.add(item)` returns once `write` has committed a batch holding
    `item`, or raises what that write raised (each caller decides whether to retry)."""

    def __init__(self, write: Callable[[Sequence[T]], Awaitable[None]]) -> None:
        self._write = write
        self._waiting: list[tuple[T, asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def add(self, item: T) -> None:
        future = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_all())
        # shield: a caller that goes away leaves its item in the batch, written all the
        # same (the others of its batch wait for that write).
        await asyncio.shield(future)

    async def _write_all(self) -> None:
        """Write batches until none waits; then the next `add` starts this again."""
        batch: list[tuple[T, asyncio.Future[None]]] = []
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, []
                try:
                    await self._write([item for item, _ in batch])
                except Exception as exc:
                    for _, future in batch:
                        future.set_exception(exc)
                else:
                    for _, future in batch:
                        future.set_result(None)
        finally:
            self._writer = None
            # Cancelled (the event loop closing): no caller waits for ever.
            for _, future in batch + self._waiting:
                future.cancel()
