"""MO callbacks waiting to be stored, so that the dispatcher can give way to them.

A callback not yet answered holds one of the gateway's connections, and the gateway
may send it again if the answer is late; an MO already stored can wait its turn. So
while many callbacks wait for the database at once, and for a moment after, the
dispatcher takes on MOs (and timers) only as fast as they arrive, and a quarter more:
it keeps pace, so no backlog builds, and a backlog (after a restart, say) is caught up
a little at a time rather than in bursts that the callbacks would wait behind. While
many have waited for a while, on average (a flood: more come than the process can
store and handle), it takes on only a few at a time, and the event loop and the database
writer serve the callbacks first. What it limits is how many it takes on in a while,
not how many run: handlers that wait on other services all go on waiting together.
Handling never stops. Timers share the allowance and come first (dispatcher.py), so
timers falling due in numbers slow the MOs down.
"""

from __future__ import annotations

import collections
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

# Callbacks waiting at once that mean MOs come in about as fast as they are stored.
BUSY = 8
# Callbacks waiting, on average over about FLOOD_SECONDS, that mean they come in faster
# than they can be stored and handled. The dip as a commit answers many at once barely
# moves the average, nor does a stall of a tenth of a second at 500 MO/s; a longer one
# counts as a flood for a while, and the backlog it leaves is caught up (CATCH_UP).
FLOODED, FLOOD_SECONDS = 16, 0.5
# How long busy lasts after BUSY callbacks last waited: under a steady flood their
# count dips below BUSY between commits, and each dip must not let the dispatcher take
# on a whole backlog at once.
HOLD_SECONDS = 0.2
# While busy, the dispatcher takes on in any WINDOW_SECONDS as many MOs or timers as
# callbacks arrived in it, a CATCH_UP more for each, and BUSY_STARTS more; while
# flooded, BUSY_STARTS (40 a second).
BUSY_STARTS, WINDOW_SECONDS, CATCH_UP = 4, 0.1, 0.25


class Intake:
    """Counts the MO callbacks between their arrival and their commit, those that
    arrived lately, how many waited on average lately, and the MOs and timers the
    dispatcher took on lately."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.waiting = 0
        self._clock = clock
        self._busy_until = float("-inf")
        self._average = 0.0  # callbacks waiting, a moving average over FLOOD_SECONDS
        self._changed_at = clock()
        self._arrivals: collections.deque[float] = collections.deque()
        self._starts: collections.deque[float] = collections.deque()

    @contextmanager
    def storing(self) -> Iterator[None]:
        """Around storing one MO: counted as waiting until it is stored (or refused)."""
        now = self._clock()
        self._forget(now)
        self._arrivals.append(now)
        self._average_to(now)
        self.waiting += 1
        self._hold()
        try:
            yield
        finally:
            self._hold()  # busy lasts from the last moment BUSY waited
            self._average_to(self._clock())
            self.waiting -= 1

    def _average_to(self, now: float) -> float:
        """The average of callbacks waiting, brought up to `now` (`waiting` as it was
        since the last change)."""
        decay = math.exp(-max(0.0, now - self._changed_at) / FLOOD_SECONDS)
        self._average = self._average * decay + self.waiting * (1 - decay)
        self._changed_at = now
        return self._average

    def _hold(self) -> None:
        if self.waiting >= BUSY:
            self._busy_until = self._clock() + HOLD_SECONDS

    def room(self) -> tuple[int | None, float]:
        """(How many MOs or timers the dispatcher may take on now, None for no limit of
        ours; seconds until that may change, 0.0 when it is no limit)."""
        now = self._clock()
        self._forget(now)
        if self.waiting < BUSY and now >= self._busy_until:
            return None, 0.0
        if self._average_to(now) >= FLOODED:
            allowed = BUSY_STARTS
        else:
            allowed = BUSY_STARTS + int(len(self._arrivals) * (1 + CATCH_UP))
        left = allowed - len(self._starts)
        if left > 0:
            return left, 0.0
        # No room means BUSY_STARTS or more starts in the window: room comes back as the
        # oldest leaves it (an arrival may bring it sooner: the dispatcher is woken for
        # each MO stored unclaimed).
        until = self._starts[0] + WINDOW_SECONDS
        if self.waiting < BUSY:
            until = min(until, self._busy_until)
        return 0, max(0.001, until - now)

    def _forget(self, now: float) -> None:
        """Drop the arrivals and starts that have left the window."""
        for times in (self._arrivals, self._starts):
            while times and times[0] <= now - WINDOW_SECONDS:
                times.popleft()

    def started(self, count: int) -> None:
        """The dispatcher took on `count` MOs or timers."""
        now = self._clock()
        self._starts.extend(now for _ in range(count))

    def unstarted(self) -> None:
        """The last MO counted as started was not taken on after all (stored unclaimed,
        or a duplicate): its start is given back."""
        if self._starts:
            self._starts.pop()
