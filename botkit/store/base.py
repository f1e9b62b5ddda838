"""What every part of the store shares: the database and the clock."""

from __future__ import annotations

from ..clock import Clock, stamp
from ..db import Database


class Part:
    """One group of tables behind the storage interface."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    def now(self) -> str:
        """The current time as stored."""
        return stamp(self.clock())


def marks(values: list[int]) -> str:
    """Placeholders for an `IN (...)` list of `values`."""
    return ",".join("?" * len(values))
