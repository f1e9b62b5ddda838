"""Who may not be texted, and the ledger line of every consent change: read and written
inside the transactions of consent.py, lists.py, the outbox and broadcasts."""

from __future__ import annotations

from ..addresses import EVERYWHERE, canonical_address
from ..clock import stamp
from ..db import Tx
from ..messages import ConsentChange


async def is_suppressed(tx: Tx, handset: str, addresses: tuple[str | None, ...]) -> bool:
    """True if `handset` opted out of any of `addresses`, or of all of them (STOPALL)
    and not back in to the first of them since."""
    wanted = [canonical_address(a) for a in addresses if a]
    if wanted:
        marks = ",".join("?" * len(wanted))
        found = await tx.fetchval(
            f"SELECT 1 FROM suppressions WHERE handset = ? AND address IN ({marks}) LIMIT 1",
            (handset, *wanted),
        )
        if found is not None:
            return True
    everywhere = await tx.fetchval(
        "SELECT 1 FROM suppressions WHERE handset = ? AND address = ?", (handset, EVERYWHERE)
    )
    if everywhere is None:
        return False
    if not wanted:
        return True
    back_in = await tx.fetchval(
        "SELECT 1 FROM suppression_exceptions WHERE handset = ? AND address = ?",
        (handset, wanted[0]),
    )
    return back_in is None


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
