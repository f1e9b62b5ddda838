"""Threads: a conversation between one handset and one of our addresses."""

from __future__ import annotations

import dataclasses
import json

from ..db import Row, Tx
from ..messages import Thread
from .base import Part


class Threads(Part):
    """Reads of threads; writes happen inside the inbox's transactions."""

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
        message in it, which orders even handlers that ran in one clock tick."""
        row = await self.db.fetchone(
            """SELECT * FROM threads t WHERE handset = ? AND address = ? AND status = 'open'
                 AND (CAST(? AS TEXT) IS NULL OR bot = ?)
                 AND (CAST(? AS TEXT) IS NULL OR updated_at >= ?)
               ORDER BY coalesce((SELECT max(m.id) FROM messages m
                                  WHERE m.thread_id = t.id), 0) DESC,
                        id DESC
               LIMIT 1""",
            (handset, address, bot, bot, since, since),
        )
        return None if row is None else thread_from_row(row)

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
    data = json.dumps(thread.data, separators=(",", ":"))
    closed_at = now if thread.status == "closed" else None
    if thread.id is None:
        thread_id = await tx.fetchval(
            """INSERT INTO threads (bot, handset, address, state, data, status,
                   created_at, updated_at, closed_at, end_reason)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id""",
            (
                thread.bot,
                thread.handset,
                thread.address,
                thread.state,
                data,
                thread.status,
                now,
                now,
                closed_at,
                thread.end_reason,
            ),
        )
        return dataclasses.replace(thread, id=thread_id, paused_by=None)  # as stored
    updated = await tx.fetchall(
        """UPDATE threads SET state = ?, data = ?, status = ?, updated_at = ?,
               closed_at = coalesce(closed_at, ?), end_reason = coalesce(end_reason, ?),
               paused_by = CASE WHEN CAST(? AS TEXT) IS NULL THEN paused_by END,
               paused_at = CASE WHEN CAST(? AS TEXT) IS NULL THEN paused_at END
           WHERE id = ? AND (status = 'open' OR ? = 0)
           RETURNING paused_by""",
        (
            thread.state,
            data,
            thread.status,
            now,
            closed_at,
            thread.end_reason if closed_at else None,
            closed_at,
            closed_at,
            thread.id,
            int(only_if_open),
        ),
    )
    if not updated:
        return None
    # Whoever has it now: an operator may have taken it over while its bot was busy.
    return dataclasses.replace(thread, paused_by=updated[0][0])


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
