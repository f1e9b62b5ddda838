"""Timers written inside a handler's transaction: scheduled, cancelled, and the on_end
hook of a thread that ended (store/timers.py claims and fires them)."""

from __future__ import annotations

import json
from collections.abc import Sequence

from ..clock import stamp
from ..db import Tx
from ..messages import Timer
from .base import marks

# The timer that runs a bot's on_end hook in a thread that ended (`data["reason"]`).
END_HOOK = "botkit:end"


async def schedule(tx: Tx, thread_id: int, handset: str, timer: Timer, now: str) -> int:
    """Store a pending timer of a thread."""
    return await tx.fetchval(
        """INSERT INTO timers (thread_id, handset, name, data, due_at, created_at)
           VALUES (?, ?, ?, ?, ?, ?) RETURNING id""",
        (thread_id, handset, timer.name, json.dumps(timer.data), stamp(timer.due_at), now),
    )


async def end_hook(tx: Tx, thread_id: int, reason: str, now: str) -> int:
    """Queue the on_end hook of a thread that has just ended, due at once."""
    return await tx.fetchval(
        """INSERT INTO timers (thread_id, handset, name, data, due_at, created_at)
           SELECT id, handset, ?, ?, ?, ? FROM threads WHERE id = ? RETURNING id""",
        (END_HOOK, json.dumps({"reason": reason}), now, now, thread_id),
    )


async def cancel(tx: Tx, thread_id: int, names: Sequence[str] | None, now: str) -> None:
    """Cancel a thread's pending timers (those named, or all of them)."""
    if names is None:
        await tx.execute(
            """UPDATE timers SET state = 'cancelled', fired_at = ?, claimed_until = NULL,
                   claimed_by = NULL
               WHERE thread_id = ? AND state = 'pending'""",
            (now, thread_id),
        )
        return
    if names:
        await tx.execute(
            f"""UPDATE timers SET state = 'cancelled', fired_at = ?, claimed_until = NULL,
                   claimed_by = NULL
                WHERE thread_id = ? AND state = 'pending' AND name IN ({marks(names)})""",
            (now, thread_id, *names),
        )
