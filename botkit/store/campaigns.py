"""Campaign events as timers of no thread: scheduled, moved and cancelled with the
contact field they follow, in the transaction that changes it.

A campaign event is a pending timer (thread_id NULL) named `campaign:NAME:INDEX`, whose
data names the bot, our number and the field's value it was scheduled from (the
anchor). The dispatcher claims it like any timer (once, in the handset's turn, after a
restart too) and fires it in a new thread. Replanning a contact's campaign cancels its
pending events and schedules those still to come, and those due but not fired for the
same anchor (the app was down); an event that fired for the same anchor is not
scheduled again, so setting a field back and forth fires nothing twice.
"""

from __future__ import annotations

import json
from datetime import date
from typing import TYPE_CHECKING

from ..addresses import EVERYWHERE
from ..clock import stamp
from ..db import Row, Tx
from ..fields import dump
from . import meta
from .base import ESCAPE, Part, like_escaped
from .ledger import is_suppressed

if TYPE_CHECKING:
    from ..campaign import Campaign
    from ..contacts import Contact

PENDING = f"""handset = ? AND thread_id IS NULL AND state = 'pending'
    AND name LIKE ? ESCAPE '{ESCAPE}'"""


def _like(campaign: str) -> str:
    """The LIKE pattern of a campaign's timers ('_' is a wildcard there: escaped)."""
    return f"campaign:{like_escaped(campaign)}:%"


async def replan(
    tx: Tx, contact: Contact, campaign: Campaign, now: str, address: str | None = None
) -> int:
    """Cancel the contact's pending events of `campaign` and schedule those to come from
    its field's value (none if it is cleared, or the contact opted out of the number);
    returns how many are pending now. `address` is the campaign's number, resolved."""
    await tx.lock(f"handset {contact.number}")  # one plan at a time, across processes
    cancelled = await tx.fetchall(
        f"""UPDATE timers SET state = 'cancelled', error = ?, fired_at = ?,
                claimed_until = NULL, claimed_by = NULL WHERE {PENDING}
            RETURNING name, data, due_at""",
        ("replanned", now, contact.number, _like(campaign.name)),
    )
    # Events due and not fired yet (the app was down, or busy): due still, if their
    # date is the same, whatever else changed (the campaign, at a restart).
    overdue = {(row[0], row[1]) for row in cancelled if row[2] <= now}
    anchor = contact.fields.get(campaign.field)
    if not isinstance(anchor, date):  # cleared, or of another kind (declared anew since)
        return 0
    address = address or campaign.address
    if address is None or await is_suppressed(tx, contact.number, (address,)):
        return 0
    data = json.dumps(
        {"bot": campaign.bot, "address": address, "anchor": dump(anchor)}, sort_keys=True
    )
    scheduled = 0
    for index, event in enumerate(campaign.events):
        try:
            due_at = stamp(campaign.due(event, anchor, contact.zone))
        except OverflowError:  # after 9999-12-31 (a date some systems write for never)
            continue
        name = campaign.timer(index)
        if due_at <= now and (name, data) not in overdue:
            continue  # its time has passed: it never fires
        fired = await tx.fetchval(
            """SELECT 1 FROM timers WHERE handset = ? AND name = ? AND thread_id IS NULL
               AND state = 'fired' AND data = ?""",
            (contact.number, name, data),
        )
        if fired:
            continue
        await tx.execute(
            """INSERT INTO timers (thread_id, handset, name, data, due_at, created_at)
               VALUES (NULL, ?, ?, ?, ?, ?)""",
            (contact.number, name, data, due_at, now),
        )
        scheduled += 1
    return scheduled


