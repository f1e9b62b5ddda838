"""The dispatcher: handles stored MOs, one at a time per handset, in arrival order.

An MO goes claim -> find_thread -> route -> handle -> commit. The claim comes from
the store (one claimed inbox row per handset), so order and once-only handling hold
across restarts; different handsets are handled concurrently.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from .context import Context
from .db import DatabaseError
from .messages import Message, Thread
from .router import Route, Router
from .store import Store
from .templates import SMSTemplates
from .threads import find_thread
from .worker import Worker

log = logging.getLogger("botkit.dispatcher")

POLL_SECONDS = 5.0


class Dispatcher(Worker):
    """Claims MOs from the inbox and runs their handlers."""

    name = "dispatcher"

    def __init__(
        self,
        store: Store,
        router: Router,
        templates: SMSTemplates,
        *,
        message_class: str | None,
        source: str | None,
        on_queued: Callable[[], None] = lambda: None,
        concurrency: int = 64,
        lease: float = 60.0,
    ) -> None:
        super().__init__()
        self.store = store
        self.router = router
        self.templates = templates
        self.message_class = message_class
        self.source = source
        self.concurrency = concurrency
        self.lease = lease
        self.on_queued = on_queued
        self._active: set[str] = set()  # handsets whose MO is being handled here
        # Called with the MO and the exception when a handler raises (the test harness
        # re-raises it in the test).
        self.failure_listeners: list[Callable[[Message, Exception], None]] = []

    async def _run(self) -> None:
        while True:
            self.ready()
            claimed = []
            free = self.concurrency - len(self._active)
            if free > 0:
                try:
                    claimed = await self.store.inbox.claim(free, self.lease, list(self._active))
                except DatabaseError as exc:
                    log.error("could not claim MOs: %s", exc)
            for message in claimed:
                self._active.add(message.source)
                self.spawn(self._handle_claimed(message))
            if not claimed:
                await self.sleep(POLL_SECONDS)

    async def _handle_claimed(self, message: Message) -> None:
        try:
            await self.handle(message)
        except DatabaseError as exc:
            # Left claimed: the lease runs out and the MO is handled again.
            log.error("mo %s: could not commit, will retry: %s", message.gateway_id, exc)
        except Exception:
            log.exception("mo %s: dispatcher failed", message.gateway_id)
        finally:
            self._active.discard(message.source)
            self.wake()

    async def handle(self, message: Message) -> None:
        """Find the MO's thread, route it, run the handler, commit what it did."""
        started = time.perf_counter()
        thread = await find_thread(self.store.threads, message)
        route = self.router.route(thread, message.text)
        if route is None:
            log.warning("mo %s: no bot answers it", message.gateway_id)
            await self.store.inbox.finish(message, None, (), message_class=None, source=None)
            return
        ctx = self._context(message, route)
        try:
            await route.handler(ctx)
            ctx.check()
        except Exception as exc:
            log.exception(
                "mo %s from %s: %s handler %s raised",
                message.gateway_id,
                message.source,
                route.bot.name,
                route.handler.__qualname__,
            )
            await self.store.inbox.fail(
                message, f"{type(exc).__name__}: {exc}", thread.id if thread else None
            )
            for listener in self.failure_listeners:
                listener(message, exc)
            return
        closing = [route.closing.id] if route.closing and route.closing.id else []
        mt_ids = await self.store.inbox.finish(
            message,
            ctx.thread,
            ctx.replies,
            message_class=self.message_class,
            source=self.source,
            closing=closing,
        )
        if mt_ids:
            self.on_queued()
        log.info(
            "mo %s from %s: %s %s -> thread %s, %d replies (%.1f ms)",
            message.gateway_id,
            message.source,
            route.bot.name,
            route.kind,
            ctx.thread.id,
            len(mt_ids),
            (time.perf_counter() - started) * 1000,
        )

    def _context(self, message: Message, route: Route) -> Context:
        thread = route.thread or Thread(
            bot=route.bot.name, handset=message.source, address=message.destination
        )
        return Context(message, thread, route.bot, self.router, self.templates)
