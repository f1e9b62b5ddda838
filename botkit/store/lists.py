"""Lists: named subscription lists and their members, every change in the consent ledger.

A membership is a handset's present status on a list (subscribed or unsubscribed) and
the address it joined through; the ledger keeps each change with its source, keyword,
MO and time, so that an audit sees who joined which list, how, when and from which
message. A handset that opted out of an address cannot join through it, and an opt-out
(STOP) ends every membership on that address (STOPALL: on all of them).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Sequence

from ..addresses import EVERYWHERE
from ..clock import stamp
from ..db import Row, Tx
from ..errors import ValidationError
from ..messages import ConsentChange
from .base import Part
from .ledger import is_suppressed, write_ledger

# What a change of membership did; only the first two change anything.
SUBSCRIBED, UNSUBSCRIBED = "subscribed", "unsubscribed"
ALREADY, NOT_MEMBER, OPTED_OUT = "already", "not-member", "opted-out"
CHANGES = frozenset({SUBSCRIBED, UNSUBSCRIBED})

NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")


def list_name(name: str) -> str:
    """`name` if it can name a list (lower-case letters, digits, '-' and '_'), else
    ValidationError: it appears in commands, state names and the ledger."""
    if not NAME.fullmatch(name):
        raise ValidationError(
            "list", f"{name!r} is not a list name (lower-case letters, digits, '-', '_')"
        )
    return name


class Lists(Part):
    """Subscription lists, their members, and joining or leaving them."""

    async def create(self, name: str, description: str | None = None) -> None:
        """Make sure list `name` exists, with `description` if one is given."""
        list_name(name)

        async def write(tx: Tx) -> None:
            list_id = await _ensure(tx, name, self.now())
            if description is not None:
                await tx.execute(
                    "UPDATE lists SET description = ? WHERE id = ?", (description, list_id)
                )

        await self.db.write(write)

    async def declare(self, names: Iterable[str]) -> None:
        """Make sure every list of `names` exists, in one transaction: the lists the bots
        declare, at start-up. Idempotent, and safe when several processes start at once
        (a list another one made in between is left as it is)."""
        wanted = sorted({list_name(name) for name in names})

        async def write(tx: Tx) -> None:
            now = self.now()
            for name in wanted:
                await _ensure(tx, name, now)

        if wanted:
            await self.db.write(write)

    async def subscribe(
        self,
        name: str,
        handset: str,
        address: str,
        *,
        source: str,
        keyword: str | None = None,
        message_id: int | None = None,
    ) -> str:
        """Subscribe `handset` (joining through our `address`) in one transaction with its
        ledger line; returns SUBSCRIBED, ALREADY or OPTED_OUT."""
        change = ConsentChange(
            handset, address, "opt-in", source, keyword, message_id, list=list_name(name)
        )
        (outcome,) = await self.record([change])
        return outcome

    async def unsubscribe(
        self,
        name: str,
        handset: str,
        *,
        source: str,
        keyword: str | None = None,
        message_id: int | None = None,
    ) -> str:
        """End `handset`'s membership in one transaction with its ledger line; returns
        UNSUBSCRIBED or NOT_MEMBER."""
        change = ConsentChange(
            handset, EVERYWHERE, "opt-out", source, keyword, message_id, list=name
        )
        (outcome,) = await self.record([change])
        return outcome

    async def record(self, changes: Sequence[ConsentChange]) -> list[str]:
        """Apply list changes (each naming its list) in one transaction, as an import does
        a batch at a time; returns what each did."""

        async def write(tx: Tx) -> list[str]:
            now = self.now()
            return [await apply(tx, change, now) for change in changes]

        return await self.db.write(write)

    async def members(self, name: str) -> list[str]:
        """The handsets subscribed to list `name`, in number order (stable from one call
        to the next, for a broadcast that resumes); ValidationError if there is no such
        list."""
        return [row["handset"] for row in await self.subscribers(name)]

    async def subscribers(self, name: str) -> list[Row]:
        """The members of list `name` with the address they joined through, how and since
        when, in number order."""
        list_id = await self._id(name)
        return await self.db.fetchall(
            """SELECT handset, address, source, since FROM list_members
               WHERE list_id = ? AND status = 'subscribed' ORDER BY handset""",
            (list_id,),
        )

    async def ids(self) -> dict[str, int]:
        """Every list's id, by name, in the names' order."""
        rows = await self.db.fetchall("SELECT name, id FROM lists ORDER BY name")
        return {row[0]: row[1] for row in rows}

    async def is_subscribed(self, name: str, handset: str) -> bool:
        """True if `handset` is subscribed to list `name`."""
        found = await self.db.fetchval(
            """SELECT 1 FROM list_members m JOIN lists l ON l.id = m.list_id
               WHERE l.name = ? AND m.handset = ? AND m.status = 'subscribed'""",
            (name, handset),
        )
        return found is not None

    async def summary(self) -> list[Row]:
        """Every list by name: its description, creation time and member counts."""
        return await self.db.fetchall(
            """SELECT l.name, l.description, l.created_at,
                      count(CASE WHEN m.status = 'subscribed' THEN 1 END) AS subscribed,
                      count(CASE WHEN m.status = 'unsubscribed' THEN 1 END) AS unsubscribed
               FROM lists l LEFT JOIN list_members m ON m.list_id = l.id
               GROUP BY l.id ORDER BY l.name"""
        )

    async def _id(self, name: str) -> int:
        list_id = await self.db.fetchval("SELECT id FROM lists WHERE name = ?", (name,))
        if list_id is None:
            raise ValidationError("list", f"there is no list named {name!r}")
        return list_id


async def apply(tx: Tx, change: ConsentChange, now: str) -> str:
    """Subscribe to or leave `change.list` inside the caller's transaction, writing the
    ledger line when something changes; returns what it did."""
    assert change.list is not None
    if change.action == "opt-in":
        return await _join(tx, change, list_name(change.list), now)
    return await _leave(tx, change, now)


async def leave_all(tx: Tx, change: ConsentChange, now: str) -> None:
    """An opt-out of an address (or of all of them) ends the memberships through it, each
    with its own ledger line carrying the opt-out's keyword and MO."""
    sql = """SELECT l.name FROM list_members m JOIN lists l ON l.id = m.list_id
             WHERE m.handset = ? AND m.status = 'subscribed'"""
    params = [change.handset]
    if change.address != EVERYWHERE:
        sql += " AND m.address = ?"
        params.append(change.address)
    for row in await tx.fetchall(f"{sql} ORDER BY l.name", params):
        await _leave(tx, dataclasses.replace(change, list=row["name"]), now)


