"""Threads: a conversation between one handset and one of our addresses."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence

from ..batching import Batcher
from ..clock import Clock
from ..db import Database, Row, Tx
from ..messages import Thread
from .base import Part

# What `Threads.open_for` looks for: handset, address, bot (None: any), since (None: ever).
Wanted = tuple[str, str, str | None, str | None]


class Threads(Part):
    """Reads of threads; writes happen inside the inbox's transactions."""

    def __init__(self, db: Database, clock: Clock) -> None:
        super().__init__(db, clock)
        self._finding: Batcher[Wanted, Thread | None] = Batcher(self._open_for_all)

    async def get(self, thread_id: int) -> Thread | None:
        row = await self.db.fetchone("SELECT * FROM threads WHERE id = ?", (thread_id,))
        return None if row is None else thread_from_row(row)

    async def of_mt(self, gateway_id: int) -> Thread | None:
        """The thread of the MT the gateway knows as `gateway_id`."""
        row = await self.db.fetchone(
            """SELECT t.* FROM messages m JOIN threads t ON t.id = m.thread_id
               WHERE m.direction = 'mt' AND m.gateway_id = ? ORDER BY m.id DESC LIMIT 1""",
            (gateway_id,),
        )
        return None if row is None else thread_from_row(row)

    async def open_for(
        self, handset: str, address: str, *, bot: str | None = None, since: str | None = None
    ) -> Thread | None:
        """The handset's most recently active open thread on `address` (of `bot` only,
        when given; active at `since` or later, when given). Activity is the latest
        message in it, which orders even handlers that ran in one clock tick. On
        PostgreSQL, those asked for while others are read are read together (Batcher):
        each MO handled needs one, and a round trip each would hold it up."""
        wanted = (handset, address, bot, since)
        if self.db.shared:
            return await self._finding.add(wanted)
        (thread,) = await self._open_for_all([wanted])
        return thread

    async def _open_for_all(self, wanted: Sequence[Wanted]) -> list[Thread | None]:
        """`open_for` of each of `wanted`, in one statement."""
        rows = await self.db.fetchall(
            f"""WITH wanted (i, handset, address, bot, since) AS (
                    VALUES {", ".join(["(CAST(? AS INTEGER), ?, ?, ?, ?)"] * len(wanted))}),
                ranked AS (
                    SELECT w.i, t.*, row_number() OVER (PARTITION BY w.i ORDER BY
                        coalesce((SELECT max(m.id) FROM messages m WHERE m.thread_id = t.id), 0)
                            DESC, t.id DESC) AS latest
                    FROM wanted w JOIN threads t
                      ON t.handset = w.handset AND t.address = w.address AND t.status = 'open'
                     AND (CAST(w.bot AS TEXT) IS NULL OR t.bot = w.bot)
                     AND (CAST(w.since AS TEXT) IS NULL OR t.updated_at >= w.since))
                SELECT * FROM ranked WHERE latest = 1""",
            [value for i, one in enumerate(wanted) for value in (i, *one)],
        )
        found: list[Thread | None] = [None] * len(wanted)
        for row in rows:
            found[row["i"]] = thread_from_row(row)
        return found

    async def open_ids(self, handset: str, address: str | None = None) -> list[int]:
        """The handset's open threads (on `address`, or on any address)."""
        rows = await self.db.fetchall(
            """SELECT id FROM threads WHERE handset = ? AND status = 'open'
                 AND (CAST(? AS TEXT) IS NULL OR address = ?)""",
            (handset, address, address),
        )
        return [row[0] for row in rows]

    async def latest_for(
        self, handset: str, *, bot: str | None = None, besides: str | None = None
    ) -> Thread | None:
        """The handset's most recent thread, open or closed (of `bot` only, when given;
        not of `besides`, when given)."""
        row = await self.db.fetchone(
            """SELECT * FROM threads WHERE handset = ?
                 AND (CAST(? AS TEXT) IS NULL OR bot = ?)
                 AND (CAST(? AS TEXT) IS NULL OR bot != ?)
               ORDER BY id DESC LIMIT 1""",
            (handset, bot, bot, besides, besides),
        )
        return None if row is None else thread_from_row(row)


