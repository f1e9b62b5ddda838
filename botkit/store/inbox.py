"""The inbox: MOs stored and waiting to be handled, one claimed at a time per handset."""

from __future__ import annotations

import base64
from collections.abc import Sequence

from ..addresses import OurNumbers
from ..batching import Batcher
from ..clock import Clock, later, parse_stamp
from ..db import Database, Row, Tx
from ..handling import GAVE_UP
from ..messages import IncomingMO, Message, Reply, Thread, join_flags, split_flags
from ..sms import measure
from . import threads
from .base import CLAIMS, Claims, leasable, leasing, lost, marks
from .effects import Effects, commit_all
from .outbox import enqueue

# Batches of handled MOs committed at once: each handset has one MO handled at a time,
# so their order does not matter, and one batch's statements take turns on one
# connection, while the pool has several.
FINISHING = 3


class Inbox(Claims):
    """MOs from their callback to their handler's commit."""

    def __init__(self, db: Database, clock: Clock, owner: str) -> None:
        super().__init__(db, clock, owner)
        self._adding: Batcher[IncomingMO, int | None] = Batcher(self._add_all)
        self._finishing: Batcher[tuple[Message, Effects], tuple[int | None, list[int]]] = Batcher(
            self._finish_all, writers=FINISHING
        )

    async def add(self, mo: IncomingMO) -> int | None:
        """Store an MO and put it in the inbox; None if its gateway id was already stored.
        On PostgreSQL, MOs that come while others are being stored are stored together
        (Batcher). SQLite's writer already commits queued writes in groups: there, a
        batcher would only make each MO wait for the batch before its own."""
        if self.db.shared:
            return await self._adding.add(mo)
        (message_id,) = await self._add_all([mo])
        return message_id

    async def _add_all(self, mos: Sequence[IncomingMO]) -> list[int | None]:
        return await self.db.write(lambda tx: self._insert(tx, mos), urgent=True)

    async def add_claimed(self, mo: IncomingMO, lease: float) -> tuple[int | None, Message | None]:
        """Store an MO as `add` does and, in the same transaction, claim it for `lease`
        seconds if its handset has no other MO waiting or claimed and no timer claimed:
        the dispatcher handles it at once, a commit and a claim sooner.
        Returns its id (None: a duplicate) and the claimed MO (None: it waits its turn).
        For one process only (SQLite): its dispatcher must not be busy with the handset."""

        async def write(tx: Tx) -> tuple[int | None, Row | None]:
            (message_id,) = await self._insert(tx, [mo])
            if message_id is None:
                return None, None
            now = self.now()
            claimed = await tx.execute(
                """UPDATE inbox SET claimed_until = ?, claimed_by = ?, attempts = 1
                   WHERE message_id = ?
                     AND NOT EXISTS (SELECT 1 FROM inbox o WHERE o.handset = ?
                                     AND o.message_id != ?)
                     AND NOT EXISTS (SELECT 1 FROM timers t WHERE t.handset = ?
                                     AND t.claimed_until >= ?)""",
                (later(self.clock, lease), self.owner, message_id, mo.source, message_id,
                 mo.source, now),
            )  # fmt: skip
            if not claimed:
                return message_id, None
            row = await tx.fetchone("SELECT * FROM messages WHERE id = ?", (message_id,))
            return message_id, row

        message_id, row = await self.db.write(write, urgent=True)
        return message_id, None if row is None else message_from_row(row)

    async def _insert(self, tx: Tx, mos: Sequence[IncomingMO]) -> list[int | None]:
        """Insert MOs and their inbox rows (a statement each; on PostgreSQL, one for both);
        an MO's id, or None if its gateway id was already stored (or came earlier in
        `mos`)."""
        # One handset's MOs are numbered in the order they commit, at any process.
        await tx.lock(*(f"handset {mo.source}" for mo in mos))
        now = self.now()
        insert = f"""INSERT INTO messages (direction, gateway_id, handset, address, content,
                encoding, segments, operator, reply_to, reference, flags, status,
                created_at, updated_at)
            VALUES {", ".join([MO_ROW] * len(mos))}
            ON CONFLICT (gateway_id) WHERE direction = 'mo' DO NOTHING
            RETURNING id, gateway_id, handset"""
        if tx.writing_with:  # and their inbox rows in the same statement: a round trip less
            insert = f"""WITH stored AS ({insert}),
                queued AS (INSERT INTO inbox (message_id, handset)
                           SELECT id, handset FROM stored)
                SELECT id, gateway_id FROM stored"""
        stored = await tx.fetchall(insert, [value for mo in mos for value in _mo_values(mo, now)])
        # Rows are numbered in the order of `mos`; a gateway id twice in them is one row.
        new = {row["gateway_id"]: row["id"] for row in stored}
        ids = [new.pop(mo.gateway_id, None) for mo in mos]
        queued = [(i, mo.source) for i, mo in zip(ids, mos, strict=True) if i is not None]
        if queued and not tx.writing_with:
            rows = ", ".join(["(?, ?)"] * len(queued))
            await tx.execute(
                f"INSERT INTO inbox (message_id, handset) VALUES {rows}",
                [value for row in queued for value in row],
            )
        return ids

    async def claim(self, limit: int, lease: float, exclude: Sequence[str] = ()) -> list[Message]:
        """Claim the oldest unhandled MO of up to `limit` handsets that have none claimed.

        A claim is a lease: if its holder dies, the MO is claimed again after `lease`
        seconds. Handsets in `exclude` are being handled by this process already; those
        with an MO or a timer claimed (by any process, an older MO that committed late
        included) wait for it.
        """

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

        return [message_from_row(row) for row in await self.db.write(write)]

    async def _give_up(self, tx: Tx, message_id: int, attempts: int) -> None:
        """Mark an MO failed that no attempt could commit, unless its last holder (past
        its lease) commits it first: whichever takes the inbox row first wins."""
        now = self.now()
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
            await self._release(tx, [message.id for message, _ in handled])
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
            await self._release(tx, [message.id])
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

    async def _release(self, tx: Tx, message_ids: Sequence[int]) -> None:
        """Take MOs out of the inbox, first thing in the transaction that commits their
        handling: ClaimLost if this process no longer holds the claim of one. (The rows
        stay locked until the commit: a process taking a claim over waits, then finds
        it gone.)"""
        released = await tx.fetchall(
            f"""DELETE FROM inbox WHERE message_id IN ({marks(message_ids)}) AND claimed_by = ?
                RETURNING message_id""",
            (*message_ids, self.owner),
        )
        if len(released) < len(message_ids):
            gone = set(message_ids).difference(row[0] for row in released)
            raise lost("inbox", min(gone))

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


# One MO's row of `Inbox._insert`'s INSERT, and its values.
MO_ROW = "('mo', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'received', ?, ?)"


def _mo_values(mo: IncomingMO, now: str) -> tuple[object, ...]:
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
        now,
        now,
    )
