"""The sender: drains the outbox through the gateway client, at the configured rate.

Each MT is marked `sending` (committed) before its request goes out. The answer
then decides: an id -> accepted; a permanent refusal -> failed, with the gateway's
text; a failure that surely never reached the gateway -> queued again with backoff;
one that may have reached it -> uncertain, settled by its DLR rather than resent.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from .clock import parse_stamp
from .db import DatabaseError
from .errors import AuthenticationError, GatewayError, TransientError, ValidationError
from .messages import Outgoing
from .store import Store
from .worker import Worker

if TYPE_CHECKING:
    from .gateway import Gateway

log = logging.getLogger("botkit.sender")

POLL_SECONDS = 1.0


class RateLimiter:
    """Spaces events at least 1/rate seconds apart (no bursts beyond one)."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate
        self._next = 0.0

    async def wait(self) -> None:
        now = time.monotonic()
        slot = max(now, self._next)
        self._next = slot + self.interval
        if slot > now:
            await asyncio.sleep(slot - now)


def backoff(attempts: int, base: float = 2.0, cap: float = 300.0) -> float:
    """Seconds before attempt `attempts + 1`: doubling from `base`, at most `cap`."""
    return min(cap, base * 2 ** max(0, attempts - 1))


class Sender(Worker):
    """Sends queued MTs, `rate` per second at most, up to `concurrency` at once."""

    name = "sender"

    def __init__(
        self,
        store: Store,
        gateway: Gateway,
        *,
        rate: float,
        resend_uncertain: bool = False,
        concurrency: int = 16,
        max_attempts: int = 8,
        retry_base: float = 2.0,
        lease: float = 120.0,
    ) -> None:
        super().__init__()
        self.store = store
        self.gateway = gateway
        self.limiter = RateLimiter(rate)
        self.resend_uncertain = resend_uncertain
        self.max_attempts = max_attempts
        self.retry_base = retry_base
        self.lease = lease
        self._slots = asyncio.Semaphore(concurrency)

    async def _run(self) -> None:
        while True:
            await self._slots.acquire()
            self.ready()
            try:
                outgoing = await self._claim()
            except DatabaseError as exc:
                log.error("could not claim an MT: %s", exc)
                outgoing = None
            if outgoing is None:
                self._slots.release()
                await self.sleep(await self._idle_seconds())
                continue
            # Claimed first, then paced: the request leaves at its slot, and at most one
            # MT waits in `sending` for its slot.
            try:
                await self.limiter.wait()
            except asyncio.CancelledError:
                await asyncio.shield(self.store.outbox.release(outgoing.id))
                raise
            self.spawn(self._send(outgoing))

    async def _claim(self) -> Outgoing | None:
        """Claim the next due MT. A stop during the claim's commit must not leave it
        `sending` (the next start would take it for uncertain): it is given back."""
        claim = asyncio.ensure_future(self.store.outbox.claim(self.lease))
        try:
            return await asyncio.shield(claim)
        except asyncio.CancelledError:
            outgoing = await claim
            if outgoing is not None:
                await self.store.outbox.release(outgoing.id)
            raise

    async def _idle_seconds(self) -> float:
        due = await self.store.outbox.next_due()
        if due is None:
            return POLL_SECONDS
        return min(POLL_SECONDS, max(0.0, (parse_stamp(due) - self.store.clock()).total_seconds()))

    async def _send(self, mt: Outgoing) -> None:
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
            )
        except (GatewayError, ValidationError) as exc:
            await self._record_failure(mt, exc)
        except Exception as exc:
            log.exception("mt %s: unexpected failure while sending", mt.id)
            await self.store.outbox.uncertain(mt.id, f"{type(exc).__name__} while sending")
        else:
            await self.store.outbox.accepted(mt.id, gateway_id)
            log.info(
                "mt %s to %s: accepted as %s (%.1f ms)",
                mt.id,
                mt.destination,
                gateway_id,
                (time.perf_counter() - started) * 1000,
            )
        finally:
            self._slots.release()

    async def _record_failure(self, mt: Outgoing, exc: GatewayError | ValidationError) -> None:
        text = exc.text if isinstance(exc, GatewayError) else str(exc)
        retryable = isinstance(exc, TransientError | AuthenticationError)
        uncertain = isinstance(exc, TransientError) and exc.may_have_been_accepted
        if uncertain and not self.resend_uncertain:
            log.warning("mt %s: may have reached the gateway, not resent: %s", mt.id, text)
            await self.store.outbox.uncertain(mt.id, text)
            return
        if retryable and mt.attempts < self.max_attempts:
            delay = backoff(mt.attempts, self.retry_base)
            log.warning(
                "mt %s: attempt %d failed, retry in %.0fs: %s", mt.id, mt.attempts, delay, text
            )
            await self.store.outbox.retry_later(mt.id, text, delay)
            return
        if retryable:
            text = f"gave up after {mt.attempts} attempts: {text}"
        log.error("mt %s to %s: failed: %s", mt.id, mt.destination, text)
        await self.store.outbox.failed(mt.id, text)
