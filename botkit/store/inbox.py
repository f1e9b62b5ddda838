"""The inbox: MOs stored and waiting to be handled, one claimed at a time per handset."""

from __future__ import annotations

import base64
from collections.abc import Sequence

from ..addresses import OurNumbers
from ..batching import Batcher
from ..clock import Clock, later, parse_stamp
from ..db import Database, Row, Tx
from ..events import MO_RECEIVED
from ..handling import GAVE_UP
from ..messages import IncomingMO, Message, Reply, Thread, join_flags, split_flags
from ..sms import measure
from . import threads
from .base import CLAIMS, Claims, leasable, leasing, lost, marks
from .effects import Effects, commit_all
from .outbox import enqueue
from .webhooks import emit, subscribed

# Batches of handled MOs committed at once: each handset has one MO handled at a time,
# so their order does not matter, and one batch's statements take turns on one
# connection, while the pool has several.
FINISHING = 3


class Inbox(Claims):
    """MOs from their callback to their handler's commit."""

    def __init__(self, db: Database, clock: Clock, owner: str) -> None:
        super().__init__(db, clock, owner)
        # Whether an MO may wait that `claim` would take: one stored unclaimed, one whose
        # handset's MO before it was handled (`done_with`), or a claim that took all it
        # could. The dispatcher claims from the inbox while it is set (and now and then:
        # leases that ran out), not after every MO (on SQLite most are claimed as they
        # are stored).
        self.unclaimed = True
        self._waiting: set[str] = set()  # handsets whose MO was handled with another behind
        self._adding: Batcher[IncomingMO, int | None] = Batcher(self._store_all)
        self._finishing: Batcher[tuple[Message, Effects], tuple[int | None, list[int]]] = Batcher(
            self._finish_all, writers=FINISHING
        )

    async def add(self, mo: IncomingMO) -> int | None:
        """Store an MO and put it in the inbox; None if its gateway id was already stored.
        On PostgreSQL, MOs that come while others are being stored are stored together
        (Batcher), in one statement. SQLite's writer already commits queued writes in
        groups: there, a batcher would only make each MO wait for the batch before its
        own."""
        if self.db.shared:
            message_id = await self._adding.add(mo)
        else:
            message_id, _ = await self.db.write(lambda tx: self._insert(tx, mo), urgent=True)
        if message_id is not None:
            self.unclaimed = True
        return message_id

    async def add_claimed(self, mo: IncomingMO, lease: float) -> tuple[int | None, Message | None]:
        """Store an MO as `add` does and, in the same transaction, claim it for `lease`
        seconds if its handset has no other MO waiting or claimed and no timer claimed:
        the dispatcher handles it at once, a claim's transaction and a round of its loop
        sooner. The dispatcher must not be busy with the handset. Returns its id (None:
        a duplicate) and the claimed MO (None: it waits its turn).

        SQLite's only, where one process serves the database. On PostgreSQL the
        dispatcher claims MOs from the inbox, in batches: two processes that each
        claimed their MOs as they stored them replied three times slower (MO>MT p99,
        bench/profile.md, sixteenth session)."""
        if self.db.shared:
            raise ValueError("an MO is claimed as it is stored on SQLite only")
        until = later(self.clock, lease)
        message_id, row = await self.db.write(lambda tx: self._insert(tx, mo, until), urgent=True)
        if message_id is not None and row is None:
            # It waits behind its handset's MO or timer: a claim that passed over the
            # handset while this one was stored must not be the last.
            self.unclaimed = True
        return message_id, None if row is None else message_from_row(row)

    async def _insert(
        self, tx: Tx, mo: IncomingMO, until: str | None = None
    ) -> tuple[int | None, Row | None]:
        """Store an MO on SQLite and put it in the inbox, claimed `until` then if it may
        be (None: not claimed); its id (None if its gateway id was already stored), and
        its row if it was claimed."""
        now = self.now()
        stored = await tx.fetchone(
            f"""INSERT INTO messages (direction, {MO_COLUMNS}, status, created_at, updated_at)
                VALUES ('mo', {marks(MO_COLUMNS.split(","))}, 'received', ?, ?)
                ON CONFLICT (gateway_id) WHERE direction = 'mo' DO NOTHING RETURNING id""",
            (*_mo_values(mo), now, now),
        )
        if stored is None:
            return None, None
        message_id, handset = stored["id"], mo.source
        if subscribed(tx, MO_RECEIVED):
            await emit(tx, MO_RECEIVED, mo_event(message_id, mo), now)
        await tx.execute(
            "INSERT INTO inbox (message_id, handset) VALUES (?, ?)", (message_id, handset)
        )
        if until is None or not await tx.execute(
            CLAIM_STORED, (until, self.owner, message_id, handset, message_id, handset, now)
        ):
            return message_id, None
        return message_id, await tx.fetchone("SELECT * FROM messages WHERE id = ?", (message_id,))

    async def _store_all(self, mos: Sequence[IncomingMO]) -> list[int | None]:
        """Store MOs on PostgreSQL (`add`): one statement, a transaction of its own, one
        round trip (STORE); each MO's id, None if its gateway id was already stored, or
        came earlier in `mos`."""
        now = self.now()
        # One handset's MOs are numbered in the order they commit, at any process; and a
        # claim of a timer of the handset waits for them (Timers.claim), or they for it.
        locks = sorted({f"handset {mo.source}" for mo in mos})
        columns = [list(column) for column in zip(*(_mo_values(mo) for mo in mos), strict=True)]
        params = (locks, now, now, *columns)
        if self.db.subscribers.get(MO_RECEIVED):  # and their events, in the same transaction
            rows = await self.db.write(
                lambda tx: _store_emitting(tx, mos, params, now), urgent=True
            )
        else:
            rows = await self.db.write(
                lambda tx: tx.fetchall(STORE, params), urgent=True, single=True
            )
        stored = {row["gateway_id"]: row["id"] for row in rows}
        return [stored.pop(mo.gateway_id, None) for mo in mos]

    async def claim(self, limit: int, lease: float, exclude: Sequence[str] = ()) -> list[Message]:
        """Claim the oldest unhandled MO of up to `limit` handsets that have none claimed.

        A claim is a lease: if its holder dies, the MO is claimed again after `lease`
        seconds. Handsets in `exclude` are being handled by this process already; those
        with an MO or a timer claimed (by any process, an older MO that committed late
        included) wait for it.
        """

        self.unclaimed = False  # an MO stored meanwhile sets it again

        async def write(tx: Tx) -> list[Row]:
            await tx.lock(CLAIMS)
            now = self.now()
            # The oldest first, each the first of its handset's (inbox_handset finds an
            # older one): the scan stops at `limit`, however many MOs wait behind them.
            rows = await tx.fetchall(
                """SELECT i.message_id, i.handset, i.attempts FROM inbox i
                   WHERE NOT EXISTS (SELECT 1 FROM inbox o WHERE o.handset = i.handset
                                     AND o.message_id < i.message_id)
                     AND (i.claimed_until IS NULL OR i.claimed_until < ?)
                     AND NOT EXISTS (SELECT 1 FROM inbox c WHERE c.handset = i.handset
                                     AND c.claimed_until >= ?)
                     AND NOT EXISTS (SELECT 1 FROM timers t WHERE t.handset = i.handset
                                     AND t.claimed_until >= ?)
                   ORDER BY i.message_id LIMIT ?""",
                (now, now, now, limit + len(exclude)),
            )
            ids = await leasable(tx, rows, limit=limit, exclude=exclude, give_up=self._give_up)
            if not ids:
                return []
            # The MOs read in the claim's transaction: a read of its own would be a hop more.
            update = leasing("inbox", "message_id", len(ids))
            leases = (later(self.clock, lease), self.owner, *ids, now)
            if tx.writing_with:  # and in the leases' statement: one round trip for both
                return await tx.fetchall(
                    f"""WITH leased AS ({update})
                        SELECT m.* FROM messages m JOIN leased ON leased.message_id = m.id
                        ORDER BY m.id""",
                    leases,
                )
            leased = [row[0] for row in await tx.fetchall(update, leases)]
            if not leased:
                return []
            return await tx.fetchall(
                f"SELECT * FROM messages WHERE id IN ({marks(leased)}) ORDER BY id", leased
            )

        try:
            claimed = await self.db.write(write)
        except BaseException:
            self.unclaimed = True
            raise
        if len(claimed) >= limit:
            self.unclaimed = True  # there may be more
        return [message_from_row(row) for row in claimed]

    async def _give_up(self, tx: Tx, message_id: int, attempts: int) -> None:
        """Mark an MO failed that no attempt could commit, unless its last holder (past
        its lease) commits it first: whichever takes the inbox row first wins."""
        now = self.now()
        self.unclaimed = True  # the handset's next MO, if any, may go
        if await tx.execute(
            """DELETE FROM inbox WHERE message_id = ?
               AND (claimed_until IS NULL OR claimed_until < ?)""",
            (message_id, now),
        ):
            await tx.execute(
                "UPDATE messages SET status = 'failed', error = ?, updated_at = ? WHERE id = ?",
                (f"{GAVE_UP} {attempts} attempts to handle it", now, message_id),
            )

    async def finish(self, message: Message, effects: Effects) -> list[int]:
        """Commit a handled MO in one transaction: its handler's `effects`, and the MO
        marked handled. Returns the ids of the MTs. On PostgreSQL, MOs handled while
        others commit are committed together (Batcher), as `add` stores them."""
        if self.db.shared:
            thread_id, mt_ids = await self._finishing.add((message, effects))
        else:
            ((thread_id, mt_ids),) = await self._finish_all([(message, effects)])
        if effects.thread is not None:
            effects.thread.id = thread_id  # committed: a new thread has its id now
        return mt_ids

    async def _finish_all(
        self, handled: Sequence[tuple[Message, Effects]]
    ) -> list[tuple[int | None, list[int]]]:
        async def write(tx: Tx) -> list[tuple[int | None, list[int]]]:
            await self._release(tx, [message for message, _ in handled])
            now = self.now()
            done = await commit_all(tx, [effects for _, effects in handled], now)
            await tx.executemany(
                """UPDATE messages SET status = 'handled', thread_id = ?, updated_at = ?
                   WHERE id = ?""",
                [
                    (thread_id, now, message.id)
                    for (message, _), (thread_id, _) in zip(handled, done, strict=True)
                ],
            )
            return done

        return await self.db.write(write)

    async def fail(
        self,
        message: Message,
        error: str,
        thread: Thread | None = None,
        apology: Reply | None = None,
        numbers: OurNumbers | None = None,
    ) -> list[int]:
        """Mark an MO failed (its handler raised), in `thread`, which is left as it was
        (one not yet stored is not stored). An `apology` is queued to the handset in it,
        from its number (in a new, closed thread of its bot if it had none; not while an
        operator has it). Returns the ids of the MTs."""

        async def write(tx: Tx) -> list[int]:
            await self._release(tx, [message])
            now = self.now()
            where = thread if thread is not None and thread.id is not None else None
            mt_ids = []
            if apology is not None and thread is not None and numbers is not None:
                if where is None:
                    where = await threads.save(tx, _closed(thread), now)
                assert where is not None and where.id is not None
                if not await threads.paused(tx, where.id):
                    mt_ids.append(await enqueue(tx, where, apology, numbers, now))
            await tx.execute(
                """UPDATE messages SET status = 'failed', error = ?, thread_id = ?,
                       updated_at = ? WHERE id = ?""",
                (error, where.id if where else None, now, message.id),
            )
            return mt_ids

        return await self.db.write(write)

    async def _release(self, tx: Tx, messages: Sequence[Message]) -> None:
        """Take MOs out of the inbox, first thing in the transaction that commits their
        handling: ClaimLost if this process no longer holds the claim of one. (The rows
        stay locked until the commit: a process taking a claim over waits, then finds
        it gone.) Handsets with other MOs waiting are noted for `done_with`: those are
        claimable once this commits and the dispatcher is done with the handset. An MO
        of theirs stored meanwhile either commits first, and is seen here, or waits for
        this commit (its handset's lock), and its process claims it after."""
        await tx.lock(*(f"handset {message.source}" for message in messages))
        ids = [message.id for message in messages]
        release = f"""DELETE FROM inbox WHERE message_id IN ({marks(ids)}) AND claimed_by = ?
            RETURNING message_id, handset"""
        if tx.writing_with:  # and whether others wait, in the same statement
            released = await tx.fetchall(
                f"""WITH released AS ({release})
                    SELECT message_id, handset, EXISTS (SELECT 1 FROM inbox o
                        WHERE o.handset = released.handset
                          AND o.message_id NOT IN (SELECT message_id FROM released)) AS waiting
                    FROM released""",
                (*ids, self.owner),
            )
            waiting = {row["handset"] for row in released if row["waiting"]}
        else:
            released = await tx.fetchall(release, (*ids, self.owner))
            handsets = {row["handset"] for row in released}
            waiting = {
                row[0]
                for row in await tx.fetchall(
                    f"SELECT DISTINCT handset FROM inbox WHERE handset IN ({marks(handsets)})",
                    tuple(handsets),
                )
            }
        if len(released) < len(ids):
            gone = set(ids).difference(row[0] for row in released)
            raise lost("inbox", min(gone))
        self._waiting.update(waiting)

    def behind(self, handset: str) -> None:
        """An MO of `handset` was stored behind the one the dispatcher holds: once done
        with that (`done_with`), `unclaimed` is set for it."""
        self._waiting.add(handset)

    def done_with(self, handset: str) -> None:
        """The dispatcher no longer holds `handset` (its MO is handled, or failed): if
        another MO of it was seen waiting, `unclaimed` is set, for a claim to take it.
        Not as the handling commits: a claim then would pass over the handset, busy."""
        if handset in self._waiting:
            self._waiting.discard(handset)
            self.unclaimed = True

    async def release_all(self) -> int:
        """Free every claim (at start-up, on a database no other process uses)."""
        return await self.db.write(
            lambda tx: tx.execute(
                "UPDATE inbox SET claimed_until = NULL WHERE claimed_until IS NOT NULL"
            )
        )

    async def depth(self) -> int:
        """How many MOs wait to be handled."""
        return await self.db.fetchval("SELECT count(*) FROM inbox")


