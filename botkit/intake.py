"""MO callbacks waiting to be stored, so that the dispatcher can give way to them.

A callback not yet answered holds one of the gateway's connections, and the gateway
sends it again if the answer is late; an MO already stored can wait its turn. So while
many callbacks wait for the database at once, and for a moment after, the dispatcher
takes on only a few MOs at a time, and the event loop and the database writer serve the
callbacks first. Handling never stops: it goes on, more slowly, while the callbacks
come, and at full speed once they ease.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

# Callbacks waiting at once that mean MOs come in faster than they are handled.
BUSY = 8
# How many MOs (or timers) the dispatcher handles at once while callbacks are busy.
BUSY_CONCURRENCY = 2
# How long busy lasts after the last time BUSY callbacks waited: under a steady flood
# their count dips below BUSY between commits, and each dip must not let the
# dispatcher take on a full load again.
HOLD_SECONDS = 0.2


class Intake:
    """Counts the MO callbacks between their arrival and their commit."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.waiting = 0
        self._clock = clock
        self._busy_until = float("-inf")

    @contextmanager
    def storing(self) -> Iterator[None]:
        """Around storing one MO: counted as waiting until it is stored (or refused)."""
        self.waiting += 1
        if self.waiting >= BUSY:
            self._busy_until = self._clock() + HOLD_SECONDS
        try:
            yield
        finally:
            self.waiting -= 1

    def busy_for(self) -> float:
        """Seconds the dispatcher should still give way for (0.0: it need not)."""
        if self.waiting >= BUSY:
            return HOLD_SECONDS
        return max(0.0, self._busy_until - self._clock())
