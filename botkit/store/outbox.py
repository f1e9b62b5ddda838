"""The outbox: MTs waiting for the gateway, and what became of each request.

An MT is `queued`, then `sending` (committed before its request leaves), then gone
from the outbox once the gateway answered for good: `accepted` with its id, `failed`
with the gateway's text, or `uncertain` when the request may have arrived.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from functools import partial

from ..addresses import OurNumbers
from ..clock import later, parse_stamp
from ..db import DatabaseError, Row, Tx
from ..gateway import parse_rfc3339
from ..messages import Outgoing, Reply, Thread
from ..threads import reference_prefix
from . import deliveries
from .base import Claims, marks
from .ledger import is_suppressed, suppressed

# Puts an MT in the outbox (its row's values follow).
QUEUE = "INSERT INTO outbox (message_id, handset, state, next_attempt_at)"
# An outbox row `o` that no earlier MT to the same handset is waiting ahead of: one being
# retried (it must go first, to keep the order), or one due no later than `o`. An MT held
# for later (a scheduled broadcast, quiet hours) holds up nothing queued after it.
HEAD_OF_HANDSET = """NOT EXISTS (
    SELECT 1 FROM outbox earlier
    WHERE earlier.handset = o.handset AND earlier.message_id < o.message_id
      AND (earlier.attempts > 0 OR earlier.next_attempt_at <= o.next_attempt_at))"""


async def enqueue(
    tx: Tx,
    thread: Thread,
    reply: Reply,
    numbers: OurNumbers,
    now: str,
    *,
    not_before: str | None = None,
    sent_by: str | None = None,
) -> int:
    """Store an MT of `thread` and queue it; its reference names the thread and itself.

    It goes from the thread's number (`numbers` says how the request names it), decided
    here once and stored: the request uses it, and consent is checked against it, now
    and again when it is sent. An MT to a handset that opted out of that number is
    stored `refused`, with the reason, and never queued. `not_before` holds it in the
    outbox; `sent_by` names the operator who wrote it (None: a bot).
    """
    sql, values = _mt(tx, thread, reply, numbers, now, not_before, sent_by)
    row = await tx.fetchone(sql, values)
    assert row is not None  # an INSERT of one row returns it
    if not tx.writing_with and row["status"] == "queued":
        queue = (thread.handset, max(now, not_before or now))
        await tx.execute(f"{QUEUE} VALUES (?, ?, 'queued', ?)", (row["id"], *queue))
    return row["id"]


async def enqueue_all(
    tx: Tx, queueing: Sequence[tuple[Thread, Sequence[Reply], OurNumbers]], now: str
) -> list[list[int]]:
    """`enqueue` each thread's replies, from our `numbers` (a handler's: sent by a bot,
    at once); the ids of each thread's MTs, numbered in the replies' order. Where one
    statement writes the outbox row too (PostgreSQL), the first reply of every thread
    goes in one round trip (`tx.fetchmany`), then the second of those with two, and so on."""
    ids: list[list[int]] = [[] for _ in queueing]
    if not tx.writing_with:
        for queued, (thread, replies, numbers) in zip(ids, queueing, strict=True):
            queued.extend([await enqueue(tx, thread, reply, numbers, now) for reply in replies])
        return ids
    for turn in range(max((len(replies) for _, replies, _ in queueing), default=0)):
        # The replies' statements differ by their consent check: one fetchmany each.
        statements: dict[str, list[tuple[int, tuple[object, ...]]]] = {}
        for i, (thread, replies, numbers) in enumerate(queueing):
            if turn < len(replies):
                sql, values = _mt(tx, thread, replies[turn], numbers, now, None, None)
                statements.setdefault(sql, []).append((i, values))
        for sql, runs in statements.items():
            rows = await tx.fetchmany(sql, [values for _, values in runs])
            for (i, _), row in zip(runs, rows, strict=True):  # an INSERT of one row each
                ids[i].append(row["id"])
    return ids


def _mt(
    tx: Tx,
    thread: Thread,
    reply: Reply,
    numbers: OurNumbers,
    now: str,
    not_before: str | None,
    sent_by: str | None,
) -> tuple[str, tuple[object, ...]]:
    """The statement that stores an MT and its values (see `enqueue`). Where a WITH may
    write (PostgreSQL), it queues the MT too: one round trip, not two."""
    assert thread.id is not None
    origin = numbers.origin(thread.address, mask=reply.mask)
    # One statement numbers it, writes its reference (which holds the id), and decides
    # by the handset's consent whether it is queued or refused.
    if reply.exempt:
        refusing, consent = "FALSE", []
    else:
        refusing, consent = suppressed(thread.handset, (origin.address,))
    insert = f"""INSERT INTO messages (id, reference, direction, thread_id, handset, address,
            content, encoding, segments, message_class, source, mask, template, exempt,
            status, error, expires, sent_by, created_at, updated_at)
        SELECT n.id, ? || n.id, 'mt', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,
               CASE WHEN n.refused THEN 'refused' ELSE 'queued' END,
               CASE WHEN n.refused THEN ? END, ?, ?, ?, ?
        FROM (SELECT {tx.next_id("messages")} AS id, {refusing} AS refused) AS n
        RETURNING id, status"""
    values = (
        reference_prefix(thread.id),
        thread.id,
        thread.handset,
        origin.address,
        reply.content,
        reply.encoding,
        reply.segments,
        origin.message_class,
        origin.source,
        origin.mask,
        reply.template,
        int(reply.exempt),
        REFUSED,
        reply.expires,
        sent_by,
        now,
        now,
        *consent,
    )
    if not tx.writing_with:
        return insert, values
    queue = (thread.handset, max(now, not_before or now))
    return (
        f"""WITH mt AS ({insert}),
                 queued AS ({QUEUE} SELECT id, ?, 'queued', ? FROM mt WHERE status = 'queued')
            SELECT id, status FROM mt""",
        (*values, *queue),
    )


class Outbox(Claims):
    """MTs from their handler's commit to the gateway's answer."""

    async def claim(self, limit: int, lease: float, default: str) -> list[Outgoing]:
        """Take up to `limit` due MTs and mark them `sending`, committed before they are
        sent, so that after a crash we know their outcome is unknown rather than assume
        them unsent.

        Only the oldest MT waiting for a handset is due: a handset gets its messages in
        the order they were queued, even when one of them has to be retried. Senders of
        several processes pass over each other's claims (`skip_locked`). One whose
        handset has opted out of its number since it was queued (or, for an MT that
        names a class, out of `default`, the number the gateway now sends those from)
        is refused instead; one whose expiry has passed fails unsent.

        On PostgreSQL a claim is one statement, a transaction of its own: one round trip
        (`_claim_due`). The few MTs that may not go are settled after it, in a write of
        their own, before any request leaves.
        """

        while True:
            now = self.now()
            until = later(self.clock, lease)
            claim = partial(_claim_due, limit=limit, until=until, owner=self.owner, now=now)
            claimed = await self.db.write(claim, sending=True, single=True)
            if not any(_may_not_go(mt, now) for mt in claimed):
                return [_outgoing(row) for row in claimed]
            settle = partial(
                _settle_unsendable, rows=claimed, now=now, default=default, owner=self.owner
            )
            try:
                rows = await self.db.write(settle, sending=True)
            except DatabaseError:
                # The claim committed: give its MTs back rather than leave them
                # `sending` and unsent until their lease runs out.
                await self._unclaim_all(claimed)
                raise
            if rows:
                return [_outgoing(row) for row in rows]
            # All were refused: the next due ones may go.

    async def _unclaim_all(self, rows: list[Row]) -> None:
        """Give back claimed MTs whose requests never left, if the database lets us
        (else their lease runs out, or the next start settles them)."""

        async def write(tx: Tx) -> None:
            now = self.now()
            for row in rows:
                await _unclaim(tx, row["id"], self.owner, now)

        with contextlib.suppress(DatabaseError):
            await self.db.write(write, sending=True)

    async def release(self, message_id: int) -> None:
        """Give back a claimed MT whose request never left (the sender is stopping)."""

        async def write(tx: Tx) -> None:
            await _unclaim(tx, message_id, self.owner, self.now())

        await self.db.write(write)

    async def requeue_unsent(self, departed: Mapping[str, set[int]]) -> int:
        """At start-up, before `recover`: queue again, as if never claimed, each MT left
        `sending` by a process whose departure log (`departed`: the MTs whose requests
        left, by process) shows that its request never left. Returns how many."""

        async def write(tx: Tx) -> int:
            rows = await tx.fetchall(
                "SELECT message_id, claimed_by FROM outbox WHERE state = 'sending'"
            )
            now = self.now()
            requeued = 0
            for message_id, owner in rows:
                if owner in departed and message_id not in departed[owner]:
                    requeued += await _unclaim(tx, message_id, owner, now)
            return requeued

        return await self.db.write(write)

    async def next_due(self) -> str | None:
        """When the earliest MT that `claim` could take is due; None when there is none."""
        return await self.db.fetchval(
            f"""SELECT min(o.next_attempt_at) FROM outbox o
                WHERE o.state = 'queued' AND {HEAD_OF_HANDSET}"""
        )

    async def depth(self) -> int:
        """How many MTs wait for the gateway."""
        return await self.db.fetchval("SELECT count(*) FROM outbox")

    async def accepted(self, accepted: Sequence[tuple[int, int]]) -> None:
        """The gateway took these MTs, each `(message_id, gateway_id)`: the id it gave.
        Recorded in one transaction: the sender gathers the answers that come while it
        records the last ones."""

        async def write(tx: Tx) -> None:
            await deliveries.lock_gateway_ids(tx, *(gateway_id for _, gateway_id in accepted))
            now = self.now()
            await tx.executemany(
                """UPDATE messages SET status = 'accepted', gateway_id = ?, error = NULL,
                       updated_at = ? WHERE id = ?""",
                [(gateway_id, now, message_id) for message_id, gateway_id in accepted],
            )
            ids = [message_id for message_id, _ in accepted]
            await tx.execute(f"DELETE FROM outbox WHERE message_id IN ({marks(ids)})", ids)
            await deliveries.adopt(tx, accepted, now)

        await self.db.write(write)

    async def failed(self, message_id: int, error: str) -> None:
        """The gateway refused the MT for good; keep its text. (Unless a receipt came
        meanwhile naming it: then it was accepted after all.)"""

        async def write(tx: Tx) -> None:
            if await _known_to_gateway(tx, message_id):
                await _settle_uncertain(tx, message_id, error, self.now())
                return
            await tx.execute(
                "UPDATE messages SET status = 'failed', error = ?, updated_at = ? WHERE id = ?",
                (error, self.now(), message_id),
            )
            await tx.execute("DELETE FROM outbox WHERE message_id = ?", (message_id,))

        await self.db.write(write)

    async def uncertain(self, message_id: int, error: str) -> None:
        """The request may have reached the gateway: do not resend; a DLR will tell."""
        await self.db.write(lambda tx: _settle_uncertain(tx, message_id, error, self.now()))

    async def retry_later(self, message_id: int, error: str, delay: float) -> None:
        """The request surely never reached the gateway: queue it again after `delay`.
        (Unless a receipt came meanwhile naming it: then it was accepted after all.)"""

        async def write(tx: Tx) -> None:
            if await _known_to_gateway(tx, message_id):
                await _settle_uncertain(tx, message_id, error, self.now())
                return
            if not await tx.execute(  # not if its lease ran out and it was settled
                """UPDATE outbox SET state = 'queued', claimed_until = NULL,
                       next_attempt_at = ?, last_error = ?
                   WHERE message_id = ? AND state = 'sending' AND claimed_by = ?""",
                (later(self.clock, delay), error, message_id, self.owner),
            ):
                return
            await tx.execute(
                "UPDATE messages SET status = 'queued', error = ?, updated_at = ? WHERE id = ?",
                (error, self.now(), message_id),
            )

        await self.db.write(write)

    async def recover(self, *, resend_uncertain: bool, expired: bool = False) -> int:
        """MTs left `sending` by a process that died may have reached the gateway. They
        become uncertain, to be settled by their DLR, unless `resend_uncertain` queues
        them again. All of them (at start-up, on a database of one process), or those
        whose lease ran out (`expired`). Returns how many there were."""

        async def write(tx: Tx) -> int:
            now = self.now()
            # Taken out of 'sending' by one statement, so that a sender that answers late
            # or another process settling at the same moment finds them taken.
            rows = await tx.fetchall(
                """UPDATE outbox SET state = 'queued', claimed_until = NULL, claimed_by = NULL
                   WHERE state = 'sending'"""
                + (" AND claimed_until < ?" if expired else "")
                + " RETURNING message_id",
                (now,) if expired else (),
            )
            for (message_id,) in rows:
                if resend_uncertain:
                    await tx.execute(
                        "UPDATE messages SET status = 'queued', uncertain = 1 WHERE id = ?",
                        (message_id,),
                    )
                else:
                    await _settle_uncertain(tx, message_id, "interrupted while sending", now)
            return len(rows)

        # The sender settles expired claims between its slots: on its own connection.
        return await self.db.write(write, sending=expired)


REFUSED = "refused: the handset opted out of messages from this address"


async def _unclaim(tx: Tx, message_id: int, owner: str, now: str) -> int:
    """Undo `owner`'s claim of an MT whose request never left: queued as before it.
    Returns 1, or 0 if `owner` no longer held it."""
    if not await tx.execute(
        """UPDATE outbox SET state = 'queued', claimed_until = NULL, claimed_by = NULL,
               attempts = attempts - 1
           WHERE message_id = ? AND state = 'sending' AND claimed_by = ?""",
        (message_id, owner),
    ):
        return 0
    await tx.execute(
        "UPDATE messages SET status = 'queued', updated_at = ? WHERE id = ?", (now, message_id)
    )
    return 1


def _outgoing(row: Row) -> Outgoing:
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
        thread_id=row["thread_id"],
        address=row["address"],
    )


# Whether the handset of MT `m` has any suppression at all (_settle_unsendable).
ANY_SUPPRESSION = "EXISTS (SELECT 1 FROM suppressions s WHERE s.handset = m.handset)"


async def _claim_due(tx: Tx, limit: int, until: str, owner: str, now: str) -> list[Row]:
    """Claim up to `limit` due MTs (Outbox.claim) and mark them `sending`; their
    messages' rows, oldest first, each with its outbox row's `attempts` and whether its
    handset has any suppression. Where a WITH may write (PostgreSQL), one statement
    claims them, reads them and marks them: one round trip, not three. Consent is read
    as that statement starts: an opt-out that commits meanwhile holds the handset's
    later MTs, not these, as one that commits just after a claim would."""
    claim = f"""UPDATE outbox SET state = 'sending', claimed_until = ?, claimed_by = ?,
            attempts = attempts + 1
        WHERE message_id IN (
            SELECT o.message_id FROM outbox o
            WHERE o.state = 'queued' AND o.next_attempt_at <= ? AND {HEAD_OF_HANDSET}
            ORDER BY o.next_attempt_at, o.message_id LIMIT ?{tx.skip_locked})
        RETURNING message_id, attempts"""
    if tx.writing_with:
        return await tx.fetchall(
            f"""WITH claimed AS ({claim}),
                     marked AS (UPDATE messages SET status = 'sending', updated_at = ?
                                WHERE id IN (SELECT message_id FROM claimed) RETURNING *)
                SELECT m.*, c.attempts, {ANY_SUPPRESSION} AS suppressed
                FROM marked m JOIN claimed c ON c.message_id = m.id ORDER BY m.id""",
            (until, owner, now, limit, now),
        )
    claimed = await tx.fetchall(claim, (until, owner, now, limit))
    if not claimed:
        return []
    ids = [row["message_id"] for row in claimed]
    await tx.execute(
        f"UPDATE messages SET status = 'sending', updated_at = ? WHERE id IN ({marks(ids)})",
        (now, *ids),
    )
    return await tx.fetchall(
        f"""SELECT m.*, o.attempts, {ANY_SUPPRESSION} AS suppressed
            FROM messages m JOIN outbox o ON o.message_id = m.id
            WHERE m.id IN ({marks(ids)}) ORDER BY m.id""",
        ids,
    )


def _may_not_go(mt: Row, now: str) -> bool:
    """Whether a claimed MT may have to be settled unsent (`_settle_unsendable`): its
    handset has some suppression, or its expiry has passed. Opt-outs are rare: only
    such an MT's consent is checked exactly, so a claim costs the same one statement
    however many it takes."""
    suppressed = mt["suppressed"] and not mt["exempt"]
    return bool(suppressed or (mt["expires"] and _expired(mt, now)))


def _expired(mt: Row, now: str) -> bool:
    return parse_rfc3339(mt["expires"]) <= parse_stamp(now)


async def _settle_unsendable(
    tx: Tx, rows: list[Row], now: str, default: str, owner: str
) -> list[Row]:
    """The claimed MTs `rows` (_claim_due's) that may go, oldest first. Settles those
    that must not, still claimed by `owner`: the handset opted out since it was queued
    (refused), or the expiry passed while it waited (failed)."""
    sendable = []
    for mt in rows:
        senders = (mt["address"], mt["source"], default if mt["message_class"] else None)
        if (
            mt["suppressed"]
            and not mt["exempt"]
            and await is_suppressed(tx, mt["handset"], senders)
        ):
            status, error = "refused", REFUSED
        elif mt["expires"] and _expired(mt, now):
            status, error = "failed", f"expired at {mt['expires']} before it could be sent"
        else:
            sendable.append(mt)
            continue
        if await tx.execute(
            "DELETE FROM outbox WHERE message_id = ? AND claimed_by = ?", (mt["id"], owner)
        ):
            await tx.execute(
                "UPDATE messages SET status = ?, error = ?, updated_at = ? WHERE id = ?",
                (status, error, now, mt["id"]),
            )
    return sendable


async def _known_to_gateway(tx: Tx, message_id: int) -> bool:
    """True if a DLR gave this MT a gateway id: the gateway has it."""
    return (
        await tx.fetchval("SELECT gateway_id FROM messages WHERE id = ?", (message_id,))
    ) is not None


async def _settle_uncertain(tx: Tx, message_id: int, error: str, now: str) -> None:
    # A receipt may already have named it by its reference: then it was accepted.
    await tx.execute(
        """UPDATE messages SET
               status = CASE WHEN gateway_id IS NULL THEN 'uncertain' ELSE 'accepted' END,
               error = ?, uncertain = 1, updated_at = ?
           WHERE id = ?""",
        (error, now, message_id),
    )
    await tx.execute("DELETE FROM outbox WHERE message_id = ?", (message_id,))
