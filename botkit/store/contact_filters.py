"""Which contacts a search keeps, as SQL conditions: by a field's value (for the
contacts page and the conversations page alike), and the contacts page's other
filters (botkit/contact_search.py reads them from a query).

The contacts page walks `contacts` in number order, its primary key, and stops at a
page. A filter an index serves (numbers; a field's value, a list: read whole from
their index first) costs what it keeps: a value that 10 contacts have, nothing to
speak of; one that most of 100,000 have, 35 ms on SQLite. A name's part or a language
has no index: the walk tests each contact's and goes on until it has a page, so a
common one costs a page's worth of rows and one that no contact has the whole table
(at 100,000 contacts, 25 ms on SQLite, 30 to 60 ms on PostgreSQL; pg_trgm's index
would serve a name's part, on PostgreSQL only). Figures: docs/dashboard.md, Speed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .base import ESCAPE, like_escaped, marks

# An SQL condition and its parameters.
Condition = tuple[str, list[Any]]


@dataclass(frozen=True)
class FieldMatch:
    """Contacts whose field `name` is set: to `value` (as stored: canonical text), or to
    one from `since` up to `before` (a datetime field's day, as stamps), or to anything."""

    name: str
    value: str | None = None
    since: str | None = None
    before: str | None = None

    def condition(self, handset: str) -> Condition:
        """The SQL condition on the column `handset` (`t.handset`, `c.handset`). IN,
        not EXISTS: the handsets come from one range of the contact_values_field index
        (field, value, handset), so a rare value costs its few rows. (SQLite runs an
        EXISTS per outer row, in the outer query's order, through every row when
        nothing matches; PostgreSQL plans both as one semi-join.)"""
        where, params = ["v.field = ?"], [self.name]
        for sql, value in (("=", self.value), (">=", self.since), ("<", self.before)):
            if value is not None:
                where.append(f"v.value {sql} ?")
                params.append(value)
        return (
            f"{handset} IN (SELECT v.handset FROM contact_values v WHERE {' AND '.join(where)})",
            params,
        )


@dataclass(frozen=True)
class ContactFilters:
    """Which contacts a page lists: `handsets` are the numbers a search may mean (E.164),
    `name` text the name holds (case ignored), `language` a language code, `list_id` a
    list's id (its subscribed members), `field` a field's value."""

    handsets: tuple[str, ...] | None = None
    name: str | None = None
    language: str | None = None
    list_id: int | None = None
    field: FieldMatch | None = None

    def where(self) -> Condition:
        """The SQL conditions on contacts `c`, joined by AND ("" for none)."""
        where: list[str] = []
        params: list[Any] = []
        if self.handsets is not None:
            where.append(f"c.handset IN ({marks(self.handsets)})")
            params += self.handsets
        if self.name is not None:
            # No index serves a part of a name: the walk in number order tests each
            # (the module's doc says what that costs). lower() on both sides: case is
            # ignored as the engine folds it (SQLite's lower() folds A to Z only,
            # PostgreSQL's by its locale).
            where.append(f"lower(c.name) LIKE lower(?) ESCAPE '{ESCAPE}'")
            params.append(f"%{like_escaped(self.name)}%")
        if self.language is not None:
            # No index either: languages are few, so a page is found soon but for a
            # rare one.
            where.append("c.language = ?")
            params.append(self.language)
        if self.list_id is not None:
            # The list's members from its primary key (list_id, handset). By its id, not
            # a join on its name: PostgreSQL then plans by how many members that list
            # has (a list of 20 among 100,000 contacts took 25 ms, joined by name).
            where.append(
                """c.handset IN (SELECT m.handset FROM list_members m
                   WHERE m.list_id = ? AND m.status = 'subscribed')"""
            )
            params.append(self.list_id)
        if self.field is not None:
            sql, values = self.field.condition("c.handset")
            where.append(sql)
            params += values
        return " AND ".join(where), params


# No filter: every contact with a row.
EVERY = ContactFilters()
