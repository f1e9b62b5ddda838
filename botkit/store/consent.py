"""Consent: who has opted out of which of our addresses, and the ledger of every change.

Suppression is checked where MTs enter and leave the outbox, inside the same
transaction, so that no code path (a bot, a broadcast, an operator) can send to a
handset that opted out. The dashboard reads both in keyset pages (no OFFSET), the
ledger by id and a handset's lines by the consent_handset index.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from ..addresses import EVERYWHERE, canonical_address
from ..clock import stamp
from ..db import Row, Tx
from ..errors import ValidationError
from ..events import CONTACT_OPTED_OUT
from ..messages import ConsentChange
from . import campaigns, lists
from .base import Part
from .ledger import is_suppressed, write_ledger
from .webhooks import emit

ACTIONS = ("opt-out", "opt-in")
PAGE = 50
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


@dataclass(frozen=True)
class LedgerFilter:
    """Which ledger lines to read: of any of `handsets`, on any of `addresses` (as
    stored: canonical, or EVERYWHERE), from `source`, of `action`, from `since` on; None
    matches every one."""

    handsets: tuple[str, ...] | None = None
    source: str | None = None
    action: str | None = None
    since: datetime | None = None
    addresses: tuple[str, ...] | None = None

    def where(self) -> tuple[list[str], list[Any]]:
        """The conditions on `consent` (as c) and their parameters."""
        conditions: list[str] = []
        params: list[Any] = []
        for column, values in (("handset", self.handsets), ("address", self.addresses)):
            if values is not None:
                conditions.append(_in(f"c.{column}", values))
                params += values
        for column, value in (("source", self.source), ("action", self.action)):
            if value is not None:
                conditions.append(f"c.{column} = ?")
                params.append(value)
        if self.since is not None:
            conditions.append("c.created_at >= ?")
            params.append(stamp(self.since))
        return conditions, params


EVERY_LINE = LedgerFilter()


@dataclass(frozen=True)
class OptOut:
    """An opt-out in force: `handset` gets nothing from `address` (EVERYWHERE: from any
    of our numbers but the `exceptions` it opted back in to)."""

    handset: str
    address: str
    since: str
    exceptions: tuple[str, ...] = ()


class OptOutCursor(NamedTuple):
    """Where the next page of opt-outs starts: after the one of this time, handset and
    address."""

    since: str
    handset: str
    address: str

    def __str__(self) -> str:
        return "~".join(self)

    @classmethod
    def parse(cls, text: str) -> OptOutCursor | None:
        """From `str(cursor)` (None for no text); ValidationError for text that is not
        one, rather than the first page again."""
        if not text:
            return None
        parts = text.split("~")
        if len(parts) == len(cls._fields) and all(parts):
            return cls(*parts)
        raise ValidationError("optouts_after", "is not the cursor of a page")


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

    def rows(self, match: LedgerFilter = EVERY_LINE) -> AsyncGenerator[Row, None]:
        """The ledger lines `match` picks, oldest first, streamed (for an export)."""
        conditions, params = match.where()
        return self.db.stream(
            f"""SELECT {", ".join(f"c.{column}" for column in COLUMNS)} FROM consent c
                {_where(conditions)} ORDER BY c.id""",
            params,
        )

    async def ledger_page(
        self, match: LedgerFilter = EVERY_LINE, after: int | None = None, limit: int = PAGE
    ) -> tuple[list[Row], int | None]:
        """The ledger lines `match` picks, the latest recorded first, each with the
        `thread_id` of the MO that made it; and the id the next page starts after (None:
        the last page)."""
        conditions, params = match.where()
        if after is not None:
            conditions.append("c.id < ?")
            params.append(after)
        rows = await self.db.fetchall(
            f"""SELECT c.*, m.thread_id FROM consent c
                LEFT JOIN messages m ON m.id = c.message_id
                {_where(conditions)} ORDER BY c.id DESC LIMIT ?""",
            [*params, limit + 1],
        )
        more = len(rows) > limit
        rows = rows[:limit]
        return rows, rows[-1]["id"] if more and rows else None

    async def opt_outs(
        self,
        handsets: tuple[str, ...] | None = None,
        after: OptOutCursor | None = None,
        limit: int = PAGE,
        *,
        addresses: tuple[str, ...] | None = None,
    ) -> tuple[list[OptOut], OptOutCursor | None]:
        """The opt-outs in force (of any of `handsets`, from any of `addresses`), the
        latest first; and the cursor of the next page (None: the last page). An opt-out
        of every number (STOPALL) counts for `addresses` unless the handset opted back in
        to them since."""
        conditions: list[str] = []
        params: list[Any] = []
        for column, values in (("handset", handsets), ("address", addresses)):
            if values is not None:
                conditions.append(_in(column, values))
                params += values
        numbers = tuple(a for a in addresses or () if a != EVERYWHERE)
        if numbers:
            conditions.append(
                f"""NOT (address = '{EVERYWHERE}' AND EXISTS (
                    SELECT 1 FROM suppression_exceptions x
                    WHERE x.handset = suppressions.handset AND {_in("x.address", numbers)}))"""
            )
            params += numbers
        if after is not None:
            conditions.append("(since, handset, address) < (?, ?, ?)")
            params += after
        rows = await self.db.fetchall(
            f"""SELECT handset, address, since FROM suppressions {_where(conditions)}
                ORDER BY since DESC, handset DESC, address DESC LIMIT ?""",
            [*params, limit + 1],
        )
        more = len(rows) > limit
        rows = rows[:limit]
        everywhere = tuple(row["handset"] for row in rows if row["address"] == EVERYWHERE)
        exceptions = await self._exceptions(everywhere)
        shown = []
        for handset, address, since in rows:
            kept = exceptions.get(handset, ()) if address == EVERYWHERE else ()
            shown.append(OptOut(handset, address, since, kept))
        last = shown[-1] if more and shown else None
        return shown, OptOutCursor(last.since, last.handset, last.address) if last else None

    async def _exceptions(self, handsets: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
        """The numbers each of `handsets` opted back in to after opting out of all."""
        if not handsets:
            return {}
        found: dict[str, tuple[str, ...]] = {}
        for handset, address in await self.db.fetchall(
            f"""SELECT handset, address FROM suppression_exceptions
                WHERE {_in("handset", handsets)} ORDER BY handset, address""",
            handsets,
        ):
            found[handset] = (*found.get(handset, ()), address)
        return found


def _where(conditions: list[str]) -> str:
    return f"WHERE {' AND '.join(conditions)}" if conditions else ""


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({','.join('?' * len(values))})"


async def apply(tx: Tx, change: ConsentChange, now: str) -> bool:
    """Suppress or release a handset and write the change to the ledger; False (and no
    ledger line) when nothing changes, as for a second STOP. A change that names a list
    subscribes to it or leaves it; an opt-out also ends the list memberships it covers."""
    change = dataclasses.replace(change, address=canonical_address(change.address))
    if change.list is not None:
        return await lists.apply(tx, change, now) in lists.CHANGES
    if change.action == "opt-out":
        changed = await _opt_out(tx, change.handset, change.address, now)
    else:
        changed = await _opt_in(tx, change.handset, change.address, now)
    if changed:
        await write_ledger(tx, change, now)
    if changed and change.action == "opt-out":
        await emit(tx, CONTACT_OPTED_OUT, _opted_out(change), now)
    if change.action == "opt-out":
        # Even when already suppressed: membership must never outlive an opt-out.
        await lists.leave_all(tx, change, now)
    return bool(changed)


def _opted_out(change: ConsentChange) -> dict[str, object]:
    """The data of a `contact.opted_out` event."""
    return {
        "handset": change.handset,
        "number": change.address,  # EVERYWHERE: every one of ours (STOPALL)
        "keyword": change.keyword,
        "source": change.source,
        "message_id": change.message_id,
    }


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
    await campaigns.opted_out(tx, handset, address, now)
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
