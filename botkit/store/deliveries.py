"""Delivery receipts: every DLR kept, and each MT's status moved on by them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..db import Tx
from ..messages import IncomingDLR, delivery_rank, join_flags
from ..threads import echoed_reference
from .base import Part, marks


@dataclass(frozen=True)
class DeliveryOutcome:
    """What a DLR matched: our MT's id, thread and handset (None when it names no MT of
    ours), and whether it was new."""

    message_id: int | None
    new: bool
    thread_id: int | None = None
    handset: str | None = None


class Deliveries(Part):
    """The delivery status history of MTs."""

    async def record(self, dlr: IncomingDLR) -> DeliveryOutcome:
        """Keep a delivery receipt and move its MT's status on; a repeat is kept once.

        The MT is found by gateway id, else by our reference, which also settles an MT
        whose send outcome was unknown; never by a reference cut short. A receipt for no
        MT of ours is kept unmatched, until the sender records the MT as accepted.
        """

        async def write(tx: Tx) -> DeliveryOutcome:
            await lock_gateway_ids(tx, dlr.gateway_id)
            now = self.now()
            mt = await tx.fetchone(
                """SELECT id, thread_id, handset FROM messages
                   WHERE direction = 'mt' AND gateway_id = ?""",
                (dlr.gateway_id,),
            )
            parsed = echoed_reference(dlr.reference, dlr.flags)
            if mt is None and parsed is not None:
                mt = await tx.fetchone(
                    """UPDATE messages SET gateway_id = ?,
                           status = CASE WHEN status IN ('uncertain', 'queued') THEN 'accepted'
                               ELSE status END,
                           updated_at = ?
                       WHERE id = ? AND direction = 'mt' AND reference = ?
                         AND gateway_id IS NULL
                       RETURNING id, thread_id, handset""",
                    (dlr.gateway_id, now, parsed[1], dlr.reference),
                )
                if mt is not None:
                    # The receipt proves the gateway took it: never send it again. One
                    # being sent right now is settled by the sender, which sees the id.
                    await tx.execute(
                        "DELETE FROM outbox WHERE message_id = ? AND state = 'queued'",
                        (mt["id"],),
                    )
            message_id = None if mt is None else mt["id"]
            inserted = await tx.fetchval(
                """INSERT INTO deliveries (gateway_id, status, reference, flags, message_id,
                       received_at)
                   VALUES (?, ?, ?, ?, ?, ?)
                   ON CONFLICT (gateway_id, status) DO NOTHING RETURNING id""",
                (dlr.gateway_id, dlr.status, dlr.reference, join_flags(dlr.flags), message_id, now),
            )
            if mt is None:
                return DeliveryOutcome(None, inserted is not None)
            await refresh(tx, mt["id"], now)
            return DeliveryOutcome(mt["id"], inserted is not None, mt["thread_id"], mt["handset"])

        return await self.db.write(write)


async def lock_gateway_ids(tx: Tx, *gateway_ids: int) -> None:
    """Take turns with every other write that joins receipts to the MTs the gateway gave
    `gateway_ids`: a receipt recorded in one process while another records the MT as
    accepted would otherwise see neither the other's row, and stay unmatched."""
    await tx.lock(*(f"gateway id {gateway_id}" for gateway_id in gateway_ids))


async def adopt(tx: Tx, accepted: Sequence[tuple[int, int]], now: str) -> None:
    """Receipts that came before we knew the MTs' ids (no reference echoed) join them
    now; `accepted` holds each MT's id and gateway id. Without any, an MT's status
    stands as the receipts already its own set it. One read for all of them: receipts
    come first rarely."""
    early = await tx.fetchall(
        f"""SELECT DISTINCT gateway_id FROM deliveries
            WHERE gateway_id IN ({marks(accepted)}) AND message_id IS NULL""",
        [gateway_id for _, gateway_id in accepted],
    )
    waiting = {row[0] for row in early}
    for message_id, gateway_id in accepted:
        if gateway_id in waiting:
            await tx.execute(
                "UPDATE deliveries SET message_id = ? WHERE gateway_id = ? AND message_id IS NULL",
                (message_id, gateway_id),
            )
            await refresh(tx, message_id, now)


async def refresh(tx: Tx, message_id: int, now: str) -> None:
    """Set an MT's delivery status to the furthest along of its receipts (latest on ties).

    Two receipts of one MT recorded at once (by two processes) take turns (tx.lock), and
    the second reads the first's."""
    await tx.lock(f"mt {message_id}")
    rows = await tx.fetchall(
        "SELECT status FROM deliveries WHERE message_id = ? ORDER BY id", (message_id,)
    )
    best: str | None = None
    for (status,) in rows:
        if delivery_rank(status) >= delivery_rank(best):
            best = status
    if best is not None:
        await tx.execute(
            "UPDATE messages SET delivery = ?, updated_at = ? WHERE id = ?",
            (best, now, message_id),
        )