async def _join(tx: Tx, change: ConsentChange, name: str, now: str) -> str:
    if await is_suppressed(tx, change.handset, (change.address,)):
        return OPTED_OUT
    list_id = await _ensure(tx, name, now)
    joined = await tx.execute(
        """INSERT INTO list_members (list_id, handset, address, status, source, since)
           VALUES (?, ?, ?, 'subscribed', ?, ?)
           ON CONFLICT (list_id, handset) DO UPDATE
               SET address = excluded.address, status = 'subscribed',
                   source = excluded.source, since = excluded.since
               WHERE list_members.status = 'unsubscribed'""",
        (list_id, change.handset, change.address, change.source, _when(change, now)),
    )
    if not joined:
        return ALREADY
    await write_ledger(tx, change, now)
    return SUBSCRIBED


async def _leave(tx: Tx, change: ConsentChange, now: str) -> str:
    """End a membership; its ledger line names the address the handset joined through."""
    row = await tx.fetchone(
        """SELECT m.list_id, m.address FROM list_members m JOIN lists l ON l.id = m.list_id
           WHERE l.name = ? AND m.handset = ? AND m.status = 'subscribed'""",
        (change.list, change.handset),
    )
    if row is None:
        return NOT_MEMBER
    await tx.execute(
        """UPDATE list_members SET status = 'unsubscribed', source = ?, since = ?
           WHERE list_id = ? AND handset = ?""",
        (change.source, _when(change, now), row["list_id"], change.handset),
    )
    await write_ledger(tx, dataclasses.replace(change, address=row["address"]), now)
    return UNSUBSCRIBED


async def _ensure(tx: Tx, name: str, now: str) -> int:
    """The id of list `name`, created if it does not exist yet."""
    await tx.execute(
        "INSERT INTO lists (name, created_at) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
        (name, now),
    )
    return await tx.fetchval("SELECT id FROM lists WHERE name = ?", (name,))


def _when(change: ConsentChange, now: str) -> str:
    return now if change.at is None else stamp(change.at)
