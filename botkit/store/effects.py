"""Effects: what handling an MO or firing a timer changes, committed in one transaction.

Consent changes, threads closed, the thread's state and data, its timers scheduled or
cancelled, writes of parts with tables of their own (a survey's answers), and the
replies queued in the outbox (or refused, for a handset that opted out) all commit
together with the MO marked handled or the timer marked fired. A thread that ends here
gets its bot's on_end hook as a timer due at once, so the hook runs once, after this
commit, in the handset's turn, even after a crash.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from ..addresses import OurNumbers
from ..db import Tx
from ..messages import ConsentChange, Reply, Thread, Timer
from . import outbox, schedule, threads
from .consent import apply as apply_consent

# A further write of a handler, given the transaction, its thread (saved, so with an id)
# and the time.
Write = Callable[[Tx, Thread, str], Awaitable[None]]


@dataclass(frozen=True)
class Effects:
    """The outcome of a handler. `closing` are other threads it ends (STOP: opted out);
    `cancel` names the timers to cancel (None: all); `writes` run after the thread is
    saved; `numbers` decides which number each reply goes from (needed when there are
    replies). `end_reason` is set when the handler ended its
    thread, and `on_end` names the bots whose ended threads run their on_end hook."""

    thread: Thread | None
    replies: Sequence[Reply] = ()
    closing: Sequence[int] = ()
    consent: Sequence[ConsentChange] = ()
    schedule: Sequence[Timer] = ()
    cancel: Sequence[str] | None = ()
    numbers: OurNumbers | None = None
    writes: Sequence[Write] = ()
    end_reason: str | None = None
    on_end: frozenset[str] = frozenset()


async def commit(tx: Tx, effects: Effects, now: str) -> tuple[int | None, list[int]]:
    """Write `effects` inside the caller's transaction; return the id of their thread
    (None: no thread) and the ids of the MTs."""
    for change in effects.consent:
        await apply_consent(tx, change, now)
    for thread_id in effects.closing:
        bot = await threads.close(tx, thread_id, "opted_out", now)
        await schedule.cancel(tx, thread_id, None, now)
        if bot in effects.on_end:
            await schedule.end_hook(tx, thread_id, "opted_out", now)
    if effects.thread is None:
        return None, []
    # A handler that found its thread open, where an operator has ended it since, changes
    # nothing of it (no state, timers or replies): it stays ended, and on_end runs once.
    was_open = effects.thread.status == "open" or effects.end_reason is not None
    thread = await threads.save(tx, effects.thread, now, only_if_open=was_open)
    if thread is None:
        return effects.thread.id, []
    assert thread.id is not None
    closed = thread.status == "closed"
    await schedule.cancel(tx, thread.id, None if closed else effects.cancel, now)
    if closed and effects.end_reason and thread.bot in effects.on_end:
        await schedule.end_hook(tx, thread.id, effects.end_reason, now)
    if not closed:
        for timer in effects.schedule:
            await schedule.schedule(tx, thread.id, thread.handset, timer, now)
    for write in effects.writes:
        await write(tx, thread, now)
    if effects.replies and thread.paused_by is not None:
        return thread.id, []  # an operator took the thread over while its bot was busy
    if not effects.replies:
        return thread.id, []
    if effects.numbers is None:
        raise ValueError("effects with replies need our numbers to send them from")
    return thread.id, [
        await outbox.enqueue(tx, thread, reply, effects.numbers, now) for reply in effects.replies
    ]
