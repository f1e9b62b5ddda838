"""MO callbacks waiting to be stored, so that the dispatcher can give way to them.

A callback not yet answered holds one of the gateway's connections, and the gateway
may send it again if the answer is late; an MO already stored can wait its turn. So
while many callbacks wait for the database at once, and for a moment after, the
dispatcher takes on only a few MOs (or timers) at a time, and the event loop and the
database writer serve the callbacks first. What it limits is how many it takes on in a
while, not how many run: handlers that wait on other services all go on waiting
together. Handling never stops: it goes on, more slowly, while the callbacks come, and
at full speed once they ease.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

# Callbacks waiting at once that mean MOs come in faster than they are handled.
BUSY = 8
# How long busy lasts after BUSY callbacks last waited: under a steady flood their
# count dips below BUSY between commits, and each dip must not let the dispatcher take
# on a full load again.
HOLD_SECONDS = 0.2
# While busy, the dispatcher takes on at most BUSY_STARTS MOs or timers in any
# WINDOW_SECONDS: 40 a second.
BUSY_STARTS, WINDOW_SECONDS = 4, 0.1


class Intake:
    """Counts the MO callbacks between their arrival and their commit, and the MOs and
    timers the dispatcher took on lately."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.waiting = 0
        self._clock = clock
        self._busy_until = float("-inf")
        self._starts: collections.deque[float] = collections.deque()

    @contextmanager
    def storing(self) -> Iterator[None]:
        """Around storing one MO: counted as waiting until it is stored (or refused)."""
        self.waiting += 1
        self._hold()
        try:
            yield
        finally:
            self._hold()  # busy lasts from the last moment BUSY waited
            self.waiting -= 1

    def _hold(self) -> None:
        if self.waiting >= BUSY:
            self._busy_until = self._clock() + HOLD_SECONDS

    def room(self) -> tuple[int | None, float]:
        """(How many MOs or timers the dispatcher may take on now, None for no limit of
        ours; seconds until that may change, 0.0 when it is no limit)."""
        now = self._clock()
        while self._starts and self._starts[0] <= now - WINDOW_SECONDS:
            self._starts.popleft()
        if self.waiting < BUSY and now >= self._busy_until:
            return None, 0.0
        left = BUSY_STARTS - len(self._starts)
        if left > 0:
            return left, 0.0
        until = self._starts[0] + WINDOW_SECONDS
        if self.waiting < BUSY:
            until = min(until, self._busy_until)
        return 0, max(0.001, until - now)

    def started(self, count: int) -> None:
        """The dispatcher took on `count` MOs or timers."""
        now = self._clock()
        self._starts.extend(now for _ in range(count))

    def unstarted(self) -> None:
        """The last MO counted as started was not taken on after all (stored unclaimed,
        or a duplicate): its start is given back."""
        if self._starts:
            self._starts.pop()