def _closed(thread: Thread) -> Thread:
    """A new thread of `thread`'s bot, handset and number, closed, holding nothing."""
    return Thread(bot=thread.bot, handset=thread.handset, address=thread.address, status="closed")


def message_from_row(row: Row) -> Message:
    binary = base64.b64decode(row["content"]) if row["encoding"] == "base64" else None
    return Message(
        id=row["id"],
        gateway_id=row["gateway_id"],
        source=row["handset"],
        destination=row["address"],
        content=row["content"],
        received_at=parse_stamp(row["created_at"]),
        operator=row["operator"],
        reply_to=row["reply_to"],
        reference=row["reference"],
        binary=binary,
        flags=split_flags(row["flags"]),
    )


# The columns of an MO's row that its callback gives (`_mo_values`).
MO_COLUMNS = """gateway_id, handset, address, content, encoding, segments, operator,
    reply_to, reference, flags"""

# `Inbox._store_all` on PostgreSQL: a statement alone, a transaction of its own. It
# takes the handsets' locks (a list of their names, sorted), with the key `tx.lock`
# gives them; then, as it cannot write before `locked` is read, stores the MOs (now
# twice, then a list for each of MO_COLUMNS), in their order, and queues them in the
# inbox. Each stored MO's id and gateway id.
STORE = f"""
WITH locked AS MATERIALIZED (
    SELECT count(pg_advisory_xact_lock(hashtext(name))) AS locks
    FROM (SELECT name FROM unnest(?::text[]) WITH ORDINALITY AS l (name, n) ORDER BY n) l
), stored AS (
    INSERT INTO messages (direction, {MO_COLUMNS}, status, created_at, updated_at)
    SELECT 'mo', {MO_COLUMNS}, 'received', ?, ?
    FROM unnest(?::bigint[], ?::text[], ?::text[], ?::text[], ?::text[], ?::bigint[],
                ?::text[], ?::bigint[], ?::text[], ?::text[])
         WITH ORDINALITY AS m ({MO_COLUMNS}, n)
    CROSS JOIN locked
    ORDER BY m.n
    ON CONFLICT (gateway_id) WHERE direction = 'mo' DO NOTHING
    RETURNING id, gateway_id, handset
), queued AS (
    INSERT INTO inbox (message_id, handset) SELECT id, handset FROM stored
)
SELECT id, gateway_id FROM stored"""

