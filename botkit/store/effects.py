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
from .webhooks import thread_ended

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
    (done,) = await commit_all(tx, [effects], now)
    return done


async def commit_all(
    tx: Tx, all_effects: Sequence[Effects], now: str
) -> list[tuple[int | None, list[int]]]:
    """`commit` the effects of several handlers, each of another handset, in order. Each
    step is taken for all of them before the next (each one's in `commit`'s order), so
    that a step's statements go together: their threads are saved, and their replies
    queued, a statement run for each (`tx.fetchmany`), one round trip on PostgreSQL."""
    handsets = [effects.thread.handset for effects in all_effects if effects.thread is not None]
    if len(set(handsets)) < len(handsets):
        # Step by step, one handset's second handler would end or outrun its first.
        raise ValueError("effects committed together must each be of another handset")
    for effects in all_effects:
        await _end_others(tx, effects, now)
    done: list[tuple[int | None, list[int]]] = [
        (None if effects.thread is None else effects.thread.id, []) for effects in all_effects
    ]
    with_thread = [i for i, effects in enumerate(all_effects) if effects.thread is not None]
    # A handler that found its thread open, where an operator has ended it since, changes
    # nothing of it (no state, timers or replies): it stays ended, and on_end runs once.
    saved = await threads.save_all(tx, [_saving(all_effects[i]) for i in with_thread], now)
    replying: list[int] = []
    queueing: list[tuple[Thread, Sequence[Reply], OurNumbers]] = []
    for i, thread in zip(with_thread, saved, strict=True):
        if thread is None:
            continue
        assert thread.id is not None
        effects = all_effects[i]
        done[i] = (thread.id, [])
        await _write_thread(tx, effects, thread, now)
        # Not while an operator has it (taken over while its bot was busy).
        if effects.replies and thread.paused_by is None:
            if effects.numbers is None:
                raise ValueError("effects with replies need our numbers to send them from")
            replying.append(i)
            queueing.append((thread, effects.replies, effects.numbers))
    for i, mt_ids in zip(replying, await outbox.enqueue_all(tx, queueing, now), strict=True):
        done[i] = (done[i][0], mt_ids)
    return done


async def _end_others(tx: Tx, effects: Effects, now: str) -> None:
    """Consent changes, and the other threads they end."""
    for change in effects.consent:
        await apply_consent(tx, change, now)
    for thread_id in effects.closing:
        bot = await threads.close(tx, thread_id, "opted_out", now)
        if bot is not None:
            await thread_ended(tx, thread_id, "opted_out", now)
        await schedule.cancel(tx, thread_id, None, now)
        if bot in effects.on_end:
            await schedule.end_hook(tx, thread_id, "opted_out", now)


def _saving(effects: Effects) -> tuple[Thread, bool]:
    """The thread to save, and whether only if it is still open."""
    assert effects.thread is not None
    return effects.thread, effects.thread.status == "open" or effects.end_reason is not None


async def _write_thread(tx: Tx, effects: Effects, thread: Thread, now: str) -> None:
    """The saved thread's timers, and the handler's further writes."""
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
    if closed and effects.end_reason:  # after its writes: a survey completed, then this
        await thread_ended(tx, thread.id, effects.end_reason, now)
