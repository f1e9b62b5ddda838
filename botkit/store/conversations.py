"""Conversations for the dashboard: threads by latest activity, and one thread's messages
with their delivery history. Pages are keyset-paginated (no OFFSET): a page costs the
same at the millionth row as at the first."""

from __future__ import annotations

from dataclasses import dataclass

from ..db import Row
from .base import Part

PAGE = 50


@dataclass(frozen=True)
class Cursor:
    """Where the next page starts: after the thread with this activity time and id."""

    updated_at: str
    thread_id: int

    def __str__(self) -> str:
        return f"{self.updated_at}~{self.thread_id}"

    @classmethod
    def parse(cls, text: str) -> Cursor | None:
        """From `str(cursor)`; None for text that is not one (a page then starts afresh)."""
        stamp, _, thread_id = text.rpartition("~")
        return cls(stamp, int(thread_id)) if stamp and thread_id.isdigit() else None


class Conversations(Part):
    """Reads for the dashboard."""

    async def page(
        self, after: Cursor | None = None, *, bot: str | None = None, limit: int = PAGE
    ) -> tuple[list[Row], Cursor | None]:
        """Threads, most recently active first, with their last message and the delivery
        status of their last reply; and the cursor of the next page (None: last page)."""
        where, params = [], []
        if after is not None:
            where.append("(t.updated_at, t.id) < (?, ?)")
            params += [after.updated_at, after.thread_id]
        if bot:
            where.append("t.bot = ?")
            params.append(bot)
        rows = await self.db.fetchall(
            f"""SELECT t.*,
                   (SELECT content FROM messages m WHERE m.thread_id = t.id
                    ORDER BY m.id DESC LIMIT 1) AS last_text,
                   (SELECT created_at FROM messages m WHERE m.thread_id = t.id
                    ORDER BY m.id DESC LIMIT 1) AS last_at,
                   (SELECT coalesce(delivery, status) FROM messages m
                    WHERE m.thread_id = t.id AND m.direction = 'mt'
                    ORDER BY m.id DESC LIMIT 1) AS last_delivery
                FROM threads t
                {"WHERE " + " AND ".join(where) if where else ""}
                ORDER BY t.updated_at DESC, t.id DESC LIMIT ?""",
            [*params, limit + 1],
        )
        more = len(rows) > limit
        rows = rows[:limit]
        cursor = Cursor(rows[-1]["updated_at"], rows[-1]["id"]) if more and rows else None
        return rows, cursor

    async def transcript(
        self, thread_id: int
    ) -> tuple[Row | None, list[Row], dict[int, list[Row]]]:
        """A thread, its messages in order, and each MT's delivery history."""
        thread = await self.db.fetchone("SELECT * FROM threads WHERE id = ?", (thread_id,))
        if thread is None:
            return None, [], {}
        messages = await self.db.fetchall(
            "SELECT * FROM messages WHERE thread_id = ? ORDER BY id", (thread_id,)
        )
        history: dict[int, list[Row]] = {}
        for row in await self.db.fetchall(
            """SELECT d.* FROM deliveries d JOIN messages m ON m.id = d.message_id
               WHERE m.thread_id = ? ORDER BY d.id""",
            (thread_id,),
        ):
            history.setdefault(row["message_id"], []).append(row)
        return thread, messages, history
