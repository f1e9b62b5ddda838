"""`Worker`: a background loop that sleeps until woken, and the tasks it starts.

The dispatcher and the sender are workers: `start()` in the app's lifespan,
`wake()` when there may be work, `stop()` to stop looping and let the tasks under
way finish.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

from .clock import wait

log = logging.getLogger("botkit.worker")
T = TypeVar("T")

# A loop that fails is started again after this many seconds, doubling up to the cap.
RESTART_SECONDS, RESTART_CAP = 0.5, 30.0


class Worker:
    """Subclasses write `_run()`, a loop that calls `await self.sleep(seconds)` when idle."""

    name = "worker"

    def __init__(self) -> None:
        self._wake = asyncio.Event()
        self._loop: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.stopping = False  # set by stop(): take on no new work

    def start(self) -> None:
        self.stopping = False
        self._loop = asyncio.create_task(self._supervise(), name=f"botkit-{self.name}")

    @property
    def alive(self) -> bool:
        """True while the loop runs (for the health check)."""
        return self._loop is not None and not self._loop.done()

    async def _supervise(self) -> None:
        """Run the loop; if it fails, log it and start it again after a pause, so that
        one unexpected error never leaves messages waiting for a worker that is gone."""
        delay = RESTART_SECONDS
        while True:
            try:
                await self._run()
                return
            except Exception:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    # Failed as stop() cancelled it: started again, it would run on, and
                    # stop() would wait for it for ever.
                    log.exception("%s failed as it stopped", self.name)
                    return
                log.exception("%s failed; starting it again in %.1fs", self.name, delay)
            await asyncio.sleep(delay)
            delay = min(RESTART_CAP, delay * 2)

    def wake(self) -> None:
        """Say there may be new work; an idle loop starts its next round at once."""
        self._wake.set()

    async def stop(self) -> None:
        """Stop the loop, then wait for the tasks it started (and those they start)."""
        self.stopping = True
        if self._loop is not None:
            self._loop.cancel()
            await asyncio.gather(self._loop, return_exceptions=True)
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _run(self) -> None:
        raise NotImplementedError

    def spawn(self, coroutine: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """Start a task that `stop()` will wait for."""
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def ready(self) -> None:
        """Call at the top of a round: a wake-up from now on is not missed."""
        self._wake.clear()

    async def sleep(self, seconds: float) -> None:
        """Wait until woken, or `seconds` at most."""
        await wait(self._wake, seconds)
