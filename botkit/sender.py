"""The sender: drains the outbox through the gateway client, at the configured rate.

Each MT is marked `sending` (committed) before its request goes out. The answer
then decides: an id -> accepted; a permanent refusal -> failed, with the gateway's
text; a failure that surely never reached the gateway -> queued again with backoff;
one that may have reached it -> uncertain, settled by its DLR rather than resent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from .batching import Batcher
from .clock import parse_stamp
from .db import DatabaseError
from .departures import Unlogged
from .errors import AuthenticationError, GatewayError, TransientError, ValidationError
from .messages import Outgoing
from .metrics import Metrics
from .store import Store
from .worker import Worker

if TYPE_CHECKING:
    from .gateway import Gateway
    from .gateway_process import ChildDepartures, GatewayProcess

log = logging.getLogger("botkit.sender")

POLL_SECONDS = 1.0
# How often an idle sender of a shared database settles MTs that a process which died
# left `sending` (their leases ran out).
SETTLE_SECONDS = 2.0
# Recording a gateway's answer is retried this many times, backing off up to the cap.
RECORD_ATTEMPTS, RECORD_BACKOFF, RECORD_BACKOFF_CAP = 8, 0.1, 10.0


def backoff(attempts: int, base: float = 2.0, cap: float = 300.0) -> float:
    """Seconds before attempt `attempts + 1`: doubling from `base`, at most `cap`."""
    return min(cap, base * 2 ** max(0, attempts - 1))


class Sender(Worker):
    """Sends queued MTs, `rate` per second at most, up to `concurrency` at once."""

    name = "sender"

    def __init__(
        self,
        store: Store,
        gateway: Gateway | GatewayProcess,
        *,
        rate: float,
        resend_uncertain: bool = False,
        concurrency: int = 32,
        max_attempts: int = 8,
        retry_base: float = 2.0,
        lease: float = 120.0,
        default_number: str,
        metrics: Metrics | None = None,
        departures: ChildDepartures | None = None,
    ) -> None:
        super().__init__()
        self.metrics = metrics or Metrics()
        self.store = store
        self.gateway = gateway
        self.interval = 1.0 / rate  # between two requests, across the deployment
        self._next_settle = 0.0
        self.resend_uncertain = resend_uncertain
        self.max_attempts = max_attempts
        self.retry_base = retry_base
        self.lease = lease
        self.default_number = default_number  # where the gateway sends MTs naming a class
        self._slots = asyncio.Semaphore(concurrency)
        self._accepted: Batcher[tuple[int, int], None] = Batcher(self._record_accepted)
        self.departures = departures  # the gateway process's log of requests that left

    async def _run(self) -> None:
        while True:
            await self._slots.acquire()
            self.ready()
            await self._settle_expired()  # busy or not: a dead sender's MTs hold up handsets
            # As many MTs as there are free slots, claimed together. A crash before their
            # requests leave leaves them all `sending`: the departure log tells the next
            # start which never left, to send them then (botkit/departures.py). Without
            # one (no log, or on PostgreSQL, whose MTs such a crash leaves uncertain),
            # one MT a round on SQLite: its request leaves before the next is claimed.
            free = 1
            while self._batched() and not self._slots.locked():
                await self._slots.acquire()  # free: returns at once
                free += 1
            try:
                # Paced first, then claimed: the database hands out the send slots, so that
                # every process shares one rate, and an MT is claimed only when its request
                # can leave at once, never left `sending` while it waits for a slot.
                due = await self.store.db.pace(self.interval, free)
            except DatabaseError as exc:
                log.error("could not take a send slot: %s", exc)
                self._release(free)
                await self.sleep(POLL_SECONDS)
                continue
            batch = await self._claim(due)
            self._release(free - len(batch))
            for outgoing in batch:  # before the slots' giving back: a round trip to wait
                self.spawn(self._send(outgoing))
            if len(batch) < due:
                await self._unpace(due - len(batch))
            if not batch:
                await self.sleep(await self._idle_seconds())

    def _batched(self) -> bool:
        """Whether to claim many MTs at a time (see `_run`)."""
        logging_departures = self.departures is not None and self.departures.active
        return logging_departures or self.store.db.shared

    def _release(self, count: int) -> None:
        for _ in range(count):
            self._slots.release()

    async def _unpace(self, count: int) -> None:
        """Give back send slots taken for MTs there were not."""
        try:
            await self.store.db.unpace(self.interval, count)
        except DatabaseError as exc:  # the rate then runs a little slow for a moment
            log.error("could not give back %d send slots: %s", count, exc)

    async def _claim(self, limit: int) -> list[Outgoing]:
        """Claim up to `limit` due MTs. A stop during the claim's commit must not leave
        them `sending` (the next start would take them for uncertain): they are given back."""
        claim = asyncio.ensure_future(
            self.store.outbox.claim(limit, self.lease, self.default_number)
        )
        try:
            return await asyncio.shield(claim)
        except DatabaseError as exc:
            log.error("could not claim MTs: %s", exc)
            return []
        except asyncio.CancelledError:
            # The stop goes on whatever the claim's commit does: a DatabaseError raised
            # here instead would be taken for a failed claim, and the loop would run on.
            with contextlib.suppress(DatabaseError):  # not committed: nothing to give back
                for outgoing in await claim:
                    await self._give_back(outgoing.id)
            raise

    async def _give_back(self, message_id: int) -> None:
        """Release a claimed MT whose request never left (the sender stops). When the
        database refuses, it stays `sending` until settled (its lease runs out, or the
        next start): the stop may not fail for that."""
        try:
            await self.store.outbox.release(message_id)
        except DatabaseError as exc:
            log.error("mt %s: not given back, left sending: %s", message_id, exc)

    async def _settle_expired(self) -> None:
        """On a shared database, now and then: MTs whose sender died while sending."""
        if not self.store.db.shared or time.monotonic() < self._next_settle:
            return
        self._next_settle = time.monotonic() + SETTLE_SECONDS
        try:
            settled = await self.store.outbox.recover(
                resend_uncertain=self.resend_uncertain, expired=True
            )
        except DatabaseError as exc:
            log.error("could not settle MTs left sending: %s", exc)
            return
        if settled:
            log.warning("%d MTs left sending by a process that stopped: settled", settled)

    async def _idle_seconds(self) -> float:
        due = await self.store.outbox.next_due()
        if due is None:
            return POLL_SECONDS
        return min(POLL_SECONDS, max(0.0, (parse_stamp(due) - self.store.clock()).total_seconds()))

    async def _send(self, mt: Outgoing) -> None:
        """Send one claimed MT and record the gateway's answer. Its gateway slot is free
        once the gateway has answered; the MT stays `sending` until the answer is
        committed, so no claim takes it again and its handset's next MT waits for it.
        The departure log, if any, learns of the request as it leaves (the gateway
        process writes it) and of its outcome once committed."""
        try:
            record = await self._request(mt)
        finally:
            self._slots.release()
        if await self._write(mt, record) and self.departures is not None:
            self.departures.settled(mt.id)
        self.wake()  # the handset's next MT may be due now

    async def _request(self, mt: Outgoing) -> Callable[[], Awaitable[None]]:
        """Make the MT's request; return how to record its outcome."""
        started = time.perf_counter()
        try:
            gateway_id = await self.gateway.send(
                mt.destination,
                mt.content,
                message_class=mt.message_class,
                source=mt.source,
                mask=mt.mask,
                reference=mt.reference,
                expires=mt.expires,
                message_id=mt.id,
            )
        except ValidationError as exc:  # refused before any request left
            return self._failure(mt, exc, None)
        except Unlogged as exc:  # held back: its departure could not be logged
            delay = backoff(mt.attempts, self.retry_base)
            log.error("mt %s: not sent, retry in %.0fs: %s", mt.id, delay, exc)
            error = f"not sent: {exc}"
            return lambda: self.store.outbox.retry_later(mt.id, error, delay)
        except GatewayError as exc:
            return self._failure(mt, exc, self._timed(started))
        except Exception as exc:
            fields = _fields(mt, "mt.uncertain", self._timed(started))
            self.metrics.mt_attempts["uncertain"].inc()
            log.exception("mt %s: unexpected failure while sending", mt.id, extra=fields)
            error = f"{type(exc).__name__} while sending"
            return lambda: self.store.outbox.uncertain(mt.id, error)
        fields = _fields(mt, "mt.accepted", self._timed(started))
        self.metrics.mt_attempts["accepted"].inc()
        log.info(
            "mt %s to %s from %s: accepted as %s (%.1f ms)",
            mt.id,
            mt.destination,
            mt.address,
            gateway_id,
            fields["elapsed_ms"],
            extra={**fields, "gateway_id": gateway_id},
        )
        return lambda: self._accepted.add((mt.id, gateway_id))

    async def _record_accepted(self, accepted: Sequence[tuple[int, int]]) -> list[None]:
        """Record MTs the gateway accepted, each `(message id, gateway id)`, together."""
        await self.store.outbox.accepted(accepted)
        return [None] * len(accepted)

    async def _write(self, mt: Outgoing, write: Callable[[], Awaitable[None]]) -> bool:
        """Record an attempt's outcome, retrying while the database refuses: the gateway
        has answered, and forgetting its answer could mean sending the MT twice. Returns
        whether it was recorded."""
        for attempt in range(1, RECORD_ATTEMPTS + 1):
            try:
                await write()
                return True
            except DatabaseError as exc:
                log.error("mt %s: outcome not recorded (try %d): %s", mt.id, attempt, exc)
                await asyncio.sleep(min(RECORD_BACKOFF_CAP, RECORD_BACKOFF * 2**attempt))
        log.critical(
            "mt %s: outcome never recorded; it stays 'sending' and is settled as "
            "uncertain at the next start",
            mt.id,
        )
        return False

    def _timed(self, started: float) -> float:
        """Seconds the gateway request took, counted in the send-latency histogram."""
        seconds = time.perf_counter() - started
        self.metrics.mt_send_seconds.observe(seconds)
        return seconds

    def _failure(
        self, mt: Outgoing, exc: GatewayError | ValidationError, seconds: float | None
    ) -> Callable[[], Awaitable[None]]:
        """Log a failed attempt; return how to settle it: uncertain, queued again with
        backoff, or failed."""
        text = exc.text if isinstance(exc, GatewayError) else str(exc)
        retryable = isinstance(exc, TransientError | AuthenticationError)
        uncertain = isinstance(exc, TransientError) and exc.may_have_been_accepted
        if uncertain and not self.resend_uncertain:
            self._log_failure(logging.WARNING, mt, "uncertain", exc, seconds)
            return lambda: self.store.outbox.uncertain(mt.id, text)
        if retryable and mt.attempts < self.max_attempts:
            delay = backoff(mt.attempts, self.retry_base)
            self._log_failure(logging.WARNING, mt, "retried", exc, seconds, retry_in_s=delay)
            return lambda: self.store.outbox.retry_later(mt.id, text, delay)
        if retryable:
            text = f"gave up after {mt.attempts} attempts: {text}"
        self._log_failure(logging.ERROR, mt, "failed", exc, seconds)
        return lambda: self.store.outbox.failed(mt.id, text)

    def _log_failure(
        self,
        level: int,
        mt: Outgoing,
        outcome: str,
        exc: GatewayError | ValidationError,
        seconds: float | None,
        retry_in_s: float | None = None,
    ) -> None:
        """Count and log a failed attempt, naming the error without the gateway's body."""
        self.metrics.mt_attempts[outcome].inc()
        what = {
            "uncertain": "may have reached the gateway, not resent",
            "retried": f"attempt {mt.attempts} failed, retry in {retry_in_s or 0:.0f}s",
            "failed": f"failed after {mt.attempts} attempt(s)",
        }[outcome]
        error = _describe(exc)
        log.log(
            level,
            "mt %s to %s from %s: %s: %s",
            mt.id,
            mt.destination,
            mt.address,
            what,
            error,
            extra={
                **_fields(mt, f"mt.{outcome}", seconds),
                "error": error,
                "retry_in_s": retry_in_s,
            },
        )


def _fields(mt: Outgoing, event: str, seconds: float | None) -> dict[str, Any]:
    """The log fields of one send attempt (`seconds` its request took, None when none
    left); never the MT's content."""
    return {
        "event": event,
        "message_id": mt.id,
        "thread_id": mt.thread_id,
        "handset": mt.destination,
        "address": mt.address,
        "mask": mt.mask,
        "reference": mt.reference,
        "attempt": mt.attempts,
        "elapsed_ms": None if seconds is None else round(seconds * 1000, 1),
    }


def _describe(exc: GatewayError | ValidationError) -> str:
    """An error for a log line: its class and HTTP status, not the gateway's body, which
    could quote the request (content included). The database keeps the whole text."""
    if not isinstance(exc, GatewayError):
        return str(exc)
    detail = exc.text if exc.status_code is None else f"HTTP {exc.status_code}"
    return f"{type(exc).__name__} ({detail})"
