"""Conversations for the dashboard: threads by latest activity, and one thread's messages
with their delivery history. Pages are keyset-paginated (no OFFSET): a page costs the
same at the millionth row as at the first."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

from ..db import Row
from ..errors import ValidationError
from ..params import whole
from .base import Part, marks
from .contact_filters import Condition, FieldMatch

PAGE = 50
# A transcript page: a long thread is read (and drawn) a part at a time.
TRANSCRIPT_PAGE = 200
# Live updates: a thread's changes are read (and drawn) this many messages at a time.
CHANGES_PAGE = 100
MAX_ID = 2**63 - 1
# Values bound in one `IN (...)`: well under any backend's limit of parameters.
CHUNK = 500
T = TypeVar("T")
# Messages, each with the id of the MT it answers (found by the gateway id it echoes).
MESSAGES = """SELECT m.*, (SELECT r.id FROM messages r
                          WHERE r.direction = 'mt' AND r.gateway_id = m.reply_to
                          ORDER BY r.id DESC LIMIT 1) AS reply_to_id
              FROM messages m"""
# An MO whose handler failed, or that was given up: migration 16's messages_failed
# index has this condition word for word (a partial index serves only the same one).
FAILED = "direction = 'mo' AND status = 'failed'"
# Threads a person's page lists; the conversations page, searched by the number, has all.
PERSON_THREADS = 50


@dataclass(frozen=True)
class Transcript:
    """A page of a thread: its latest messages (before some message), oldest first, the
    delivery history of each MT, and the id to ask `before` for the page before it."""

    thread: Row
    messages: list[Row]
    history: dict[int, list[Row]]
    earlier: int | None


@dataclass(frozen=True)
class Changes:
    """A page of a thread's changed messages, in the order they changed, the delivery
    history of each MT, and whether more changed after them."""

    messages: list[Row]
    history: dict[int, list[Row]]
    more: bool


@dataclass(frozen=True)
class Person:
    """A handset's page: its latest threads with every bot, newest first, and a page of
    all its messages, newest first (`threads` holds every thread they are in), with the
    delivery history of each MT and the id to ask `before` for older ones."""

    handset: str
    latest: list[Row]
    more: bool
    messages: list[Row]
    threads: dict[int, Row]
    history: dict[int, list[Row]]
    earlier: int | None


@dataclass(frozen=True)
class Cursor:
    """Where the next page starts: after the thread with this activity time and id."""

    updated_at: str
    thread_id: int

    def __str__(self) -> str:
        return f"{self.updated_at}~{self.thread_id}"

    @classmethod
    def parse(cls, text: str) -> Cursor | None:
        """From `str(cursor)` (None for no text); ValidationError for text that is not
        one, rather than the first page again (a client could loop for ever)."""
        if not text:
            return None
        stamp, _, thread_id = text.rpartition("~")
        if stamp:
            return cls(stamp, whole({"after": thread_id}, "after"))
        raise ValidationError("after", "is not the cursor of a page")


STATUSES = ("open", "paused", "closed")


@dataclass(frozen=True)
class Filters:
    """Which threads a page shows (see botkit/search.py): `number` is digits a handset
    contains, `words` those a message holds (none: a search that finds nothing);
    `since` and `before` bound the last activity; `addresses` are the ways threads spell
    the one of our numbers they are on; `failed` keeps threads with an MO whose
    handling failed; `field` those of contacts with a field's value."""

    bot: str | None = None
    status: str | None = None
    state: str | None = None
    number: str | None = None
    words: tuple[str, ...] | None = None
    since: str | None = None
    before: str | None = None
    addresses: tuple[str, ...] | None = None
    failed: bool = False
    field: FieldMatch | None = None

    def where(self, text: Condition | None = None) -> tuple[list[str], list[object]]:
        """SQL conditions on threads `t`, and their parameters; `text` is the condition
        for `words` (Database.text_search)."""
        where: list[str] = []
        params: list[object] = []
        if self.bot:
            where.append("t.bot = ?")
            params.append(self.bot)
        if self.status == "paused":
            where.append("t.paused_by IS NOT NULL")
        elif self.status == "open":
            where.append("t.status = 'open' AND t.paused_by IS NULL")
        elif self.status == "closed":
            where.append("t.status = 'closed'")
        if self.state:
            where.append("t.state = ?")
            params.append(self.state)
        if self.addresses is not None:
            where.append(f"t.address IN ({marks(self.addresses)})")
            params += self.addresses
        if self.number:
            where.append("t.handset LIKE ?")
            params.append(f"%{self.number}%")
        if text is not None:
            where.append(text[0])
            params += text[1]
        elif self.words is not None:  # a text with no word in it: nothing holds it
            where.append("1 = 0")
        if self.failed:
            # The failed MOs are few (an index of them alone): read them, then the threads.
            where.append(f"t.id IN (SELECT thread_id FROM messages WHERE {FAILED})")
        if self.field is not None:
            sql, values = self.field.condition("t.handset")
            where.append(sql)
            params += values
        if self.since:
            where.append("t.updated_at >= ?")
            params.append(self.since)
        if self.before:
            where.append("t.updated_at < ?")
            params.append(self.before)
        return where, params


