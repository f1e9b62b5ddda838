"""Consent: who has opted out of which of our addresses, and the ledger of every change.

Suppression is checked where MTs enter and leave the outbox, inside the same
transaction, so that no code path (a bot, a broadcast, an operator) can send to a
handset that opted out.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncGenerator
from datetime import datetime

from ..clock import stamp
from ..db import Row, Tx
from ..messages import ConsentChange
from .base import Part

EVERYWHERE = "*"
# Our numbers of at most this many digits are short codes, longer ones phone numbers.
SHORT_CODE_DIGITS = 8
# The columns of a ledger row, in order.
COLUMNS = (
    "id",
    "created_at",
    "handset",
    "address",
    "action",
    "keyword",
    "source",
    "message_id",
    "list",
)


class Consent(Part):
    """Suppressions and the consent ledger."""

    async def suppressed(self, handset: str, address: str) -> bool:
        """True if `handset` must not be sent to from `address`."""
        return await self.db.read(lambda tx: is_suppressed(tx, handset, (address,)))

    async def suppressed_anywhere(self, handset: str) -> bool:
        """True if `handset` opted out of any of our numbers (when which one we send from
        is not known, as with a class-routed message)."""
        found = await self.db.fetchval(
            "SELECT 1 FROM suppressions WHERE handset = ? LIMIT 1", (handset,)
        )
        return found is not None

    async def record(self, change: ConsentChange) -> bool:
        """Apply a change made outside an SMS (web form, import, operator)."""
        return await self.db.write(lambda tx: apply(tx, change, self.now()))

    async def ledger(self, handset: str | None = None) -> list[Row]:
        """Every change of consent, oldest first (of one handset, if given)."""
        if handset is None:
            return await self.db.fetchall("SELECT * FROM consent ORDER BY id")
        return await self.db.fetchall(
            "SELECT * FROM consent WHERE handset = ? ORDER BY id", (handset,)
        )

    def rows(
        self, *, handset: str | None = None, since: datetime | None = None
    ) -> AsyncGenerator[Row, None]:
        """The ledger, oldest first, streamed (for an export), optionally of one handset
        and from a moment on."""
        where, params = [], []
        if handset is not None:
            where.append("handset = ?")
            params.append(handset)
        if since is not None:
            where.append("created_at >= ?")
            params.append(stamp(since))
        return self.db.stream(
            f"""SELECT {", ".join(COLUMNS)} FROM consent
                {"WHERE " + " AND ".join(where) if where else ""} ORDER BY id""",
            params,
        )


def canonical_address(address: str) -> str:
    """One form for each of our numbers, whichever way it reached us: a short code as its
    digits, a long number in E.164 ("61412345678" and "+61412345678" are one number)."""
    if address == EVERYWHERE:
        return address
    digits = "".join(ch for ch in address if ch.isdigit())
    return digits if len(digits) <= SHORT_CODE_DIGITS else f"+{digits}"


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


async def apply(tx: Tx, change: ConsentChange, now: str) -> bool:
    """Suppress or release a handset and write the change to the ledger; False (and no
    ledger line) when nothing changes, as for a second STOP. A change that names a list
    subscribes to it or leaves it; an opt-out also ends the list memberships it covers."""
    from . import lists  # lists writes its ledger lines with this module's write_ledger

    change = dataclasses.replace(change, address=canonical_address(change.address))
    if change.list is not None:
        return await lists.apply(tx, change, now) in lists.CHANGES
    if change.action == "opt-out":
        changed = await _opt_out(tx, change.handset, change.address, now)
    else:
        changed = await _opt_in(tx, change.handset, change.address, now)
    if changed:
        await write_ledger(tx, change, now)
    if change.action == "opt-out":
        # Even when already suppressed: membership must never outlive an opt-out.
        await lists.leave_all(tx, change, now)
    return bool(changed)


async def _opt_out(tx: Tx, handset: str, address: str, now: str) -> bool:
    """Suppress `handset` on `address` (STOPALL: everywhere, forgetting any exception)."""
    changed = await tx.execute(
        """INSERT INTO suppressions (handset, address, since) VALUES (?, ?, ?)
           ON CONFLICT (handset, address) DO NOTHING""",
        (handset, address, now),
    )
    if address == EVERYWHERE:
        changed += await tx.execute(
            "DELETE FROM suppression_exceptions WHERE handset = ?", (handset,)
        )
    else:
        changed += await tx.execute(
            "DELETE FROM suppression_exceptions WHERE handset = ? AND address = ?",
            (handset, address),
        )
    return changed > 0


async def _opt_in(tx: Tx, handset: str, address: str, now: str) -> bool:
    """Release `handset` on `address` only: after STOPALL, the others stay suppressed."""
    if address == EVERYWHERE:
        changed = await tx.execute("DELETE FROM suppressions WHERE handset = ?", (handset,))
        await tx.execute("DELETE FROM suppression_exceptions WHERE handset = ?", (handset,))
        return changed > 0
    changed = await tx.execute(
        "DELETE FROM suppressions WHERE handset = ? AND address = ?", (handset, address)
    )
    everywhere = await tx.fetchval(
        "SELECT 1 FROM suppressions WHERE handset = ? AND address = ?", (handset, EVERYWHERE)
    )
    if everywhere is not None:
        changed += await tx.execute(
            """INSERT INTO suppression_exceptions (handset, address, since) VALUES (?, ?, ?)
               ON CONFLICT (handset, address) DO NOTHING""",
            (handset, address, now),
        )
    return changed > 0


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
