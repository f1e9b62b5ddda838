"""Transcripts: every message with its thread, for exports, read as a stream."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import datetime

from ..clock import stamp
from ..db import Row
from .base import Part

# The columns of a transcript row, in order.
COLUMNS = (
    "thread_id",
    "message_id",
    "bot",
    "direction",
    "handset",
    "address",
    "content",
    "encoding",
    "template",
    "status",
    "delivery",
    "gateway_id",
    "created_at",
    "flags",
)


class Transcripts(Part):
    """Reads of whole conversations."""

    def rows(
        self, *, handset: str | None = None, since: datetime | None = None
    ) -> AsyncGenerator[Row, None]:
        """Every MO and MT in thread order (threads in the order they began, each thread's
        messages in the order they were stored; messages of no thread, such as an MO no
        bot answered, first), optionally of one handset and from a moment on."""
        where, params = [], []
        if handset is not None:
            where.append("m.handset = ?")
            params.append(handset)
        if since is not None:
            where.append("m.created_at >= ?")
            params.append(stamp(since))
        return self.db.stream(
            f"""SELECT m.thread_id, m.id AS message_id, t.bot, m.direction, m.handset,
                       m.address, m.content, m.encoding, m.template, m.status, m.delivery,
                       m.gateway_id, m.created_at, m.flags
                FROM messages m LEFT JOIN threads t ON t.id = m.thread_id
                {"WHERE " + " AND ".join(where) if where else ""}
                ORDER BY m.thread_id NULLS FIRST, m.id""",
            params,
        )

    async def latest_id(self) -> int | None:
        """The id of the message stored last (None: none yet); it raises for a database
        without botkit's tables."""
        return await self.db.fetchval("SELECT max(id) FROM messages")
