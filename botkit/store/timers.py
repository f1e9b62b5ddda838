"""Timers: reminders and expiries, durable, each fired exactly once.

A timer belongs to a thread. It is claimed like an MO (a lease, one handset at a
time, never while an MO of that handset waits), and its handler's effects commit
with the timer marked fired, in one transaction; a timer that came due while the
app was down fires at the next start. Closing a thread cancels its pending timers.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from ..clock import later, parse_stamp, stamp
from ..db import Row, Tx
from ..events import CAMPAIGN_FIRED
from ..messages import Timer
from .base import CLAIMS, Claims, lost, marks, take_leases
from .effects import Effects, commit
from .webhooks import emit


class Timers(Claims):
    """Pending timers, claimed when due."""

    async def claim(self, limit: int, lease: float, exclude: Sequence[str] = ()) -> list[Timer]:
        """Claim due timers of up to `limit` handsets that have no MO waiting, none claimed
        and are not in `exclude` (being handled here): the oldest due timer of each."""

        async def write(tx: Tx) -> list[int]:
            await tx.lock(CLAIMS)
            now = self.now()
            rows = await tx.fetchall(
                """SELECT t.id, t.handset, t.attempts FROM timers t
                   WHERE t.state = 'pending' AND t.due_at <= ?
                     AND (t.claimed_until IS NULL OR t.claimed_until < ?)
                     AND NOT EXISTS (SELECT 1 FROM inbox i WHERE i.handset = t.handset)
                     AND NOT EXISTS (SELECT 1 FROM timers c WHERE c.handset = t.handset
                                     AND c.claimed_until >= ?)
                     AND t.id = (SELECT min(id) FROM timers o
                                 WHERE o.handset = t.handset AND o.state = 'pending'
                                   AND o.due_at <= ?
                                   -- a thread an operator took over: its timers wait
                                   AND NOT EXISTS (SELECT 1 FROM threads th
                                       WHERE th.id = o.thread_id AND th.paused_by IS NOT NULL))
                   ORDER BY t.due_at, t.id LIMIT ?""",
                (now, now, now, now, limit + len(exclude)),
            )
            # An MO of the handset stored meanwhile (holding this lock: Inbox.add on
            # PostgreSQL) goes first: the lease below sees it in the inbox, and waits.
            await tx.lock(*(f"handset {row[1]}" for row in rows))
            return await take_leases(
                tx,
                "timers",
                "id",
                rows,
                limit=limit,
                exclude=exclude,
                now=now,
                until=later(self.clock, lease),
                owner=self.owner,
                give_up=self._give_up,
                waiting="""state = 'pending'
                    AND NOT EXISTS (SELECT 1 FROM inbox i WHERE i.handset = timers.handset)""",
            )

        ids = await self.db.write(write)
        if not ids:
            return []
        rows = await self.db.fetchall(
            f"SELECT * FROM timers WHERE id IN ({marks(ids)}) ORDER BY due_at, id", ids
        )
        return [timer_from_row(row) for row in rows]

    async def _give_up(self, tx: Tx, timer_id: int, attempts: int) -> None:
        await _end(tx, timer_id, "failed", f"gave up after {attempts} attempts", self.now())

    async def finish(self, timer: Timer, effects: Effects) -> list[int]:
        """Commit a fired timer in one transaction: its handler's `effects`, and the timer
        marked fired. Returns the ids of the MTs."""
        assert timer.id is not None

        async def write(tx: Tx) -> tuple[int | None, list[int]]:
            now = self.now()
            await self._release(tx, timer, "fired", None, now)
            done = await commit(tx, effects, now)
            if timer.thread_id is None:  # a campaign's event: in a thread of its own
                await fired(tx, timer, done[0], now)
            return done

        thread_id, mt_ids = await self.db.write(write)
        if effects.thread is not None:
            effects.thread.id = thread_id  # committed: a new thread has its id now
        return mt_ids

    async def postpone(self, timer: Timer, due: datetime) -> None:
        """Put a claimed timer back, due at `due` (a campaign event claimed in its quiet
        hours, after the app was down: it waits for their end)."""
        assert timer.id is not None

        async def write(tx: Tx) -> None:
            await tx.lock(f"handset {timer.handset}")  # as _release: MOs of it wait
            await tx.execute(
                """UPDATE timers SET due_at = ?, claimed_until = NULL, claimed_by = NULL,
                       attempts = 0
                   WHERE id = ? AND state = 'pending' AND claimed_by = ?""",
                (stamp(due), timer.id, self.owner),
            )

        await self.db.write(write)

    async def end(self, timer: Timer, state: str, error: str | None = None) -> None:
        """Mark a claimed timer failed (its handler raised) or cancelled (nothing to do)."""
        assert timer.id is not None

        await self.db.write(lambda tx: self._release(tx, timer, state, error, self.now()))

    async def _release(self, tx: Tx, timer: Timer, state: str, error: str | None, now: str) -> None:
        """End a claimed timer, first thing in the transaction that commits what its
        handler did: ClaimLost if this process no longer holds its claim. An MO of its
        handset stored meanwhile commits first or waits for this (the handset's lock):
        the dispatcher, told the timer ended, claims the one; the other's process
        claims it after (on SQLite, as it is stored)."""
        assert timer.id is not None
        await tx.lock(f"handset {timer.handset}")
        if not await _end(tx, timer.id, state, error, now, owner=self.owner):
            raise lost("timers", timer.id)

    async def pending(self, thread_id: int) -> list[Timer]:
        """A thread's pending timers, soonest first."""
        rows = await self.db.fetchall(
            """SELECT * FROM timers WHERE thread_id = ? AND state = 'pending'
               ORDER BY due_at, id""",
            (thread_id,),
        )
        return [timer_from_row(row) for row in rows]

    async def campaign_events(self, handset: str) -> list[Timer]:
        """A contact's pending campaign events (timers of no thread yet), soonest first."""
        rows = await self.db.fetchall(
            """SELECT * FROM timers WHERE handset = ? AND thread_id IS NULL
               AND state = 'pending' ORDER BY due_at, id""",
            (handset,),
        )
        return [timer_from_row(row) for row in rows]

    async def next_due(self) -> str | None:
        """When the soonest pending timer is due."""
        return await self.db.fetchval("SELECT min(due_at) FROM timers WHERE state = 'pending'")

    async def release_all(self) -> int:
        """Free every claim (at start-up, on a database no other process uses)."""
        return await self.db.write(
            lambda tx: tx.execute(
                "UPDATE timers SET claimed_until = NULL WHERE claimed_until IS NOT NULL"
            )
        )


async def _end(
    tx: Tx, timer_id: int, state: str, error: str | None, now: str, owner: str | None = None
) -> int:
    """Mark a pending timer fired, failed or cancelled (only if `owner` holds its claim,
    when given); return 1 if it was, else 0."""
    return await tx.execute(
        f"""UPDATE timers SET state = ?, error = ?, fired_at = ?, claimed_until = NULL,
               claimed_by = NULL
           WHERE id = ? AND state = 'pending'{" AND claimed_by = ?" if owner else ""}""",
        (state, error, now, timer_id, *([owner] if owner else [])),
    )


async def fired(tx: Tx, timer: Timer, thread_id: int | None, now: str) -> None:
    """Tell the webhooks that a campaign's event fired (campaign:NAME:INDEX)."""
    _, campaign, index = timer.name.split(":")
    data = {
        "campaign": campaign,
        "event": int(index),
        "handset": timer.handset,
        "number": timer.data.get("address"),
        "thread_id": thread_id,
        "fired_at": now,
    }
    await emit(tx, CAMPAIGN_FIRED, data, now)


def timer_from_row(row: Row) -> Timer:
    return Timer(
        id=row["id"],
        thread_id=row["thread_id"],
        handset=row["handset"],
        name=row["name"],
        data=json.loads(row["data"]),
        due_at=parse_stamp(row["due_at"]),
    )