async def opted_out(tx: Tx, handset: str, address: str, now: str) -> int:
    """Cancel the handset's pending campaign events from `address` (EVERYWHERE: from
    every number), as it opts out; returns how many."""
    rows = await tx.fetchall(
        """SELECT id, data FROM timers WHERE handset = ? AND thread_id IS NULL
           AND state = 'pending' AND name LIKE 'campaign:%'""",
        (handset,),
    )
    ids = [
        row[0]
        for row in rows
        if address == EVERYWHERE or json.loads(row[1]).get("address") == address
    ]
    for timer_id in ids:
        await tx.execute(
            """UPDATE timers SET state = 'cancelled', error = 'opted out', fired_at = ?,
                   claimed_until = NULL, claimed_by = NULL
               WHERE id = ? AND state = 'pending'""",
            (now, timer_id),
        )
    return len(ids)


async def stale(tx: Tx, campaign: Campaign, signature: str) -> bool:
    """True if `campaign` was planned under another signature (or never)."""
    return await meta.value(tx, _key(campaign)) != signature


async def progress(tx: Tx, campaign: Campaign, signature: str) -> str:
    """The last contact (handset) that planning `campaign` under `signature` got to,
    before a stop cut it short; "" to start from the first."""
    found = await meta.value(tx, _key(campaign) + " progress")
    mark, _, after = (found or "").partition(" ")
    return after if mark == signature else ""


async def progressed(tx: Tx, campaign: Campaign, signature: str, after: str) -> None:
    """Record, with a batch of contacts planned, the last of them: a restart goes on
    after it."""
    await meta.remember(tx, _key(campaign) + " progress", f"{signature} {after}")


async def planned(tx: Tx, campaign: Campaign, signature: str, now: str) -> None:
    """Record that every contact's events of `campaign` follow `signature`, and cancel
    those of contacts without its field (a campaign that now follows another one)."""
    await tx.execute(
        f"""UPDATE timers SET state = 'cancelled', error = 'replanned', fired_at = ?,
                claimed_until = NULL, claimed_by = NULL
            WHERE thread_id IS NULL AND state = 'pending' AND name LIKE ? ESCAPE '{ESCAPE}'
              AND handset NOT IN (SELECT handset FROM contact_values WHERE field = ?)""",
        (now, _like(campaign.name), campaign.field),
    )
    await meta.remember(tx, _key(campaign), signature)
    await meta.remember(tx, _key(campaign) + " progress", None)


def _key(campaign: Campaign) -> str:
    return f"campaign {campaign.name}"


class CampaignEvents(Part):
    """Campaign events as the dashboard shows them: counts, the next, the latest fired."""

    async def counts(self) -> dict[str, dict[str, int]]:
        """How many events of each timer (campaign:NAME:INDEX) are in each state."""
        rows = await self.db.fetchall(
            """SELECT name, state, count(*) FROM timers
               WHERE thread_id IS NULL AND name LIKE 'campaign:%' GROUP BY name, state"""
        )
        counts: dict[str, dict[str, int]] = {}
        for name, state, count in rows:
            counts.setdefault(name, {})[state] = count
        return counts

    async def upcoming(self, campaign: str, limit: int) -> list[Row]:
        """A campaign's next pending events, soonest first, with the contact's name."""
        return await self._events(campaign, "pending", "t.due_at, t.id", limit)

    async def fired(self, campaign: str, limit: int) -> list[Row]:
        """A campaign's latest events that fired (or were cancelled), latest first."""
        return await self._events(campaign, "done", "t.fired_at DESC, t.id DESC", limit)

    async def _events(self, campaign: str, which: str, order: str, limit: int) -> list[Row]:
        state = "t.state = 'pending'" if which == "pending" else "t.state <> 'pending'"
        return await self.db.fetchall(
            f"""SELECT t.handset, t.name, t.state, t.due_at, t.fired_at, t.error,
                       c.name AS contact
                FROM timers t LEFT JOIN contacts c ON c.handset = t.handset
                WHERE t.thread_id IS NULL AND {state} AND t.name LIKE ? ESCAPE '{ESCAPE}'
                ORDER BY {order} LIMIT ?""",
            (_like(campaign), limit),
        )
