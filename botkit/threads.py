"""Which thread an MO belongs to, and the references that let replies and receipts find it.

Each MT carries a reference `t<thread id>.m<message id>`. The gateway echoes it in
DLRs and, with `reply_to`, in the handset's answer, so a reply finds its thread even
when we never learnt the MT's gateway id.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from .messages import REFERENCE_TRUNCATED, Message, Thread

if TYPE_CHECKING:
    from .store.threads import Threads

# Ids of at most 18 digits: within SQLite's 64-bit integers whatever the digits.
REFERENCE = re.compile(r"t([0-9]{1,18})\.m([0-9]{1,18})")


def reference_prefix(thread_id: int) -> str:
    """What the reference of an MT of thread `thread_id` starts with; the MT's id follows
    (the INSERT that numbers it writes it, store/outbox.py): well within 50 characters."""
    return f"t{thread_id}.m"


def parse_reference(reference: str | None) -> tuple[int, int] | None:
    """(thread id, message id) from one of our references, or None for any other text."""
    if not reference:
        return None
    match = REFERENCE.fullmatch(reference)
    if match is None:
        return None
    return int(match[1]), int(match[2])


def echoed_reference(reference: str | None, flags: tuple[str, ...]) -> tuple[int, int] | None:
    """`parse_reference` of a reference the gateway echoed in an MO or DLR: None when it
    came longer than 50 characters and was cut (flagged), whatever it starts with."""
    return None if REFERENCE_TRUNCATED in flags else parse_reference(reference)


async def find_thread(threads: Threads, message: Message, since: str) -> Thread | None:
    """The open thread an MO belongs to: the thread of the MT it answers (by `reply_to`,
    or by the `reference` echoed with it), else the handset's most recently active open
    thread on the address it texted, if it was active at `since` or later, else None."""
    candidates: list[Thread | None] = []
    if message.reply_to is not None:
        candidates.append(await threads.of_mt(message.reply_to))
    parsed = echoed_reference(message.reference, message.flags)
    if parsed is not None:
        candidates.append(await threads.get(parsed[0]))
    for thread in candidates:
        if thread is not None and thread.status == "open" and thread.handset == message.source:
            return thread
    return await threads.open_for(message.source, message.destination, since=since)
