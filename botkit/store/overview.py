"""The delivery overview for the dashboard: messages per day, how MTs fared, and the MTs
that were not delivered, over the last few days.

The counts are one pass over the period's messages, found by the index on
`messages (created_at, direction)` (migration 11). The undelivered MTs are
keyset-paginated on the message id (no OFFSET); the partial index
`messages_undelivered` (same condition as UNDELIVERED, so that SQLite can use it) makes
a page cost its own rows, not a walk through every delivered MT.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from ..clock import stamp
from ..db import Row
from ..messages import DELIVERY_STATUSES
from .base import Part

PAGE = 50
# The send outcomes of an MT (messages.status), in the order an MT moves through them.
SEND_STATUSES = ("queued", "sending", "accepted", "failed", "refused", "uncertain")
# An MT that was not delivered: the gateway refused it for good, or a receipt said so.
UNDELIVERED = "(status = 'failed' OR delivery IN ('failed', 'dead', 'rejected', 'expired'))"


class Overview(Part):
    """Reads of message counts and delivery outcomes over a period."""

    def first_day(self, days: int) -> date:
        """The first day (UTC) of a period of `days` days that ends today."""
        return self.clock().astimezone(UTC).date() - timedelta(days=days - 1)

    def since(self, days: int) -> str:
        """The stamp of the first moment of a period of `days` days that ends today."""
        return stamp(datetime.combine(self.first_day(days), time(), UTC))

    async def per_day(self, days: int) -> list[tuple[str, int, int]]:
        """(day, MOs, MTs) for each of the last `days` days (UTC), oldest first, with the
        days without messages as zeros."""
        rows = await self.db.fetchall(
            """SELECT substr(created_at, 1, 10) AS day, direction, count(*) FROM messages
               WHERE created_at >= ? GROUP BY day, direction""",
            (self.since(days),),
        )
        counts = {(day, direction): count for day, direction, count in rows}
        first = self.first_day(days)
        every = [(first + timedelta(days=n)).isoformat() for n in range(days)]
        return [(day, counts.get((day, "mo"), 0), counts.get((day, "mt"), 0)) for day in every]

    async def outcomes(self, days: int) -> tuple[dict[str, int], dict[str, int]]:
        """How many MTs of the last `days` days are in each send status, and how many had
        each delivery status as their latest receipt (every known status, zeros too,
        then any other a carrier reported)."""
        rows = await self.db.fetchall(
            """SELECT status, delivery, count(*) FROM messages
               WHERE created_at >= ? AND direction = 'mt' GROUP BY status, delivery""",
            (self.since(days),),
        )
        sent = dict.fromkeys(SEND_STATUSES, 0)
        delivered = dict.fromkeys(DELIVERY_STATUSES, 0)
        for status, delivery, count in rows:
            sent[status] = sent.get(status, 0) + count
            if delivery is not None:
                delivered[delivery] = delivered.get(delivery, 0) + count
        return sent, delivered

    async def undelivered(
        self, days: int, before: int | None = None, *, limit: int = PAGE
    ) -> tuple[list[Row], int | None]:
        """MTs of the last `days` days that were not delivered, newest first (from before
        message id `before`), and the id the next page starts before (None: last page)."""
        rows = await self.db.fetchall(
            f"""SELECT id, thread_id, handset, created_at, status, delivery, error
                FROM messages
                WHERE direction = 'mt' AND {UNDELIVERED} AND created_at >= ? AND id < ?
                ORDER BY id DESC LIMIT ?""",
            (self.since(days), before if before is not None else 2**63 - 1, limit + 1),
        )
        more = len(rows) > limit
        rows = rows[:limit]
        return rows, rows[-1]["id"] if more and rows else None