class Conversations(Part):
    """Reads for the dashboard."""

    async def page(
        self, after: Cursor | None = None, filters: Filters = Filters(), *, limit: int = PAGE
    ) -> tuple[list[Row], Cursor | None]:
        """Threads, most recently active first, with their last message, the delivery
        status of their last reply and the contact's name; and the cursor of the next
        page (None: last page)."""
        # Words are looked up in the database's full-text index, each engine its way
        # (db/fts5.py, db/postgres.py), rather than in the text of every message.
        text = await self.db.text_search(filters.words) if filters.words else None
        where, params = filters.where(text)
        if after is not None:
            where.append("(t.updated_at, t.id) < (?, ?)")
            params += [after.updated_at, after.thread_id]
        rows = await self.db.fetchall(
            f"""SELECT t.*,
                   (SELECT content FROM messages m WHERE m.thread_id = t.id
                    ORDER BY m.id DESC LIMIT 1) AS last_text,
                   (SELECT created_at FROM messages m WHERE m.thread_id = t.id
                    ORDER BY m.id DESC LIMIT 1) AS last_at,
                   (SELECT coalesce(delivery, status) FROM messages m
                    WHERE m.thread_id = t.id AND m.direction = 'mt'
                    ORDER BY m.id DESC LIMIT 1) AS last_delivery,
                   (SELECT count(*) FROM messages WHERE thread_id = t.id AND {FAILED})
                       AS failures,
                   (SELECT name FROM contacts c WHERE c.handset = t.handset) AS name
                FROM threads t
                {"WHERE " + " AND ".join(where) if where else ""}
                ORDER BY t.updated_at DESC, t.id DESC LIMIT ?""",
            [*params, limit + 1],
        )
        more = len(rows) > limit
        rows = rows[:limit]
        cursor = Cursor(rows[-1]["updated_at"], rows[-1]["id"]) if more and rows else None
        return rows, cursor

    async def addresses(self) -> list[str]:
        """The numbers threads are on, as they store them: one look into the
        threads_address index per number (a loose index scan), not a read of every
        thread."""
        rows = await self.db.fetchall(
            """WITH RECURSIVE found (address) AS (
                   SELECT min(address) FROM threads
                   UNION ALL
                   SELECT (SELECT t.address FROM threads t WHERE t.address > found.address
                           ORDER BY t.address LIMIT 1)
                   FROM found WHERE found.address IS NOT NULL)
               SELECT address FROM found WHERE address IS NOT NULL"""
        )
        return [row["address"] for row in rows]

    async def transcript(
        self, thread_id: int, before: int | None = None, *, limit: int = TRANSCRIPT_PAGE
    ) -> Transcript | None:
        """A thread and its latest `limit` messages (those before message `before`), in
        order, each MT with its delivery history; None if there is no such thread."""
        thread = await self.db.fetchone("SELECT * FROM threads WHERE id = ?", (thread_id,))
        if thread is None:
            return None
        latest, earlier = await self._latest("thread_id", thread_id, before, limit)
        messages = latest[::-1]
        return Transcript(thread, messages, await self._history(messages), earlier)

    async def person(
        self, handset: str, before: int | None = None, *, limit: int = TRANSCRIPT_PAGE
    ) -> Person | None:
        """A handset's latest threads and its latest `limit` messages of every thread
        (those before message `before`), newest first; None if it has neither."""
        threads = await self.db.fetchall(
            """SELECT * FROM threads WHERE handset = ?
               ORDER BY updated_at DESC, id DESC LIMIT ?""",
            (handset, PERSON_THREADS + 1),
        )
        messages, earlier = await self._latest("handset", handset, before, limit)
        if not threads and not messages:
            return None
        return Person(
            handset=handset,
            latest=threads[:PERSON_THREADS],
            more=len(threads) > PERSON_THREADS,
            messages=messages,
            threads=await self._threads(messages),
            history=await self._history(messages),
            earlier=earlier,
        )

    async def handling(self, gateway_ids: Sequence[int]) -> dict[int, tuple[str, str | None]]:
        """The status and error of the MOs with these gateway ids (those stored)."""
        found: dict[int, tuple[str, str | None]] = {}
        for chunk in _chunks(list(gateway_ids)):
            for row in await self.db.fetchall(
                f"""SELECT gateway_id, status, error FROM messages
                    WHERE direction = 'mo' AND gateway_id IN ({marks(chunk)})""",
                chunk,
            ):
                found[row["gateway_id"]] = (row["status"], row["error"])
        return found

    async def _latest(
        self, column: str, value: object, before: int | None, limit: int
    ) -> tuple[list[Row], int | None]:
        """The latest `limit` messages whose `column` (thread_id or handset: each has an
        index with the id) is `value`, before message `before`, newest first; and the
        id to ask `before` for the page before them (None: there is none)."""
        rows = await self.db.fetchall(
            f"{MESSAGES} WHERE m.{column} = ? AND m.id < ? ORDER BY m.id DESC LIMIT ?",
            (value, before if before is not None else MAX_ID, limit + 1),
        )
        earlier = rows[limit - 1]["id"] if len(rows) > limit else None
        return rows[:limit], earlier

    async def _threads(self, messages: list[Row]) -> dict[int, Row]:
        """The threads `messages` are in, by id."""
        ids = sorted({m["thread_id"] for m in messages if m["thread_id"] is not None})
        found: dict[int, Row] = {}
        for chunk in _chunks(ids):
            rows = await self.db.fetchall(
                f"SELECT * FROM threads WHERE id IN ({marks(chunk)})", chunk
            )
            found |= {row["id"]: row for row in rows}
        return found

    async def changes(
        self, thread_id: int, since: str, after: int = 0, *, limit: int = CHANGES_PAGE
    ) -> Changes:
        """A page of the thread's messages changed at or after the time `since` (those
        of `since` itself only after message `after`), in the order they changed: by
        their time, then id. A keyset, so messages of one time across a page boundary
        are neither skipped nor read twice."""
        rows = await self.db.fetchall(
            f"""{MESSAGES} WHERE m.thread_id = ? AND (m.updated_at, m.id) > (?, ?)
                ORDER BY m.updated_at, m.id LIMIT ?""",
            (thread_id, since, after, limit + 1),
        )
        messages = rows[:limit]
        return Changes(messages, await self._history(messages), len(rows) > limit)

    async def changed(self, thread_id: int, since: str) -> Row | None:
        """The thread if it changed at or after the time `since`, else None."""
        return await self.db.fetchone(
            "SELECT * FROM threads WHERE id = ? AND updated_at >= ?", (thread_id, since)
        )

    async def newest(self, thread_id: int) -> str:
        """The time of the thread's latest change, its messages' included."""
        return await self.db.fetchval(
            """SELECT max(updated_at) FROM (
                   SELECT updated_at FROM threads WHERE id = ?
                   UNION ALL SELECT max(updated_at) FROM messages WHERE thread_id = ?) t""",
            (thread_id, thread_id),
        )

    async def _history(self, messages: list[Row]) -> dict[int, list[Row]]:
        """The delivery receipts of each MT among `messages`, oldest first."""
        history: dict[int, list[Row]] = {}
        ids = [m["id"] for m in messages if m["direction"] == "mt"]
        for chunk in _chunks(ids):
            for row in await self.db.fetchall(
                f"SELECT * FROM deliveries WHERE message_id IN ({marks(chunk)}) ORDER BY id",
                chunk,
            ):
                history.setdefault(row["message_id"], []).append(row)
        return history


def _chunks(values: list[T]) -> Iterator[list[T]]:
    """`values` in lists short enough for one `IN (...)`."""
    for start in range(0, len(values), CHUNK):
        yield values[start : start + CHUNK]
