"""Broadcasts: a message, or the start of a conversation, for each recipient, once.

Each recipient is written with its MT (or its conversation's starting timer) in one
transaction, so a broadcast interrupted half way and run again goes on where it
stopped and sends nobody a second copy. A recipient who opted out is recorded as
skipped, with the reason; nothing is queued for them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from ..addresses import OurNumbers
from ..clock import parse_stamp, stamp
from ..db import Row, Tx
from ..errors import ValidationError
from ..messages import Reply, Thread, Timer
from . import outbox, schedule, threads
from .base import Part
from .ledger import is_suppressed

BOT = "broadcast"  # the bot name on the threads of template broadcasts


@dataclass(frozen=True)
class Plan:
    """What a broadcast sends: a rendered template, or a bot's conversation started by
    its timer `entry`; from `address` (one of our numbers), a template optionally shown
    from `mask` and expiring at `expires` (RFC 3339)."""

    name: str
    address: str
    template: str | None = None
    bot: str | None = None
    entry: str | None = None
    expires: str | None = None
    mask: str | None = None

    @property
    def kind(self) -> str:
        return "template" if self.template else "conversation"


@dataclass(frozen=True)
class Recipient:
    """One handset of a broadcast, with its reply (template broadcasts) and the time it
    may be sent from (quiet hours)."""

    handset: str
    reply: Reply | None = None
    not_before: datetime | None = None


class Broadcasts(Part):
    """Broadcasts and their recipients."""

    async def open(self, plan: Plan) -> int:
        """The id of the broadcast named `plan.name`, created if new; a name given again
        must describe the same broadcast."""

        async def write(tx: Tx) -> int:
            row = await tx.fetchone("SELECT * FROM broadcasts WHERE name = ?", (plan.name,))
            if row is not None:
                _same(row, plan)
                return row["id"]
            return await tx.fetchval(
                """INSERT INTO broadcasts (name, kind, template, bot, entry, address, expires,
                       mask, created_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id""",
                (
                    plan.name,
                    plan.kind,
                    plan.template,
                    plan.bot,
                    plan.entry,
                    plan.address,
                    plan.expires,
                    plan.mask,
                    self.now(),
                ),
            )

        return await self.db.write(write)

    async def done(self, broadcast_id: int) -> set[str]:
        """The handsets already queued or skipped (a resumed broadcast leaves them)."""
        rows = await self.db.fetchall(
            "SELECT handset FROM broadcast_recipients WHERE broadcast_id = ?", (broadcast_id,)
        )
        return {row[0] for row in rows}

    async def add(
        self,
        broadcast_id: int,
        plan: Plan,
        recipients: Sequence[Recipient],
        numbers: OurNumbers,
    ) -> tuple[int, int]:
        """Queue a batch of recipients in one transaction; returns (queued, skipped).
        One already in this broadcast is left alone."""

        async def write(tx: Tx) -> tuple[int, int]:
            now = self.now()
            queued = skipped = 0
            for recipient in recipients:
                state = await _add(tx, broadcast_id, plan, recipient, numbers, now)
                queued += state == "queued"
                skipped += state == "skipped"
            return queued, skipped

        return await self.db.write(write)

    async def summary(self, broadcast_id: int) -> dict[str, int]:
        """Recipients by outcome: queued, skipped, and the MTs' statuses so far."""
        rows = await self.db.fetchall(
            """SELECT r.status AS recipient, m.status AS message, count(*) AS n
               FROM broadcast_recipients r LEFT JOIN messages m ON m.id = r.message_id
               WHERE r.broadcast_id = ? GROUP BY 1, 2""",
            (broadcast_id,),
        )
        counts: dict[str, int] = {}
        for row in rows:
            key = (
                row["message"]
                if row["recipient"] == "queued" and row["message"]
                else row["recipient"]
            )
            counts[key] = counts.get(key, 0) + row["n"]
        return counts


async def _add(
    tx: Tx,
    broadcast_id: int,
    plan: Plan,
    recipient: Recipient,
    numbers: OurNumbers,
    now: str,
) -> str | None:
    """Queue one recipient; 'queued', 'skipped', or None when it was done already."""
    handset = recipient.handset
    exists = await tx.fetchval(
        "SELECT 1 FROM broadcast_recipients WHERE broadcast_id = ? AND handset = ?",
        (broadcast_id, handset),
    )
    if exists:
        return None
    origin = numbers.origin(plan.address, mask=plan.mask)
    if await is_suppressed(tx, handset, (origin.address,)):
        await tx.execute(
            """INSERT INTO broadcast_recipients (broadcast_id, handset, status, reason,
                   created_at)
               VALUES (?, ?, 'skipped', 'opted out', ?)""",
            (broadcast_id, handset, now),
        )
        return "skipped"
    not_before = stamp(recipient.not_before) if recipient.not_before else None
    thread = Thread(bot=plan.bot or BOT, handset=handset, address=plan.address)
    message_id = None
    if plan.template is not None:
        assert recipient.reply is not None
        thread.status = "closed"  # a one-off message: an answer starts a conversation anew
        thread = await threads.save(tx, thread, now)
        reply = dataclasses.replace(recipient.reply, mask=plan.mask, expires=plan.expires)
        message_id = await outbox.enqueue(tx, thread, reply, numbers, now, not_before=not_before)
    else:
        assert plan.entry is not None
        thread = await threads.save(tx, thread, now)
        assert thread.id is not None
        due = recipient.not_before or parse_stamp(now)
        await schedule.schedule(tx, thread.id, handset, Timer(name=plan.entry, due_at=due), now)
    await tx.execute(
        """INSERT INTO broadcast_recipients (broadcast_id, handset, status, thread_id,
               message_id, created_at)
           VALUES (?, ?, 'queued', ?, ?, ?)""",
        (broadcast_id, handset, thread.id, message_id, now),
    )
    return "queued"


def _same(row: Row, plan: Plan) -> None:
    """Refuse to resume a broadcast under a name that another broadcast already has."""
    stored = (row["template"], row["bot"], row["entry"], row["address"], row["mask"])
    if stored != (plan.template, plan.bot, plan.entry, plan.address, plan.mask):
        raise ValidationError(
            "--name",
            f"broadcast {plan.name!r} already exists with other contents (template, "
            "conversation, number or mask); give this one another --name",
        )
