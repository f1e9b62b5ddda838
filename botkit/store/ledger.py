"""Who may not be texted, and the ledger line of every consent change: read and written
inside the transactions of consent.py, lists.py, the outbox and broadcasts."""

from __future__ import annotations

from ..addresses import EVERYWHERE, canonical_address
from ..clock import stamp
from ..db import Tx
from ..messages import ConsentChange
from .base import marks


async def is_suppressed(tx: Tx, handset: str, addresses: tuple[str | None, ...]) -> bool:
    """True if `handset` opted out of any of `addresses`, or of all of them (STOPALL)
    and not back in to the first of them since. One statement: every MT asks, in the
    transaction that queues it (on PostgreSQL, a round trip each)."""
    condition, params = suppressed(handset, addresses)
    return bool(await tx.fetchval(f"SELECT {condition}", params))


def suppressed(handset: str, addresses: tuple[str | None, ...]) -> tuple[str, list[object]]:
    """`is_suppressed` as an SQL condition and its parameters, for a statement that
    decides by it (the INSERT of an MT: stored refused, or queued)."""
    wanted = [canonical_address(a) for a in addresses if a]
    out_of_all = "EXISTS (SELECT 1 FROM suppressions WHERE handset = ? AND address = ?)"
    if not wanted:
        return out_of_all, [handset, EVERYWHERE]
    return (
        f"""(EXISTS (SELECT 1 FROM suppressions WHERE handset = ? AND address IN ({marks(wanted)}))
             OR ({out_of_all}
                 AND NOT EXISTS (SELECT 1 FROM suppression_exceptions
                                 WHERE handset = ? AND address = ?)))""",
        [handset, *wanted, handset, EVERYWHERE, handset, wanted[0]],
    )


async def write_ledger(tx: Tx, change: ConsentChange, now: str) -> None:
    """Append one line to the ledger, dated when the consent was given."""
    await tx.execute(
        """INSERT INTO consent (handset, address, action, keyword, source, message_id,
               list, created_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
        (
            change.handset,
            change.address,
            change.action,
            change.keyword,
            change.source,
            change.message_id,
            change.list,
            now if change.at is None else stamp(change.at),
        ),
    )
