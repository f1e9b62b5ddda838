"""MO callbacks waiting to be stored, so that the dispatcher can give way to them.

A callback not yet answered holds one of the gateway's connections, and the gateway
sends it again if the answer is late; an MO already stored can wait its turn. So while
many callbacks wait for the database at once, the dispatcher takes on only a few MOs
at a time, and the event loop and the database writer serve the callbacks first.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

# Callbacks waiting at once that mean MOs come in faster than they are handled.
BUSY = 8
# How many MOs (or timers) the dispatcher handles at once while callbacks are busy.
BUSY_CONCURRENCY = 2


class Intake:
    """Counts the MO callbacks between their arrival and their commit."""

    def __init__(self) -> None:
        self.waiting = 0

    @contextmanager
    def storing(self) -> Iterator[None]:
        """Around storing one MO: counted as waiting until it is stored (or refused)."""
        self.waiting += 1
        try:
            yield
        finally:
            self.waiting -= 1

    @property
    def busy(self) -> bool:
        """True while enough callbacks wait that the dispatcher should give way."""
        return self.waiting >= BUSY
