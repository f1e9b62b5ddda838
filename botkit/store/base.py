"""What every part of the store shares: the database and the clock."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection

from ..clock import Clock, stamp
from ..db import Database, DatabaseError, Row, Tx

# LIKE's escape character: `!` rather than a backslash, whose reading in a string
# literal PostgreSQL's standard_conforming_strings changes.
ESCAPE = "!"


def like_escaped(text: str) -> str:
    """`text` for a LIKE pattern with ESCAPE: its `%` and `_` matched as themselves."""
    for character in (ESCAPE, "%", "_"):
        text = text.replace(character, ESCAPE + character)
    return text


class Part:
    """One group of tables behind the storage interface."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    def now(self) -> str:
        """The current time as stored."""
        return stamp(self.clock())


class Claims(Part):
    """A part whose rows a process claims for a while (a lease) before working on them.

    `owner` names this process in the rows it claims. Its work commits only while it
    still holds the claim: one whose lease ran out (a process stalled for that long)
    may have been claimed and done by another process meanwhile.
    """

    def __init__(self, db: Database, clock: Clock, owner: str) -> None:
        super().__init__(db, clock)
        self.owner = owner


class ClaimLost(DatabaseError):
    """The claim's lease ran out and another process claimed the row: this process's
    work on it is not committed (the other one does it)."""


def lost(table: str, value: int) -> ClaimLost:
    return ClaimLost(f"{table} {value}: claimed by another process after the lease ran out")


# Claims of MOs and timers are taken one at a time across processes (tx.lock): each
# claim then sees every claim before it, as on SQLite, and no handset is claimed twice.
CLAIMS = "botkit claims"


# A claim whose work never commits (its lease lapsing each time) is given up after this
# many attempts, so that the handset's later work is not held up for ever.
MAX_ATTEMPTS = 5

GiveUp = Callable[[Tx, int, int], Awaitable[None]]


async def take_leases(
    tx: Tx,
    table: str,
    key: str,
    candidates: list[Row],
    *,
    limit: int,
    exclude: Collection[str],
    now: str,
    until: str,
    owner: str,
    give_up: GiveUp,
    waiting: str = "1 = 1",
) -> list[int]:
    """Claim up to `limit` of `candidates` (rows of key, handset, attempts) whose handset
    is not in `exclude`: those out of attempts are given up, the rest leased `until`.
    Returns the keys leased: those still unclaimed and `waiting` (an SQL condition) by
    then, as a row's holder may have finished it meanwhile (a holder past its lease)."""
    ids = await leasable(tx, candidates, limit=limit, exclude=exclude, give_up=give_up)
    if not ids:
        return []
    leased = await tx.fetchall(leasing(table, key, len(ids), waiting), (until, owner, *ids, now))
    kept = {row[0] for row in leased}
    return [row_key for row_key in ids if row_key in kept]


async def leasable(
    tx: Tx, candidates: list[Row], *, limit: int, exclude: Collection[str], give_up: GiveUp
) -> list[int]:
    """The keys of up to `limit` of `candidates` whose handset is not in `exclude`, to
    lease; those of them out of attempts are given up instead."""
    busy = set(exclude)
    ids = []
    for row_key, _, attempts in [row for row in candidates if row[1] not in busy][:limit]:
        if attempts >= MAX_ATTEMPTS:
            await give_up(tx, row_key, attempts)
        else:
            ids.append(row_key)
    return ids


def leasing(table: str, key: str, count: int, waiting: str = "1 = 1") -> str:
    """The UPDATE that leases `count` rows of `table` by `key` (its parameters: until,
    owner, the keys, now), unless taken or no longer `waiting`; it returns their keys."""
    return f"""UPDATE {table} SET claimed_until = ?, claimed_by = ?, attempts = attempts + 1
        WHERE {key} IN ({marks(range(count))}) AND {waiting}
          AND (claimed_until IS NULL OR claimed_until < ?)
        RETURNING {key}"""


def marks(values: Collection[object]) -> str:
    """Placeholders for an `IN (...)` list of `values`."""
    return ",".join("?" * len(values))
