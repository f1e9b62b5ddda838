"""The storage interface: every read and write of messages, threads, inbox and outbox.

Routing, the sender and the callbacks call these methods and never write SQL of
their own, so that another backend can stand behind the same interface. Once-only
handling and per-handset order are properties of the rows here (a unique key on
the gateway id, one claimed inbox row per handset), not of one process's memory.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass

from .clock import Clock, later, parse_stamp, stamp, system_clock
from .db import Database, Row, Tx
from .messages import (
    IncomingDLR,
    IncomingMO,
    Message,
    Outgoing,
    Reply,
    Thread,
    delivery_rank,
)
from .sms import measure
from .threads import make_reference, parse_reference


@dataclass(frozen=True)
class DeliveryOutcome:
    """What a DLR matched: our MT's id (None when it names no MT of ours), and if it was new."""

    message_id: int | None
    new: bool


class Store:
    """All database access of botkit, over one `Database`."""

    def __init__(self, db: Database, clock: Clock = system_clock) -> None:
        self.db = db
        self.clock = clock

    def now(self) -> str:
        return stamp(self.clock())

    # -- MO: store, claim, finish -------------------------------------------------------

    async def store_mo(self, mo: IncomingMO) -> int | None:
        """Store an MO and put it in the inbox; None if its gateway id was already stored."""

        async def write(tx: Tx) -> int | None:
            now = self.now()
            encoding = "base64" if mo.binary else measure(mo.content).name
            message_id = await tx.fetchval(
                """INSERT INTO messages (direction, gateway_id, handset, address, content,
                       encoding, segments, operator, reply_to, reference, status,
                       created_at, updated_at)
                   VALUES ('mo', ?, ?, ?, ?, ?, ?, ?, ?, ?, 'received', ?, ?)
                   ON CONFLICT (gateway_id) WHERE direction = 'mo' DO NOTHING
                   RETURNING id""",
                (
                    mo.gateway_id,
                    mo.source,
                    mo.destination,
                    mo.content,
                    encoding,
                    1 if mo.binary else measure(mo.content).segments,
                    mo.operator,
                    mo.reply_to,
                    mo.reference,
                    now,
                    now,
                ),
            )
            if message_id is not None:
                await tx.execute(
                    "INSERT INTO inbox (message_id, handset) VALUES (?, ?)",
                    (message_id, mo.source),
                )
            return message_id

        return await self.db.write(write)

    async def claim_mos(
        self, limit: int, lease: float, exclude: Sequence[str] = ()
    ) -> list[Message]:
        """Claim the oldest unhandled MO of up to `limit` handsets that have none claimed.

        A claim is a lease: if its holder dies, the MO is claimed again after `lease`
        seconds. Handsets in `exclude` are being handled by this process already.
        """

        async def write(tx: Tx) -> list[int]:
            now = self.now()
            rows = await tx.fetchall(
                """SELECT i.message_id, i.handset FROM inbox i
                   WHERE i.message_id IN (SELECT min(message_id) FROM inbox GROUP BY handset)
                     AND (i.claimed_until IS NULL OR i.claimed_until < ?)
                   ORDER BY i.message_id LIMIT ?""",
                (now, limit + len(exclude)),
            )
            skip = set(exclude)
            ids = [row[0] for row in rows if row[1] not in skip][:limit]
            if ids:
                marks = ",".join("?" * len(ids))
                await tx.execute(
                    f"""UPDATE inbox SET claimed_until = ?, attempts = attempts + 1
                        WHERE message_id IN ({marks})""",
                    (later(self.clock, lease), *ids),
                )
            return ids

        ids = await self.db.write(write)
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        rows = await self.db.fetchall(
            f"SELECT * FROM messages WHERE id IN ({marks}) ORDER BY id", ids
        )
        return [_message(row) for row in rows]

    async def finish_mo(
        self,
        message: Message,
        thread: Thread | None,
        replies: Sequence[Reply],
        *,
        message_class: str | None,
        source: str | None,
        closing: Sequence[int] = (),
    ) -> list[int]:
        """Commit a handled MO in one transaction: the thread's state and data, the replies
        queued in the outbox, the threads in `closing` closed, the MO marked handled.

        Returns the ids of the queued MTs. A new thread gets its id here.
        """

        async def write(tx: Tx) -> list[int]:
            now = self.now()
            for thread_id in closing:
                await _close_thread(tx, thread_id, now)
            if thread is not None:
                await self._save_thread(tx, thread, now)
            mt_ids = []
            for reply in replies:
                assert thread is not None and thread.id is not None
                mt_ids.append(await self._enqueue(tx, thread, reply, message_class, source, now))
            await tx.execute(
                """UPDATE messages SET status = 'handled', thread_id = ?, updated_at = ?
                   WHERE id = ?""",
                (thread.id if thread else None, now, message.id),
            )
            await tx.execute("DELETE FROM inbox WHERE message_id = ?", (message.id,))
            return mt_ids

        return await self.db.write(write)

    async def fail_mo(self, message: Message, error: str, thread_id: int | None) -> None:
        """Mark an MO failed (its handler raised); the thread is left as it was."""

        async def write(tx: Tx) -> None:
            await tx.execute(
                """UPDATE messages SET status = 'failed', error = ?, thread_id = ?,
                       updated_at = ? WHERE id = ?""",
                (error, thread_id, self.now(), message.id),
            )
            await tx.execute("DELETE FROM inbox WHERE message_id = ?", (message.id,))

        await self.db.write(write)

    async def release_mo(self, message_id: int) -> None:
        """Give back a claim so that the MO is handled again (after a passing failure)."""
        await self.db.write(
            lambda tx: tx.execute(
                "UPDATE inbox SET claimed_until = NULL WHERE message_id = ?", (message_id,)
            )
        )

    async def inbox_depth(self) -> int:
        return await self.db.fetchval("SELECT count(*) FROM inbox")

    # -- threads ------------------------------------------------------------------------

    async def thread(self, thread_id: int) -> Thread | None:
        row = await self.db.fetchone("SELECT * FROM threads WHERE id = ?", (thread_id,))
        return None if row is None else _thread(row)

    async def thread_of_mt(self, gateway_id: int) -> Thread | None:
        """The thread of the MT the gateway knows as `gateway_id`."""
        row = await self.db.fetchone(
            """SELECT t.* FROM messages m JOIN threads t ON t.id = m.thread_id
               WHERE m.direction = 'mt' AND m.gateway_id = ? ORDER BY m.id DESC LIMIT 1""",
            (gateway_id,),
        )
        return None if row is None else _thread(row)

    async def open_thread(self, handset: str, address: str) -> Thread | None:
        """The handset's most recent open thread on `address`."""
        row = await self.db.fetchone(
            """SELECT * FROM threads WHERE handset = ? AND address = ? AND status = 'open'
               ORDER BY id DESC LIMIT 1""",
            (handset, address),
        )
        return None if row is None else _thread(row)

    async def find_thread(self, message: Message) -> Thread | None:
        """The open thread an MO belongs to: the one of the MT it answers (`reply_to`, or
        the `reference` echoed with it), else the handset's open thread on that address."""
        candidates: list[Thread | None] = []
        if message.reply_to is not None:
            candidates.append(await self.thread_of_mt(message.reply_to))
        parsed = parse_reference(message.reference)
        if parsed is not None:
            candidates.append(await self.thread(parsed[0]))
        for thread in candidates:
            if thread is not None and thread.status == "open" and thread.handset == message.source:
                return thread
        return await self.open_thread(message.source, message.destination)

    async def _save_thread(self, tx: Tx, thread: Thread, now: str) -> None:
        data = json.dumps(thread.data, separators=(",", ":"))
        closed_at = now if thread.status == "closed" else None
        if thread.id is None:
            thread.id = await tx.fetchval(
                """INSERT INTO threads (bot, handset, address, state, data, status,
                       created_at, updated_at, closed_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id""",
                (
                    thread.bot,
                    thread.handset,
                    thread.address,
                    thread.state,
                    data,
                    thread.status,
                    now,
                    now,
                    closed_at,
                ),
            )
        else:
            await tx.execute(
                """UPDATE threads SET state = ?, data = ?, status = ?, updated_at = ?,
                       closed_at = coalesce(closed_at, ?)
                   WHERE id = ?""",
                (thread.state, data, thread.status, now, closed_at, thread.id),
            )

    # -- MT: enqueue, claim, outcome ------------------------------------------------------

    async def _enqueue(
        self,
        tx: Tx,
        thread: Thread,
        reply: Reply,
        message_class: str | None,
        source: str | None,
        now: str,
    ) -> int:
        message_id = await tx.fetchval(
            """INSERT INTO messages (direction, thread_id, handset, address, content, encoding,
                   segments, message_class, source, template, status, created_at, updated_at)
               VALUES ('mt', ?, ?, ?, ?, ?, ?, ?, ?, ?, 'queued', ?, ?) RETURNING id""",
            (
                thread.id,
                thread.handset,
                source or thread.address,
                reply.content,
                reply.encoding,
                reply.segments,
                None if source else message_class,
                source,
                reply.template,
                now,
                now,
            ),
        )
        await tx.execute(
            "UPDATE messages SET reference = ? WHERE id = ?",
            (make_reference(thread.id, message_id), message_id),
        )
        await tx.execute(
            "INSERT INTO outbox (message_id, state, next_attempt_at) VALUES (?, 'queued', ?)",
            (message_id, now),
        )
        return message_id

    async def claim_send(self, lease: float) -> Outgoing | None:
        """Take the next due MT and mark it `sending`, committed before it is sent, so
        that after a crash we know its outcome is unknown rather than assume it unsent."""

        async def write(tx: Tx) -> Row | None:
            now = self.now()
            message_id = await tx.fetchval(
                """UPDATE outbox SET state = 'sending', claimed_until = ?,
                       attempts = attempts + 1
                   WHERE message_id = (
                       SELECT message_id FROM outbox
                       WHERE state = 'queued' AND next_attempt_at <= ?
                       ORDER BY next_attempt_at, message_id LIMIT 1)
                   RETURNING message_id""",
                (later(self.clock, lease), now),
            )
            if message_id is None:
                return None
            await tx.execute(
                "UPDATE messages SET status = 'sending', updated_at = ? WHERE id = ?",
                (now, message_id),
            )
            return await tx.fetchone(
                """SELECT m.*, o.attempts FROM messages m JOIN outbox o ON o.message_id = m.id
                   WHERE m.id = ?""",
                (message_id,),
            )

        row = await self.db.write(write)
        if row is None:
            return None
        return Outgoing(
            id=row["id"],
            destination=row["handset"],
            content=row["content"],
            message_class=row["message_class"],
            source=row["source"],
            mask=row["mask"],
            reference=row["reference"],
            expires=row["expires"],
            attempts=row["attempts"],
        )

    async def next_send_due(self) -> str | None:
        """When the earliest queued MT is due, or None when the outbox has none queued."""
        return await self.db.fetchval(
            "SELECT min(next_attempt_at) FROM outbox WHERE state = 'queued'"
        )

    async def outbox_depth(self) -> int:
        return await self.db.fetchval("SELECT count(*) FROM outbox")

    async def mark_accepted(self, message_id: int, gateway_id: int) -> None:
        """The gateway took the MT and gave it `gateway_id`."""

        async def write(tx: Tx) -> None:
            now = self.now()
            await tx.execute(
                """UPDATE messages SET status = 'accepted', gateway_id = ?, error = NULL,
                       uncertain = 0, updated_at = ? WHERE id = ?""",
                (gateway_id, now, message_id),
            )
            await tx.execute("DELETE FROM outbox WHERE message_id = ?", (message_id,))
            # Receipts that came before we knew the id (no reference echoed) join it now.
            await tx.execute(
                """UPDATE deliveries SET message_id = ?
                   WHERE gateway_id = ? AND message_id IS NULL""",
                (message_id, gateway_id),
            )
            await _refresh_delivery(tx, message_id, now)

        await self.db.write(write)

    async def mark_failed(self, message_id: int, error: str) -> None:
        """The gateway refused the MT for good; keep its text."""

        async def write(tx: Tx) -> None:
            await tx.execute(
                "UPDATE messages SET status = 'failed', error = ?, updated_at = ? WHERE id = ?",
                (error, self.now(), message_id),
            )
            await tx.execute("DELETE FROM outbox WHERE message_id = ?", (message_id,))

        await self.db.write(write)

    async def mark_uncertain(self, message_id: int, error: str) -> None:
        """The request may have reached the gateway: do not resend; a DLR will tell."""

        async def write(tx: Tx) -> None:
            # A receipt may already have named it (by reference): then it was accepted.
            await tx.execute(
                """UPDATE messages SET
                       status = CASE WHEN gateway_id IS NULL THEN 'uncertain' ELSE 'accepted' END,
                       error = ?, uncertain = 1, updated_at = ?
                   WHERE id = ?""",
                (error, self.now(), message_id),
            )
            await tx.execute("DELETE FROM outbox WHERE message_id = ?", (message_id,))

        await self.db.write(write)

    async def retry_later(self, message_id: int, error: str, delay: float) -> None:
        """The request surely never reached the gateway: queue it again after `delay`."""

        async def write(tx: Tx) -> None:
            now = self.now()
            await tx.execute(
                """UPDATE outbox SET state = 'queued', claimed_until = NULL,
                       next_attempt_at = ?, last_error = ? WHERE message_id = ?""",
                (later(self.clock, delay), error, message_id),
            )
            await tx.execute(
                "UPDATE messages SET status = 'queued', error = ?, updated_at = ? WHERE id = ?",
                (error, now, message_id),
            )

        await self.db.write(write)

    async def recover(self, *, resend_uncertain: bool) -> tuple[int, int]:
        """At start-up, before any other process of this database runs: free every claim.

        MOs claimed by a process that died are handled again (their effects were never
        committed). MTs that were `sending` may have reached the gateway: they become
        `uncertain`, to be settled by their DLR, unless `resend_uncertain` queues them
        again. Returns (MOs released, MTs made uncertain or requeued).
        """

        async def write(tx: Tx) -> tuple[int, int]:
            now = self.now()
            mos = await tx.execute(
                "UPDATE inbox SET claimed_until = NULL WHERE claimed_until IS NOT NULL"
            )
            sending = [
                row[0]
                for row in await tx.fetchall(
                    "SELECT message_id FROM outbox WHERE state = 'sending'"
                )
            ]
            for message_id in sending:
                if resend_uncertain:
                    await tx.execute(
                        """UPDATE outbox SET state = 'queued', claimed_until = NULL
                           WHERE message_id = ?""",
                        (message_id,),
                    )
                    await tx.execute(
                        "UPDATE messages SET status = 'queued', uncertain = 1 WHERE id = ?",
                        (message_id,),
                    )
                else:
                    await tx.execute(
                        """UPDATE messages SET status = CASE WHEN gateway_id IS NULL
                               THEN 'uncertain' ELSE 'accepted' END,
                               uncertain = 1, error = 'interrupted while sending',
                               updated_at = ?
                           WHERE id = ?""",
                        (now, message_id),
                    )
                    await tx.execute("DELETE FROM outbox WHERE message_id = ?", (message_id,))
            return mos, len(sending)

        return await self.db.write(write)

    # -- DLR ------------------------------------------------------------------------------

    async def record_dlr(self, dlr: IncomingDLR) -> DeliveryOutcome:
        """Keep a delivery receipt and move its MT's status on; a repeat is kept once.

        The MT is found by gateway id, else by our reference, which also settles an MT
        whose send outcome was unknown. A receipt for no MT of ours is kept unmatched.
        """

        async def write(tx: Tx) -> DeliveryOutcome:
            now = self.now()
            message_id = await tx.fetchval(
                "SELECT id FROM messages WHERE direction = 'mt' AND gateway_id = ?",
                (dlr.gateway_id,),
            )
            parsed = parse_reference(dlr.reference)
            if message_id is None and parsed is not None:
                message_id = await tx.fetchval(
                    """UPDATE messages SET gateway_id = ?,
                           status = CASE WHEN status = 'uncertain' THEN 'accepted'
                               ELSE status END,
                           updated_at = ?
                       WHERE id = ? AND direction = 'mt' AND reference = ?
                         AND gateway_id IS NULL
                       RETURNING id""",
                    (dlr.gateway_id, now, parsed[1], dlr.reference),
                )
            inserted = await tx.fetchval(
                """INSERT INTO deliveries (gateway_id, status, reference, message_id, received_at)
                   VALUES (?, ?, ?, ?, ?)
                   ON CONFLICT (gateway_id, status) DO NOTHING RETURNING id""",
                (dlr.gateway_id, dlr.status, dlr.reference, message_id, now),
            )
            if message_id is not None:
                await _refresh_delivery(tx, message_id, now)
            return DeliveryOutcome(message_id, inserted is not None)

        return await self.db.write(write)


async def _close_thread(tx: Tx, thread_id: int, now: str) -> None:
    await tx.execute(
        """UPDATE threads SET status = 'closed', state = NULL, updated_at = ?, closed_at = ?
           WHERE id = ? AND status = 'open'""",
        (now, now, thread_id),
    )


async def _refresh_delivery(tx: Tx, message_id: int, now: str) -> None:
    """Set an MT's delivery status to the furthest along of its receipts (latest on ties)."""
    rows = await tx.fetchall(
        "SELECT status FROM deliveries WHERE message_id = ? ORDER BY id", (message_id,)
    )
    best: str | None = None
    for row in rows:
        if delivery_rank(row[0]) >= delivery_rank(best):
            best = row[0]
    if best is not None:
        await tx.execute(
            "UPDATE messages SET delivery = ?, updated_at = ? WHERE id = ?",
            (best, now, message_id),
        )


def _thread(row: Row) -> Thread:
    return Thread(
        id=row["id"],
        bot=row["bot"],
        handset=row["handset"],
        address=row["address"],
        state=row["state"],
        data=json.loads(row["data"]),
        status=row["status"],
    )


def _message(row: Row) -> Message:
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
    )
