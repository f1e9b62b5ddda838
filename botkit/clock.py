"""Time as the store sees it: a clock that tests can move, and one sortable text form."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


def stamp(moment: datetime) -> str:
    """A timestamp as fixed-width UTC text, so that text order is time order:
    `2026-12-03T07:00:00.000000Z`. (isoformat, not strftime: a third of the cost, and
    several stamps go with each message.)"""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")[:-6] + "Z"


def parse_stamp(text: str) -> datetime:
    """The inverse of `stamp` (fromisoformat reads its `Z` from Python 3.11 on, in a
    fortieth of strptime's time)."""
    return datetime.fromisoformat(text)


def later(clock: Clock, seconds: float) -> str:
    """The stamp of `seconds` from now on `clock`."""
    return stamp(clock() + timedelta(seconds=seconds))


async def wait(event: asyncio.Event, timeout: float) -> bool:
    """Wait for `event` at most `timeout` seconds; True if it was set.

    asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancel that
    coincides with the event being set, and a worker being stopped would run on.
    """
    try:
        async with asyncio.timeout(timeout):
            await event.wait()
    except TimeoutError:
        return False
    return True
