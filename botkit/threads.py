"""Which thread an MO belongs to, and the references that let replies and receipts find it.

Each MT carries a reference `t<thread id>.m<message id>`. The gateway echoes it in
DLRs and, with `reply_to`, in the handset's answer, so a reply finds its thread even
when we never learnt the MT's gateway id.
"""

from __future__ import annotations

import re

REFERENCE = re.compile(r"t(\d{1,20})\.m(\d{1,20})")


def make_reference(thread_id: int, message_id: int) -> str:
    """The reference for MT `message_id` of thread `thread_id` (well within 50 characters)."""
    return f"t{thread_id}.m{message_id}"


def parse_reference(reference: str | None) -> tuple[int, int] | None:
    """(thread id, message id) from one of our references, or None for any other text."""
    if not reference:
        return None
    match = REFERENCE.fullmatch(reference)
    if match is None:
        return None
    return int(match[1]), int(match[2])
