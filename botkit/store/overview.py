"""The delivery overview for the dashboard: messages per day, how MTs fared, and the MTs
that were not delivered, over the last few days.

The counts are one pass over the period's messages, found by the index on
`messages (created_at, direction)` (migration 11); days are those of the dashboard's
zone (BOTKIT_TIMEZONE). The undelivered MTs are
keyset-paginated on the message id (no OFFSET); the partial index
`messages_undelivered` (same condition as UNDELIVERED, so that SQLite can use it) makes
a page cost its own rows, not a walk through every delivered MT.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, tzinfo

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

    def first_day(self, days: int, zone: tzinfo = UTC) -> date:
        """The first day (in `zone`) of a period of `days` days that ends today."""
        return self.clock().astimezone(zone).date() - timedelta(days=days - 1)

    def since(self, days: int, zone: tzinfo = UTC) -> str:
        """The stamp of the first moment of a period of `days` days that ends today."""
        return stamp(datetime.combine(self.first_day(days, zone), time(), zone))

    async def per_day(self, days: int, zone: tzinfo = UTC) -> list[tuple[str, int, int]]:
        """(day, MOs, MTs) for each of the last `days` days (in `zone`), oldest first,
        with the days without messages as zeros. Each day is a range of the
        messages_created index, from its midnight to the next (which is not always a
        whole number of hours from UTC's, nor 24 hours later)."""
        first = self.first_day(days, zone)
        every = [first + timedelta(days=n) for n in range(days + 1)]  # and the next day
        starts = [stamp(datetime.combine(day, time(), zone)) for day in every]
        spans = [(every[n].isoformat(), starts[n], starts[n + 1]) for n in range(days)]
        rows = await self.db.fetchall(
            f"""WITH days (day, start_at, stop_at) AS (VALUES {", ".join(["(?, ?, ?)"] * days)})
                SELECT days.day, m.direction, count(*) FROM days
                JOIN messages m ON m.created_at >= days.start_at AND m.created_at < days.stop_at
                GROUP BY days.day, m.direction""",
            [value for span in spans for value in span],
        )
        counts = {(day, direction): count for day, direction, count in rows}
        return [
            (day, counts.get((day, "mo"), 0), counts.get((day, "mt"), 0)) for day, _, _ in spans
        ]

    async def outcomes(
        self, days: int, zone: tzinfo = UTC
    ) -> tuple[dict[str, int], dict[str, int]]:
        """How many MTs of the last `days` days are in each send status, and how many had
        each delivery status as their latest receipt (every known status, zeros too,
        then any other a carrier reported)."""
        rows = await self.db.fetchall(
            """SELECT status, delivery, count(*) FROM messages
               WHERE created_at >= ? AND direction = 'mt' GROUP BY status, delivery""",
            (self.since(days, zone),),
        )
        sent = dict.fromkeys(SEND_STATUSES, 0)
        delivered = dict.fromkeys(DELIVERY_STATUSES, 0)
        for status, delivery, count in rows:
            sent[status] = sent.get(status, 0) + count
            if delivery is not None:
                delivered[delivery] = delivered.get(delivery, 0) + count
        return sent, delivered

    async def undelivered(
        self, days: int, before: int | None = None, *, limit: int = PAGE, zone: tzinfo = UTC
    ) -> tuple[list[Row], int | None]:
        """MTs of the last `days` days that were not delivered, newest first (from before
        message id `before`), and the id the next page starts before (None: last page)."""
        rows = await self.db.fetchall(
            f"""SELECT id, thread_id, handset, created_at, status, delivery, error
                FROM messages
                WHERE direction = 'mt' AND {UNDELIVERED} AND created_at >= ? AND id < ?
                ORDER BY id DESC LIMIT ?""",
            (self.since(days, zone), before if before is not None else 2**63 - 1, limit + 1),
        )
        more = len(rows) > limit
        rows = rows[:limit]
        return rows, rows[-1]["id"] if more and rows else None