async def save(tx: Tx, thread: Thread, now: str, *, only_if_open: bool = False) -> Thread | None:
    """Insert a new thread or update an existing one; return it with its id and, for one
    stored before, the operator who has it now (None when `only_if_open` and the stored
    thread has been closed meanwhile: nothing is written).

    `thread` itself is left as it was: a write may be run again (after a conflict on
    PostgreSQL), and must then insert the thread again.
    """
    (saved,) = await save_all(tx, [(thread, only_if_open)], now)
    return saved


async def save_all(tx: Tx, saving: Sequence[tuple[Thread, bool]], now: str) -> list[Thread | None]:
    """`save` each of `saving` (a thread, and its `only_if_open`), in order: the new ones
    in one statement run for each (`tx.fetchmany`), then the others in another."""
    saved: list[Thread | None] = [None] * len(saving)
    new = [i for i, (thread, _) in enumerate(saving) if thread.id is None]
    if new:
        rows = await tx.fetchmany(
            """INSERT INTO threads (bot, handset, address, state, data, status,
                   created_at, updated_at, closed_at, end_reason)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id""",
            [_inserted(saving[i][0], now) for i in new],
        )
        # One row for each new thread, in order; as stored: no operator has it yet.
        for i, row in zip(new, rows, strict=True):
            saved[i] = dataclasses.replace(saving[i][0], id=row[0], paused_by=None)
    stored = [i for i, (thread, _) in enumerate(saving) if thread.id is not None]
    if stored:
        rows = await tx.fetchmany(
            """UPDATE threads SET state = ?, data = ?, status = ?, updated_at = ?,
                   closed_at = coalesce(closed_at, ?), end_reason = coalesce(end_reason, ?),
                   paused_by = CASE WHEN CAST(? AS TEXT) IS NULL THEN paused_by END,
                   paused_at = CASE WHEN CAST(? AS TEXT) IS NULL THEN paused_at END
               WHERE id = ? AND (status = 'open' OR ? = 0)
               RETURNING id, paused_by""",
            [_updated(*saving[i], now) for i in stored],
        )
        # Whoever has it now: an operator may have taken it over while its bot was busy.
        paused_by = {row[0]: row[1] for row in rows}
        for i in stored:
            thread = saving[i][0]
            if thread.id in paused_by:
                saved[i] = dataclasses.replace(thread, paused_by=paused_by[thread.id])
    return saved


def _inserted(thread: Thread, now: str) -> tuple[object, ...]:
    """The values of `save_all`'s INSERT for a new thread."""
    return (
        thread.bot,
        thread.handset,
        thread.address,
        thread.state,
        _data(thread),
        thread.status,
        now,
        now,
        _closed_at(thread, now),
        thread.end_reason,
    )


def _updated(thread: Thread, only_if_open: bool, now: str) -> tuple[object, ...]:
    """The values of `save_all`'s UPDATE for a thread stored before."""
    closed_at = _closed_at(thread, now)
    return (
        thread.state,
        _data(thread),
        thread.status,
        now,
        closed_at,
        thread.end_reason if closed_at else None,
        closed_at,
        closed_at,
        thread.id,
        int(only_if_open),
    )


def _data(thread: Thread) -> str:
    return json.dumps(thread.data, separators=(",", ":"))


def _closed_at(thread: Thread, now: str) -> str | None:
    return now if thread.status == "closed" else None


async def paused(tx: Tx, thread_id: int) -> bool:
    """True if an operator has the thread (read inside the transaction that commits a
    bot's replies, so that a takeover during the handler's run silences them)."""
    return bool(
        await tx.fetchval("SELECT paused_by IS NOT NULL FROM threads WHERE id = ?", (thread_id,))
    )


async def close(tx: Tx, thread_id: int, reason: str, now: str) -> str | None:
    """Close an open thread for `reason` (STOP ends it: opted_out; or an operator); an
    operator who had taken it over no longer has it. Returns its bot, or None if it was
    not open."""
    return await tx.fetchval(
        """UPDATE threads SET status = 'closed', state = NULL, updated_at = ?, closed_at = ?,
               end_reason = ?, paused_by = NULL, paused_at = NULL
           WHERE id = ? AND status = 'open' RETURNING bot""",
        (now, now, reason, thread_id),
    )


def thread_from_row(row: Row) -> Thread:
    return Thread(
        id=row["id"],
        bot=row["bot"],
        handset=row["handset"],
        address=row["address"],
        state=row["state"],
        data=json.loads(row["data"]),
        status=row["status"],
        paused_by=row["paused_by"],
        end_reason=row["end_reason"],
    )
