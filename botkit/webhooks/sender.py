"""The webhook sender: POSTs the queued events to their webhooks, signed, with retries.

Handlers never wait for it: they only queue rows (store/webhooks.py). It claims due
deliveries, up to `concurrency` at once, and POSTs each one's JSON body with its
signature (signing.py). A 2xx answer delivers it. Anything else (another status, a
redirect, which is not followed, a timeout, a refused connection) is tried again after
the next wait of RETRY_SCHEDULE, give or take JITTER, and the delivery fails after the
last one (about 21 hours after the first); an operator can retry a failed one from the
dashboard. A receiver cannot hold it up: each attempt has ATTEMPT_SECONDS in all, and
only MAX_READ bytes of an answer are read (for the dashboard, when it is an error).
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time
from collections.abc import Sequence

import httpx

from ..db import DatabaseError
from ..metrics import Metrics
from ..store import Store
from ..store.webhooks import Delivery
from ..worker import Worker
from .signing import DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, sign
from .subscriptions import Registry, Webhook

log = logging.getLogger("botkit.webhooks")

# Seconds between an attempt that failed and the next: 10 s, 1 min, 5 min, 30 min, 2 h,
# 6 h, 12 h; then the delivery has failed.
RETRY_SCHEDULE = (10.0, 60.0, 300.0, 1800.0, 7200.0, 21600.0, 43200.0)
JITTER = 0.2  # each wait is 80% to 120% of its value, so retries do not come in herds
CONCURRENCY = 8
TIMEOUT = 10.0  # to connect, and between two reads or writes
ATTEMPT_SECONDS = 15.0  # an attempt in all: a receiver that trickles is cut off
MAX_READ = 1024
POLL_SECONDS = 0.5  # looking for due deliveries, while any webhook is in force
REFRESH_SECONDS = 10.0  # reading the database's webhooks again
USER_AGENT = "botkit-webhooks/1"
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f]+")


class WebhookSender(Worker):
    """Delivers queued events to their webhooks, `concurrency` at once at most."""

    name = "webhooks"

    def __init__(
        self,
        store: Store,
        registry: Registry,
        *,
        http: httpx.AsyncClient | None = None,
        metrics: Metrics | None = None,
        lease: float = 60.0,
        concurrency: int = CONCURRENCY,
        schedule: Sequence[float] = RETRY_SCHEDULE,
        jitter: float = JITTER,
        attempt_seconds: float = ATTEMPT_SECONDS,
    ) -> None:
        super().__init__()
        self.store = store
        self.registry = registry
        self.metrics = metrics or Metrics()
        self.attempt_seconds = attempt_seconds
        self.lease = max(lease, attempt_seconds * 2)  # a claim outlasts its attempt
        self.concurrency = concurrency
        self.schedule = tuple(schedule)
        self.jitter = jitter
        self._own_http = http is None
        self.http = http or httpx.AsyncClient(
            timeout=TIMEOUT,
            follow_redirects=False,
            limits=httpx.Limits(max_connections=concurrency),
        )
        self._busy = 0
        self._refreshed_at = -REFRESH_SECONDS

    @property
    def max_attempts(self) -> int:
        return len(self.schedule) + 1

    async def stop(self) -> None:
        await super().stop()
        if self._own_http:
            await self.http.aclose()

    async def refresh(self) -> None:
        """Read the database's webhooks again."""
        self.registry.load(await self.store.webhooks.stored())
        self._refreshed_at = time.monotonic()

    async def _run(self) -> None:
        while True:
            self.ready()
            try:
                if await self._round():
                    continue
            except DatabaseError as exc:  # away for a while: the events wait in it
                log.warning("webhooks: cannot read the deliveries due: %s", exc)
            await self.sleep(POLL_SECONDS if self.registry.webhooks else REFRESH_SECONDS)

    async def _round(self) -> bool:
        """Start the due deliveries there is room for; whether it started any."""
        if time.monotonic() >= self._refreshed_at + REFRESH_SECONDS:
            await self.refresh()
        free = self.concurrency - self._busy
        if free <= 0 or not await self.store.webhooks.due():
            return False
        claimed = await self.store.webhooks.claim(free, self.lease)
        for delivery in claimed:
            self._busy += 1
            self.spawn(self._deliver(delivery))
        return bool(claimed)

    async def _deliver(self, delivery: Delivery) -> None:
        """Make one attempt and record its outcome."""
        try:
            hook = self.registry.find(delivery.url)
            if hook is None or delivery.event not in hook.events:
                await self._failed(delivery, None, "no webhook subscribes this URL to it now")
                return
            status, error = await self._post(hook, delivery)
            if status is not None and 200 <= status < 300:
                if await self.store.webhooks.record(delivery, state="delivered", status=status):
                    self.metrics.webhooks["delivered"].inc()
            elif delivery.attempts >= self.max_attempts:
                await self._failed(delivery, status, error)
            else:
                await self._retry(delivery, status, error)
        except DatabaseError as exc:
            # Its lease runs out, and it is tried again: once more, maybe, not never.
            log.error("webhook delivery %s: could not record the attempt: %s", delivery.id, exc)
        finally:
            self._busy -= 1
            self.wake()

    async def _retry(self, delivery: Delivery, status: int | None, error: str | None) -> None:
        wait = self.schedule[delivery.attempts - 1]
        wait *= random.uniform(1 - self.jitter, 1 + self.jitter)
        if await self.store.webhooks.record(
            delivery, state="pending", status=status, error=error, retry_in=wait
        ):
            self.metrics.webhooks["retried"].inc()
            log.warning(
                "webhook delivery %s (%s) to %s: attempt %d failed (%s); next in %.0fs",
                delivery.id,
                delivery.event,
                self._shown(delivery),
                delivery.attempts,
                error,
                wait,
                extra={"event": "webhook.retry", "delivery_id": delivery.id},
            )

    async def _failed(self, delivery: Delivery, status: int | None, error: str | None) -> None:
        if await self.store.webhooks.record(delivery, state="failed", status=status, error=error):
            self.metrics.webhooks["failed"].inc()
            log.error(
                "webhook delivery %s (%s) to %s failed after %d attempts: %s",
                delivery.id,
                delivery.event,
                self._shown(delivery),
                delivery.attempts,
                error,
                extra={"event": "webhook.failed", "delivery_id": delivery.id},
            )

    def _shown(self, delivery: Delivery) -> str:
        hook = self.registry.find(delivery.url)
        return hook.shown if hook is not None else "a webhook removed since"

    async def _post(self, hook: Webhook, delivery: Delivery) -> tuple[int | None, str | None]:
        """POST the delivery; its HTTP status, and what went wrong (None: a 2xx)."""
        body = delivery.payload.encode()
        timestamp = int(self.store.clock().timestamp())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "Accept-Encoding": "identity",  # an error's text, read as it comes
            SIGNATURE_HEADER: sign(body, hook.secret, timestamp),
            EVENT_HEADER: delivery.event,
            DELIVERY_HEADER: str(delivery.id),
        }
        try:
            async with (
                asyncio.timeout(self.attempt_seconds),
                self.http.stream("POST", hook.url, content=body, headers=headers) as response,
            ):
                answer = await _first_bytes(response, MAX_READ)
        except TimeoutError:
            return None, f"no whole answer within {self.attempt_seconds:g}s"
        except (httpx.HTTPError, httpx.StreamError, OSError) as exc:
            return None, f"{type(exc).__name__}: {exc}".rstrip(": ")
        status = response.status_code
        if 200 <= status < 300:
            return status, None
        if response.is_redirect:
            return status, f"HTTP {status}: a redirect, which is not followed"
        text = _UNPRINTABLE.sub(" ", answer.decode("utf-8", "replace")).strip()
        return status, f"HTTP {status}: {text}" if text else f"HTTP {status}"


async def _first_bytes(response: httpx.Response, most: int) -> bytes:
    """Up to `most` bytes of the answer's body; the rest is not read."""
    read = b""
    async for chunk in response.aiter_raw():
        read += chunk
        if len(read) >= most:
            break
    return read[:most]