# `Inbox._insert` on SQLite: claims an MO just stored (until, owner, its id) if its
# handset (twice with its id, then now) has no other MO in the inbox and no timer claimed.
CLAIM_STORED = """UPDATE inbox SET claimed_until = ?, claimed_by = ?, attempts = 1
    WHERE message_id = ?
      AND NOT EXISTS (SELECT 1 FROM inbox o WHERE o.handset = ? AND o.message_id != ?)
      AND NOT EXISTS (SELECT 1 FROM timers t WHERE t.handset = ? AND t.claimed_until >= ?)"""


async def _store_emitting(
    tx: Tx, mos: Sequence[IncomingMO], params: tuple[object, ...], now: str
) -> list[Row]:
    """STORE the MOs and emit `mo.received` for each one stored."""
    rows = await tx.fetchall(STORE, params)
    by_id = {mo.gateway_id: mo for mo in reversed(mos)}  # the first of a gateway id
    for row in rows:
        await emit(tx, MO_RECEIVED, mo_event(row["id"], by_id[row["gateway_id"]]), now)
    return rows


def mo_event(message_id: int, mo: IncomingMO) -> dict[str, object]:
    """The data of an MO's `mo.received` event (its thread is found once it is handled)."""
    return {
        "message_id": message_id,
        "gateway_id": mo.gateway_id,
        "handset": mo.source,
        "number": mo.destination,
        "text": mo.content,
        "binary": mo.binary,
        "operator": mo.operator,
        "reply_to": mo.reply_to,
        "reference": mo.reference,
    }


def _mo_values(mo: IncomingMO) -> tuple[object, ...]:
    """An MO's values of MO_COLUMNS."""
    size = measure(mo.content)
    return (
        mo.gateway_id,
        mo.source,
        mo.destination,
        mo.content,
        "base64" if mo.binary else size.name,
        1 if mo.binary else size.segments,
        mo.operator,
        mo.reply_to,
        mo.reference,
        join_flags(mo.flags),
    )
