"""Webhooks in the database: events queued for delivery, their attempts, and the
webhooks added from the command line.

`emit` writes an event in the caller's transaction, one delivery row for each webhook
subscribed to it, so that the event is queued exactly when what caused it commits (and
not at all if that rolls back). Which webhooks those are, it reads from
`tx.subscribers`, in memory: for an event nobody subscribes to it runs no statement.
A sender claims due rows by pushing their `due_at` a lease ahead (several processes
pass over each other's rows: `skip_locked`); a process that dies mid-delivery leaves
its rows due again once the lease runs out. An attempt's outcome is recorded only by
the claim that made it (`claimed_by` and `attempts` unchanged), so a receiver may get
an event twice, never lose one: it tells them apart by the event's `id`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..clock import later
from ..db import Row, Tx
from ..events import EVENTS, SURVEY_COMPLETED, THREAD_ENDED
from .base import Claims

PAGE = 50
STATES = ("pending", "delivered", "failed")
# What of a receiver's answer or error is kept with an attempt.
MAX_ERROR = 200
# A delivery's columns as the dashboard shows it (`sending`: an attempt is under way).
SHOWN = """id, event_id, event, url, state, attempts, due_at, last_status, last_error,
    created_at, updated_at, claimed_by IS NOT NULL AS sending"""


async def emit(tx: Tx, event: str, data: Mapping[str, Any], now: str) -> str | None:
    """Queue `event` with `data` (JSON-safe) for every webhook subscribed to it, in the
    caller's transaction, stamped `now`; the event's id, or None (and no statement) when
    no webhook subscribes to it."""
    if event not in EVENTS:
        raise ValueError(f"unknown webhook event {event!r}: one of {', '.join(EVENTS)}")
    urls = tx.subscribers.get(event)
    if not urls:
        return None
    event_id = f"evt_{uuid.uuid4().hex}"
    payload = {"id": event_id, "type": event, "created_at": now, "data": dict(data)}
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    await tx.executemany(
        """INSERT INTO webhook_deliveries (event_id, event, url, payload, due_at, created_at,
               updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)""",
        [(event_id, event, url, body, now, now, now) for url in urls],
    )
    return event_id


def subscribed(tx: Tx, event: str) -> bool:
    """Whether any webhook subscribes to `event`: a caller whose event's data costs a
    read asks first."""
    return bool(tx.subscribers.get(event))


async def thread_ended(tx: Tx, thread_id: int, reason: str, now: str) -> None:
    """Emit `thread.ended` for a thread that has just ended for `reason`."""
    if not subscribed(tx, THREAD_ENDED):
        return
    row = await tx.fetchone(
        "SELECT id, bot, handset, address FROM threads WHERE id = ?", (thread_id,)
    )
    if row is not None:
        data = {**_thread(row), "bot": row["bot"], "reason": reason}
        await emit(tx, THREAD_ENDED, data, now)


async def survey_completed(tx: Tx, thread_id: int, survey: str, now: str) -> None:
    """Emit `survey.completed` for a respondent who has just completed `survey`, with
    their answers."""
    if not subscribed(tx, SURVEY_COMPLETED):
        return
    thread = await tx.fetchone(
        "SELECT id, handset, address FROM threads WHERE id = ?", (thread_id,)
    )
    answers = await tx.fetchall(
        """SELECT question, value FROM survey_answers WHERE survey = ? AND thread_id = ?
           ORDER BY answered_at, question""",
        (survey, thread_id),
    )
    if thread is not None:
        data = {
            "survey": survey,
            **_thread(thread),
            "answers": {row["question"]: json.loads(row["value"]) for row in answers},
        }
        await emit(tx, SURVEY_COMPLETED, data, now)


def _thread(row: Row) -> dict[str, Any]:
    return {"thread_id": row["id"], "handset": row["handset"], "number": row["address"]}


@dataclass(frozen=True)
class Delivery:
    """An event claimed for delivery to one webhook: `payload` is the body as sent, and
    `attempts` counts this one."""

    id: int
    event_id: str
    event: str
    url: str
    payload: str
    attempts: int


class Webhooks(Claims):
    """The deliveries' queue and the webhooks of the database."""

    async def claim(self, limit: int, lease: float) -> list[Delivery]:
        """Take up to `limit` due deliveries, the longest due first, for `lease` seconds."""
        now = self.now()

        async def write(tx: Tx) -> list[Row]:
            return await tx.fetchall(
                f"""UPDATE webhook_deliveries SET due_at = ?, claimed_by = ?,
                        attempts = attempts + 1, updated_at = ?
                    WHERE id IN (
                        SELECT id FROM webhook_deliveries WHERE state = 'pending'
                          AND due_at <= ? ORDER BY due_at, id LIMIT ?{tx.skip_locked})
                    RETURNING id, event_id, event, url, payload, attempts""",
                (later(self.clock, lease), self.owner, now, now, limit),
            )

        rows = await self.db.write(write, single=True)
        return sorted((Delivery(*row) for row in rows), key=lambda d: d.id)

    async def due(self) -> bool:
        """Whether a delivery is due now (a read, before a claim's write)."""
        found = await self.db.fetchval(
            "SELECT 1 FROM webhook_deliveries WHERE state = 'pending' AND due_at <= ? LIMIT 1",
            (self.now(),),
        )
        return found is not None

    async def record(
        self,
        delivery: Delivery,
        *,
        state: str,
        status: int | None = None,
        error: str | None = None,
        retry_in: float | None = None,
    ) -> bool:
        """Record the outcome of a claimed attempt: `state` (pending again `retry_in`
        seconds from now), its HTTP `status` or `error`. False if the claim was lost
        (its lease ran out and another process took the delivery)."""
        if state not in STATES or (state == "pending") != (retry_in is not None):
            raise ValueError(f"a delivery left {state!r} needs a retry time only if pending")
        now = self.now()
        due = later(self.clock, retry_in) if retry_in is not None else now
        error = None if error is None else error[:MAX_ERROR]

        async def write(tx: Tx) -> bool:
            if not await tx.execute(
                """UPDATE webhook_deliveries SET state = ?, due_at = ?, claimed_by = NULL,
                       last_status = ?, last_error = ?, updated_at = ?
                   WHERE id = ? AND claimed_by = ? AND attempts = ?""",
                (state, due, status, error, now, delivery.id, self.owner, delivery.attempts),
            ):
                return False
            await tx.execute(
                """INSERT INTO webhook_attempts (delivery_id, attempt, status, error,
                       attempted_at) VALUES (?, ?, ?, ?, ?)""",
                (delivery.id, delivery.attempts, status, error, now),
            )
            return True

        return await self.db.write(write)

    async def retry(self, delivery_id: int) -> bool:
        """Queue a failed delivery for one more attempt, now (an operator's retry);
        False if there is no such failed delivery."""
        now = self.now()
        changed = await self.db.write(
            lambda tx: tx.execute(
                """UPDATE webhook_deliveries SET state = 'pending', due_at = ?, updated_at = ?
                   WHERE id = ? AND state = 'failed'""",
                (now, now, delivery_id),
            )
        )
        return changed > 0

    async def page(
        self, state: str | None = None, before: int | None = None, limit: int = PAGE
    ) -> tuple[list[Row], int | None]:
        """Deliveries (in `state`, if given), the latest first, each with whether it is
        being sent now; and the id the next page starts before (None: the last page)."""
        conditions, params = [], []
        if state is not None:
            conditions.append("state = ?")
            params.append(state)
        if before is not None:
            conditions.append("id < ?")
            params.append(before)
        where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        rows = await self.db.fetchall(
            f"SELECT {SHOWN} FROM webhook_deliveries {where} ORDER BY id DESC LIMIT ?",
            [*params, limit + 1],
        )
        more = len(rows) > limit
        rows = rows[:limit]
        return rows, rows[-1]["id"] if more and rows else None

    async def delivery(self, delivery_id: int) -> Row | None:
        """One delivery, with its payload, as `page` reads them."""
        return await self.db.fetchone(
            f"SELECT {SHOWN}, payload FROM webhook_deliveries WHERE id = ?", (delivery_id,)
        )

    async def attempts(self, delivery_id: int) -> list[Row]:
        """Every attempt of a delivery, the first first."""
        return await self.db.fetchall(
            """SELECT attempt, status, error, attempted_at FROM webhook_attempts
               WHERE delivery_id = ? ORDER BY attempt, id""",
            (delivery_id,),
        )

    async def pending(self) -> int:
        """How many deliveries wait to be made (or retried)."""
        return await self.db.fetchval(
            "SELECT count(*) FROM webhook_deliveries WHERE state = 'pending'"
        )

    async def add(self, url: str, secret: str, events: tuple[str, ...]) -> int | None:
        """Store a webhook; its id, or None if one with this URL is stored already."""
        now = self.now()
        return await self.db.write(
            lambda tx: tx.fetchval(
                """INSERT INTO webhooks (url, secret, events, created_at) VALUES (?, ?, ?, ?)
                   ON CONFLICT (url) DO NOTHING RETURNING id""",
                (url, secret, ",".join(events), now),
            )
        )

    async def remove(self, webhook_id: int) -> bool:
        """Forget a stored webhook (its deliveries still due fail: it is gone)."""
        changed = await self.db.write(
            lambda tx: tx.execute("DELETE FROM webhooks WHERE id = ?", (webhook_id,))
        )
        return changed > 0

    async def stored(self) -> list[Row]:
        """The webhooks of the database, the first added first."""
        return await self.db.fetchall(
            "SELECT id, url, secret, events, created_at FROM webhooks ORDER BY id"
        )
