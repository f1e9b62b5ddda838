"""Contacts: a person per handset, its field values, and the ledger of every change.

A contact is read whole in one statement (its row, field values and lists), and saved
with `save`, inside the caller's transaction: a handler's changes commit with its other
effects, an operator's or the API's on their own, an import's a batch at a time. Every
change is written to `contact_changes` with its source (bot, operator, api, import) and
who made it (the bot's name, the operator's login).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from ..clock import parse_stamp
from ..contacts import ATTRIBUTES, Change, Contact
from ..db import Row, Tx
from ..fields import Fields
from ..localtime import number_zone
from . import campaigns
from .base import Part
from .contact_filters import EVERY, ContactFilters

if TYPE_CHECKING:
    from ..campaign import Campaign

# Contacts a page of the dashboard (and of GET /api/contacts) lists.
PAGE = 50

# A contact's row, its field values and its lists, in one round trip: the dispatcher
# reads one before every handler.
READ = """
    SELECT 'contact' AS part, name AS a, language AS b, timezone AS c, created_at AS d
        FROM contacts WHERE handset = ?
    UNION ALL
    SELECT 'field', field, kind, value, NULL FROM contact_values WHERE handset = ?
    UNION ALL
    SELECT 'list', l.name, NULL, NULL, NULL
        FROM list_members m JOIN lists l ON l.id = m.list_id
        WHERE m.handset = ? AND m.status = 'subscribed'
