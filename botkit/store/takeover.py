"""Human takeover: an operator pauses a thread's bot, replies in its place, hands it back.

While a thread is paused its MOs are stored in it but no bot answers them (STOP, START
and HELP still are), and its timers wait. An operator's reply goes through the outbox
like a bot's, so consent and the send rate hold, and records who wrote it.
"""

from __future__ import annotations

from ..addresses import OurNumbers
from ..db import Tx
from ..messages import Reply
from ..sms import measure
from . import outbox, schedule, threads
from .base import Part
from .threads import thread_from_row
from .webhooks import thread_ended


class Takeover(Part):
    """Pausing, resuming and replying to a thread from the dashboard."""

    async def pause(self, thread_id: int, operator: str) -> bool:
        """Take an open thread over from its bot; False if there is no such open thread."""
        changed = await self.db.write(
            lambda tx: tx.execute(
                """UPDATE threads SET paused_by = ?, paused_at = ?, updated_at = ?
                   WHERE id = ? AND status = 'open'""",
                (operator, self.now(), self.now(), thread_id),
            )
        )
        return changed > 0

    async def resume(self, thread_id: int) -> bool:
        """Hand a thread back to its bot (timers that came due meanwhile fire now)."""
        changed = await self.db.write(
            lambda tx: tx.execute(
                """UPDATE threads SET paused_by = NULL, paused_at = NULL, updated_at = ?
                   WHERE id = ? AND paused_by IS NOT NULL""",
                (self.now(), thread_id),
            )
        )
        return changed > 0

    async def close(self, thread_id: int, on_end: frozenset[str] = frozenset()) -> bool:
        """End an open thread for good (its timers are cancelled; its bot's on_end hook
        runs, with reason "operator", if the bot is in `on_end`); False if not open."""

        async def write(tx: Tx) -> bool:
            now = self.now()
            bot = await threads.close(tx, thread_id, "operator", now)
            if bot is None:
                return False
            await thread_ended(tx, thread_id, "operator", now)
            await schedule.cancel(tx, thread_id, None, now)
            if bot in on_end:
                await schedule.end_hook(tx, thread_id, "operator", now)
            return True

        return await self.db.write(write)

    async def reply(
        self,
        thread_id: int,
        text: str,
        operator: str,
        numbers: OurNumbers,
    ) -> int | None:
        """Queue an operator's MT in a thread, from the thread's number (stored `refused`
        if the handset opted out of it); its id, or None if there is no such thread."""

        async def write(tx: Tx) -> int | None:
            row = await tx.fetchone("SELECT * FROM threads WHERE id = ?", (thread_id,))
            if row is None:
                return None
            size = measure(text)
            reply = Reply(text, None, size.name, size.segments)
            now = self.now()
            await tx.execute("UPDATE threads SET updated_at = ? WHERE id = ?", (now, thread_id))
            return await outbox.enqueue(
                tx, thread_from_row(row), reply, numbers, now, sent_by=operator
            )

        return await self.db.write(write)