"""


@dataclass(frozen=True)
class Author:
    """Who changes a contact, for the ledger: `source` is how (bot, operator, api,
    import), `actor` who (a bot's name, an operator's login)."""

    source: str
    actor: str | None = None


class Contacts(Part):
    """Reading contacts, and saving what changed of them."""

    # What the loaded bots declare, and BOTKIT_TIMEZONE: set by the runtime at start-up.
    fields = Fields()
    zone = ZoneInfo("UTC")
    campaigns: Sequence[Campaign] = ()

    async def get(self, handset: str) -> Contact:
        """The contact of `handset`: as stored, or a new one with nothing set."""
        rows = await self.db.fetchall(READ, (handset, handset, handset))
        return self.contact(handset, rows)

    async def read(self, tx: Tx, handset: str) -> Contact:
        """`get`, inside a transaction."""
        return self.contact(handset, await tx.fetchall(READ, (handset, handset, handset)))

    def contact(self, handset: str, rows: Sequence[Row]) -> Contact:
        """A Contact from the rows of READ."""
        attributes: dict[str, str | None] = {}
        created_at = None
        values: dict[str, tuple[str, str]] = {}
        lists = []
        for row in rows:
            part, a, b, c, d = row[0], row[1], row[2], row[3], row[4]
            if part == "contact":
                attributes = {"name": a, "language": b, "timezone": c}
                created_at = parse_stamp(d)
            elif part == "field":
                values[a] = (b, c)
            else:
                lists.append(a)
        return Contact(
            handset,
            declared=self.fields,
            number_zone=number_zone(handset, self.zone),
            stored=values,
            lists=tuple(sorted(lists)),
            created_at=created_at,
            **attributes,
        )

    async def save(self, contact: Contact, author: Author) -> bool:
        """Commit what changed of `contact` in a transaction of its own; True if anything
        did."""
        return await self.db.write(lambda tx: self.write(tx, contact, author, self.now()))

    async def write(self, tx: Tx, contact: Contact, author: Author, now: str) -> bool:
        """`save` inside the caller's transaction, and move the campaign events that
        follow what changed, from the contact as stored now: `contact` may have been
        read before another writer changed what it did not (a handler reads it before it
        runs). `contact` is left as it is: the transaction may run again."""
        await tx.lock(f"handset {contact.number}")  # as replan and a timer's commit do
        changed = await save(tx, contact, await self.read(tx, contact.number), author, now)
        what = {change.what for change in changed}
        following = [
            campaign for campaign in self.campaigns if campaign.field in what or "timezone" in what
        ]
        if following:  # planned from the contact as it is now stored
            stored = await self.read(tx, contact.number)
            for campaign in following:
                await campaigns.replan(tx, stored, campaign, now)
        return bool(changed)

    async def plan_campaigns(self, batch: int = 100) -> dict[str, int]:
        """Plan anew every contact's events of each campaign that is new or changed
        since it was last planned (a campaign added after its contacts were imported),
        `batch` contacts a transaction (each holds their handsets' locks: a short one),
        going on where a stop cut it short; how many contacts each one took."""
        done: dict[str, int] = {}
        for campaign in self.campaigns:
            count = await self._plan(campaign, batch)
            if count is not None:
                done[campaign.name] = count
        return done

    async def _plan(self, campaign: Campaign, batch: int) -> int | None:
        """Plan `campaign` anew for every contact with its field, if it is stale; how
        many contacts it took (None: it was not stale)."""
        signature = campaign.signature()
        if not await self.db.read(lambda tx: campaigns.stale(tx, campaign, signature)):
            return None
        count = 0
        after = await self.db.read(lambda tx: campaigns.progress(tx, campaign, signature))
        while handsets := await self._with_field(campaign.field, after, batch):

            async def replan(tx: Tx, handsets: list[str] = handsets) -> None:
                await tx.lock(*(f"handset {handset}" for handset in handsets))
                for handset in handsets:
                    contact = await self.read(tx, handset)
                    await campaigns.replan(tx, contact, campaign, self.now())
                await campaigns.progressed(tx, campaign, signature, handsets[-1])

            await self.db.write(replan)
            count, after = count + len(handsets), handsets[-1]
        await self.db.write(lambda tx: campaigns.planned(tx, campaign, signature, self.now()))
        return count

    async def _with_field(self, field: str, after: str, limit: int) -> list[str]:
        rows = await self.db.fetchall(
            """SELECT handset FROM contact_values WHERE field = ? AND handset > ?
               ORDER BY handset LIMIT ?""",
            (field, after, limit),
        )
        return [row[0] for row in rows]

    async def exists(self, handset: str) -> bool:
        """True if `handset` is a contact with something set, or has texted."""
        return bool(
            await self.db.fetchval(
                """SELECT EXISTS (SELECT 1 FROM contacts WHERE handset = ?)
                       OR EXISTS (SELECT 1 FROM threads WHERE handset = ?)""",
                (handset, handset),
            )
        )

    async def ledger(self, handset: str, limit: int = 100) -> list[Row]:
        """The latest changes of a contact, newest first."""
        return await self.db.fetchall(
            """SELECT what, old, new, source, actor, at FROM contact_changes
               WHERE handset = ? ORDER BY id DESC LIMIT ?""",
            (handset, limit),
        )

    async def stored_fields(self) -> list[str]:
        """The names of every field some contact has a value of."""
        rows = await self.db.fetchall("SELECT DISTINCT field FROM contact_values ORDER BY field")
        return [row[0] for row in rows]

    async def page(
        self, after: str | None, limit: int, filters: ContactFilters = EVERY
    ) -> list[Contact]:
        """Stored contacts in number order, `limit` at most after number `after`, those
        `filters` keep, read in three statements whatever their number."""
        where, params = filters.where()

        async def read(tx: Tx) -> list[Contact]:
            rows = await tx.fetchall(
                f"""SELECT 'contact' AS part, c.handset, c.name, c.language, c.timezone,
                       c.created_at
                    FROM contacts c WHERE c.handset > ? {"AND " + where if where else ""}
                    ORDER BY c.handset LIMIT ?""",
                [after or "", *params, limit],
            )
            handsets = [row[1] for row in rows]
            if not handsets:
                return []
            marks = ", ".join("?" * len(handsets))
            rows += await tx.fetchall(
                f"""SELECT 'field', handset, field, kind, value, NULL FROM contact_values
                    WHERE handset IN ({marks})""",
                handsets,
            )
            rows += await tx.fetchall(
                f"""SELECT 'list', m.handset, l.name, NULL, NULL, NULL
                    FROM list_members m JOIN lists l ON l.id = m.list_id
                    WHERE m.handset IN ({marks}) AND m.status = 'subscribed'""",
                handsets,
            )
            by_handset: dict[str, list[Row]] = {handset: [] for handset in handsets}
            for row in rows:
                by_handset[row[1]].append((row[0], *tuple(row)[2:]))
            return [self.contact(handset, each) for handset, each in by_handset.items()]

        return await self.db.read(read)

    async def listing(
        self, after: str | None, filters: ContactFilters = EVERY, *, limit: int = PAGE
    ) -> tuple[list[Contact], str | None]:
        """A page of the contacts `filters` keep, in number order after number `after`,
        and the `after` of the next page (None: this is the last)."""
        found = await self.page(after, limit + 1, filters)
        return found[:limit], found[limit - 1].number if len(found) > limit else None


async def save(tx: Tx, contact: Contact, stored: Contact, author: Author, now: str) -> list[Change]:
    """Write what changed of `contact`, and a ledger line for each change from what is
    `stored` now (another writer may have changed it since `contact` was read); return
    the changes, none if everything changed is as stored already. A contact's row is
    made with its first change. `contact` is left as it is: the transaction may run
    again."""
    changes = [
        Change(c.what, stored.text(c.what), c.new)
        for c in contact.changes()
        if stored.text(c.what) != c.new
    ]
    if not changes:
        return []
    values = {what: getattr(contact, what) for what in ATTRIBUTES}
    # Only what changed: another writer's change of another attribute meanwhile stands.
    changed = [what for what in ATTRIBUTES if any(c.what == what for c in changes)]
    sets = "".join(f"{what} = excluded.{what}, " for what in changed)
    await tx.execute(
        f"""INSERT INTO contacts (handset, name, language, timezone, created_at, updated_at)
            VALUES (?, ?, ?, ?, ?, ?)
            ON CONFLICT (handset) DO UPDATE SET {sets}updated_at = excluded.updated_at""",
        (contact.number, values["name"], values["language"], values["timezone"], now, now),
    )
    kinds = contact.fields.kinds()
    for change in changes:
        if change.what in ATTRIBUTES:
            continue
        if change.new is None:
            await tx.execute(
                "DELETE FROM contact_values WHERE handset = ? AND field = ?",
                (contact.number, change.what),
            )
        else:
            await tx.execute(
                """INSERT INTO contact_values (handset, field, kind, value) VALUES (?, ?, ?, ?)
                   ON CONFLICT (handset, field) DO UPDATE SET kind = excluded.kind,
                       value = excluded.value""",
                (contact.number, change.what, kinds[change.what], change.new),
            )
    await tx.executemany(
        """INSERT INTO contact_changes (handset, what, old, new, source, actor, at)
           VALUES (?, ?, ?, ?, ?, ?, ?)""",
        [(contact.number, c.what, c.old, c.new, author.source, author.actor, now) for c in changes],
    )
    return changes
