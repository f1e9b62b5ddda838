"""The dispatcher: handles stored MOs, one at a time per handset, in arrival order.

An MO goes claim -> find_thread -> route -> handle -> commit. The claim comes from
the store (one claimed inbox row per handset), so order and once-only handling hold
across restarts; different handsets are handled concurrently. Timers are claimed the
same way, between a handset's MOs; a thread's on_end hook is one of them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from .addresses import EVERYWHERE, OurNumbers
from .bot import Bot
from .campaign import campaign_of
from .clock import parse_stamp, stamp
from .compliance import BOT as COMPLIANCE_BOT
from .compliance import START, STOP, STOP_ALL, Compliance
from .contacts import Contact
from .context import Context
from .db import DatabaseError
from .intake import Intake
from .logs import elapsed_ms
from .messages import IncomingMO, Message, Reply, Thread, Timer
from .metrics import Metrics
from .router import Route, Router
from .store import Effects, Store
from .store.base import ClaimLost
from .store.schedule import END_HOOK
from .templates import SMSTemplates
from .threads import find_thread
from .worker import Worker

log = logging.getLogger("botkit.dispatcher")

POLL_SECONDS = 5.0
# While MOs keep it busy, the loop claims timers at most this often: a claim is a
# transaction, and every round (every MO handled, under load) would take one.
TIMERS_EVERY = 0.1


class Dispatcher(Worker):
    """Claims MOs from the inbox and runs their handlers."""

    name = "dispatcher"

    def __init__(
        self,
        store: Store,
        router: Router,
        templates: SMSTemplates,
        *,
        numbers: OurNumbers,
        on_queued: Callable[[], None] = lambda: None,
        concurrency: int = 64,
        lease: float = 60.0,
        handler_timeout: float = 30.0,
        compliance: Compliance | None = None,
        metrics: Metrics | None = None,
        idle: timedelta = timedelta(days=7),
        zone: tzinfo = UTC,
        apology: Callable[[str | None], Reply] | None = None,
        intake: Intake | None = None,
    ) -> None:
        super().__init__()
        self.metrics = metrics or Metrics()
        self.store = store
        self.router = router
        self.templates = templates
        self.numbers = numbers
        self.concurrency = concurrency
        self.lease = lease
        # STOP, START and HELP: before any bot, whatever state its thread is in.
        self.compliance = compliance
        # A handler that hangs would hold its handset (and a clean stop) for ever.
        self.handler_timeout = handler_timeout
        self.on_queued = on_queued
        # A thread quiet for longer stops catching MOs that name no thread.
        self.idle = idle
        self.zone = zone  # BOTKIT_TIMEZONE: handlers' naive times and ctx.now()
        # The reply to an MO whose handler failed, in a language (None: no reply).
        self.apology = apology
        # MO callbacks waiting to be stored: while they are many, take on fewer MOs.
        self.intake = intake or Intake()
        self._active: set[str] = set()  # handsets whose MO is being handled here
        self._taking: set[str] = set()  # handsets whose MO store_mo is storing and claiming
        self._timers_at = 0.0  # time.monotonic() from which timers are claimed again
        # time.monotonic() by which MOs are claimed even if none is known to wait: those
        # whose holder died (their leases ran out), at any process.
        self._mos_at = 0.0
        # Called with the MO (or the timer) and the exception when a handler raises (the
        # test harness re-raises it in the test).
        self.failure_listeners: list[Callable[[Message | Timer, Exception], None]] = []

    async def _run(self) -> None:
        while True:
            self.ready()
            # While MO callbacks wait to be stored, timers first: the MOs are the flood.
            timers_first = self.intake.room()[0] is not None
            due = await self._claim_timers() if timers_first else []
            claimed = await self._claim_mos()
            if not timers_first:
                due = await self._claim_timers()
            free, wait = self._room()
            if free <= 0:
                # Woken as a handset's work ends, or when the callbacks let it take on more.
                await self.sleep(wait or POLL_SECONDS)
            elif claimed or due:
                continue
            elif self._active or self._taking:
                # Busy: woken as work ends or MOs come, or when timers or leases are due.
                await self.sleep(max(0.01, min(self._timers_at, self._mos_at) - time.monotonic()))
            else:
                self._timers_at = 0.0  # idle: the next round claims them, however soon
                poll = max(0.01, self._mos_at - time.monotonic())
                await self.sleep(min(poll, await self._idle_seconds()))

    async def _claim_mos(self) -> list[Message]:
        """Claim MOs and start their handling, while any may wait unclaimed (most are
        claimed as they are stored: `store_mo`), and every POLL_SECONDS."""
        free, _ = self._room()
        if free <= 0 or not (self.store.inbox.unclaimed or time.monotonic() >= self._mos_at):
            return []
        self._mos_at = time.monotonic() + POLL_SECONDS
        try:
            claimed = await self.store.inbox.claim(free, self.lease, self._busy())
        except DatabaseError as exc:
            log.error("could not claim MOs: %s", exc)
            return []
        self.intake.started(len(claimed))
        for message in claimed:
            self._active.add(message.source)
            self.spawn(self._handle_claimed(message))
        return claimed

    async def store_mo(self, incoming: IncomingMO) -> int | None:
        """Store an MO from its callback; its id, or None for a duplicate. With one
        process serving the database (SQLite), room here and its handset not busy here,
        it is claimed in the same transaction if it may be (`Inbox.add_claimed`) and
        handled at once: a claim's transaction and a round of the loop sooner. Else the
        loop is woken for it."""
        handset = incoming.source
        taking = self._may_take_on(handset)
        if taking:
            self._taking.add(handset)
            self.intake.started(1)
        # A task of ours (stop() waits for it), so that once committed the MO is handed
        # over, or the loop told of it, even if the callback's request is cancelled.
        storing = self._store_claimed(incoming) if taking else self._store(incoming)
        return await asyncio.shield(self.spawn(storing))

    async def _store(self, incoming: IncomingMO) -> int | None:
        """`store_mo`'s store of an MO it may not claim; the loop is woken for it. If its
        handset is busy here, the MO is claimed once the dispatcher is done with it
        (`Inbox.behind`): a claim before then passes over the handset."""
        message_id = await self.store.inbox.add(incoming)
        if message_id is not None:
            if incoming.source in self._active or incoming.source in self._taking:
                self.store.inbox.behind(incoming.source)
            self.wake()
        return message_id

    def _may_take_on(self, handset: str) -> bool:
        """Whether `store_mo` may claim an MO of `handset` as it stores it. Not on
        PostgreSQL: there, two processes at 500 MO/s took three times as long to reply
        (MO>MT p99) when each handled its MOs as it stored them, as against claiming
        them in batches from the inbox (bench/profile.md, sixteenth session)."""
        if self.store.db.shared or self.stopping or not self.alive:
            return False
        busy = handset in self._active or handset in self._taking
        return not busy and self._room()[0] > 0

    async def _store_claimed(self, incoming: IncomingMO) -> int | None:
        """`store_mo`'s store and claim; then the MO to its handling, or the handset and
        the start taken for it back to the loop."""
        message = None
        try:
            message_id, message = await self.store.inbox.add_claimed(incoming, self.lease)
        finally:
            self._taking.discard(incoming.source)
            if message is None:
                self.intake.unstarted()  # it waits its turn (Inbox.add_claimed says so)
                self.wake()
            else:
                self._active.add(incoming.source)
                self.spawn(self._handle_claimed(message))
        return message_id

    def _busy(self) -> list[str]:
        """The handsets this process is handling, or storing an MO of to handle."""
        return [*self._active, *self._taking]

    def _room(self) -> tuple[int, float]:
        """(How many more MOs or timers to take on now; seconds until the callbacks let
        it take on more, 0.0 when they are not what limits it). Fewer while MO callbacks
        wait to be stored (botkit/intake.py), so that the gateway is answered first."""
        free = self.concurrency - len(self._active) - len(self._taking)
        allowed, wait = self.intake.room()
        if allowed is not None and allowed < free:
            return allowed, wait
        return free, 0.0

    async def _claim_timers(self) -> list[Timer]:
        """Claim due timers for the handsets not busy here, and fire them; while busy,
        every TIMERS_EVERY seconds at most, until a claim finds some."""
        free, _ = self._room()
        if free <= 0 or time.monotonic() < self._timers_at:
            return []
        try:
            due = await self.store.timers.claim(free, self.lease, self._busy())
        except DatabaseError as exc:
            log.error("could not claim timers: %s", exc)
            self._timers_at = time.monotonic() + TIMERS_EVERY
            return []
        self._timers_at = 0.0 if due else time.monotonic() + TIMERS_EVERY
        self.intake.started(len(due))
        for timer in due:
            assert timer.handset is not None
            self._active.add(timer.handset)
            self.spawn(self._fire_claimed(timer))
        return due

    async def _idle_seconds(self) -> float:
        """How long to sleep: until the next timer is due, at most POLL_SECONDS."""
        due = await self.store.timers.next_due()
        if due is None:
            return POLL_SECONDS
        wait = (parse_stamp(due) - self.store.clock()).total_seconds()
        return min(POLL_SECONDS, max(0.01, wait))

    async def _fire_claimed(self, timer: Timer) -> None:
        assert timer.handset is not None
        try:
            await self.fire(timer)
        except ClaimLost as exc:
            log.warning("timer %s: %s", timer.id, exc)
        except DatabaseError as exc:
            log.error("timer %s: could not commit, will retry: %s", timer.id, exc)
        except Exception as exc:
            log.exception("timer %s: could not be fired", timer.id)
            await self.store.timers.end(timer, "failed", f"{type(exc).__name__}: {exc}")
        finally:
            self._active.discard(timer.handset)
            self.store.inbox.unclaimed = True  # an MO of its handset may have waited for it
            self.wake()

    async def fire(self, timer: Timer) -> None:
        """Run a due timer's handler in its thread (a campaign event's: in a new one),
        and commit what it did."""
        assert timer.handset is not None
        contact = await self.store.contacts.get(timer.handset)
        if timer.thread_id is None:
            thread = await self._campaign_thread(timer)
            if thread is None:
                log.info("timer %s %r: opted out since, cancelled", timer.id, timer.name)
                await self.store.timers.end(timer, "cancelled", "opted out")
                return
            morning = self._after_quiet(timer, contact)
            if morning is not None:
                log.info(
                    "timer %s %r: in quiet hours, waits until %s", timer.id, timer.name, morning
                )
                await self.store.timers.postpone(timer, morning)
                return
        else:
            thread = await self.store.threads.get(timer.thread_id)
        bot = self.router.bots.get(thread.bot) if thread else None
        if timer.name == END_HOOK:
            handler = bot.end_handler if bot else None
            runnable = thread is not None and thread.status == "closed"
        else:
            handler = bot.timers.get(timer.name) if bot else None
            runnable = thread is not None and thread.status == "open"
        if not runnable or bot is None or handler is None:
            log.warning("timer %s %r: nothing to run it, cancelled", timer.id, timer.name)
            await self.store.timers.end(timer, "cancelled", "no open thread or handler")
            return
        assert thread is not None
        ctx = self._new_context(
            None, thread, bot, contact, timer=timer, end_reason=timer.data.get("reason")
        )
        try:
            async with asyncio.timeout(self.handler_timeout):
                await handler(ctx)
            ctx.check()
        except Exception as exc:
            log.exception("timer %s %r: %s handler raised", timer.id, timer.name, bot.name)
            for listener in self.failure_listeners:  # before the commit, as for an MO
                listener(timer, exc)
            await self.store.timers.end(timer, "failed", f"{type(exc).__name__}: {exc}")
            return
        mt_ids = await self.store.timers.finish(timer, ctx.effects())
        if mt_ids:
            self.on_queued()
        log.info(
            "timer %s %r fired in thread %s: %d replies",
            timer.id,
            timer.name,
            thread.id,
            len(mt_ids),
            extra={"event": "timer.fired", "thread_id": thread.id, "replies": mt_ids},
        )

    async def _campaign_thread(self, timer: Timer) -> Thread | None:
        """The new thread a campaign event fires in, from the campaign's number; None
        if the handset has opted out of it since (an opt-out cancels its events, so only
        one that came as the event was claimed)."""
        assert timer.handset is not None
        address, bot = timer.data["address"], timer.data["bot"]
        if await self.store.consent.suppressed(timer.handset, address):
            return None
        return Thread(bot=bot, handset=timer.handset, address=address)

    def _after_quiet(self, timer: Timer, contact: Contact) -> datetime | None:
        """When a campaign event claimed in its campaign's quiet hours (it came due
        before them, while the app was down or busy) may fire; None: now."""
        name = campaign_of(timer.name)
        campaign = next((c for c in self.router.campaigns if c.name == name), None)
        if campaign is None or campaign.quiet is None:
            return None
        now = self.store.clock()
        morning = campaign.after_quiet(now, contact.zone)
        return morning if morning > now else None

    async def _handle_claimed(self, message: Message) -> None:
        try:
            await self.handle(message)
        except ClaimLost as exc:
            log.warning("mo %s: %s", message.gateway_id, exc)
        except DatabaseError as exc:
            # Left claimed: the lease runs out and the MO is handled again (a few times).
            log.error("mo %s: could not commit, will retry: %s", message.gateway_id, exc)
        except Exception as exc:
            # Not the handler's fault (finding the thread, routing): never retried for
            # ever, never blocking the handset's later messages.
            log.exception("mo %s: could not be handled", message.gateway_id)
            try:
                await self.store.inbox.fail(message, f"{type(exc).__name__}: {exc}")
            except DatabaseError as error:
                # Left claimed: the lease runs out and the MO is tried again.
                log.error("mo %s: could not be marked failed: %s", message.gateway_id, error)
        finally:
            self._active.discard(message.source)
            self.store.inbox.done_with(message.source)
            self.wake()

    async def handle(self, message: Message) -> None:
        """Find the MO's thread, route it, run the handler, commit what it did."""
        started = time.perf_counter()
        outcome = await self._handle(message, started)
        self.metrics.mo_handled[outcome].inc()
        self.metrics.mo_handle_seconds.observe(time.perf_counter() - started)

    async def _handle(self, message: Message, started: float) -> str:
        """Handle one MO; return the outcome to count: handled or failed."""
        self.numbers.notice(message.destination)
        # One spelling of our number, so that its conversations are found however the
        # gateway writes it (the MO's row keeps it as it came).
        message = dataclasses.replace(
            message, destination=self.numbers.spelled(message.destination)
        )
        action = self.compliance.match(message.text) if self.compliance else None
        if action is not None:
            contact = await self.store.contacts.get(message.source)
            await self._comply(message, action, started, contact.language)
            return "handled"
        since = stamp(self.store.clock() - self.idle)
        thread = await find_thread(self.store.threads, message, since)
        route = None
        if thread is None or thread.paused_by is None:
            route = self.router.route(thread, message.text)
        if route is not None and route.thread is None:
            # A fallback looks for a thread active since `since`: find_thread, which
            # looked for one of any bot, found none, so there is none of this bot either.
            if thread is not None or route.kind != "fallback":
                thread = await self._thread_of(route, message, since)
            route = dataclasses.replace(route, thread=thread)
        if thread is not None and thread.paused_by is not None:
            # An operator has the thread: the MO joins it, and no bot answers.
            await self.store.inbox.finish(message, Effects(thread))
            log.info(
                "mo %s from %s: thread %s is with %s, no bot answers",
                message.gateway_id,
                message.source,
                thread.id,
                thread.paused_by,
                extra={**_fields(message, "mo.held", started), "thread_id": thread.id},
            )
            return "handled"
        if route is None:
            await self.store.inbox.finish(message, Effects(None))
            log.warning(
                "mo %s from %s: no bot answers it",
                message.gateway_id,
                message.source,
                extra=_fields(message, "mo.unrouted", started),
            )
            return "handled"
        ctx = self._context(message, route, await self.store.contacts.get(message.source))
        try:
            async with asyncio.timeout(self.handler_timeout):
                await route.handler(ctx)
            ctx.check()
        except Exception as exc:
            await self._fail(message, route, route.thread, exc, started, ctx.language)
            return "failed"
        await self._commit(message, route, ctx, started)
        return "handled"

    async def _thread_of(self, route: Route, message: Message, since: str) -> Thread | None:
        """The open thread of a route to another bot than the MO's thread's: for a
        keyword, the bot's open thread on the number; for a fallback, one still active
        (None: a new thread)."""
        return await self.store.threads.open_for(
            message.source,
            message.destination,
            bot=route.bot.name,
            since=since if route.kind == "fallback" else None,
        )

    async def _comply(
        self, message: Message, action: str, started: float, language: str | None = None
    ) -> None:
        """A compliance word: change consent, end the conversations it stops, confirm (in
        the handset's `language` where the text has a version for it)."""
        assert self.compliance is not None
        everywhere = action == STOP_ALL
        scope = EVERYWHERE if everywhere else message.destination
        already_out = await self.store.consent.suppressed(message.source, scope)
        outcome = self.compliance.outcome(message, action, already_out, language)
        closing = []
        if action in (STOP, STOP_ALL):
            address = None if everywhere else message.destination
            closing = await self.store.threads.open_ids(message.source, address)
        thread = None
        if outcome.reply is not None:
            thread = Thread(
                bot=COMPLIANCE_BOT,
                handset=message.source,
                address=message.destination,
                status="closed",
            )
        effects = Effects(
            thread,
            replies=[outcome.reply] if outcome.reply else [],
            closing=closing,
            consent=outcome.changes,
            numbers=self.numbers,
            on_end=self.router.on_end,
        )
        mt_ids = await self.store.inbox.finish(message, effects)
        if mt_ids:
            self.on_queued()
        log.info(
            "mo %s from %s: %s%s",
            message.gateway_id,
            message.source,
            action,
            " (already opted out)" if already_out and action != START else "",
            extra={**_fields(message, f"mo.{action}", started), "replies": mt_ids},
        )

    async def _fail(
        self,
        message: Message,
        route: Route,
        thread: Thread | None,
        exc: Exception,
        started: float,
        language: str | None = None,
    ) -> None:
        """The handler raised: mark the MO failed, leaving its thread as it was, and
        apologise to the handset (`errors/failed.txt`, in its `language`) unless that is
        turned off."""
        thread_id = thread.id if thread else None
        log.exception(
            "mo %s from %s: %s handler %s raised",
            message.gateway_id,
            message.source,
            route.bot.name,
            route.handler.__qualname__,
            extra={**_fields(message, "mo.failed", started), "thread_id": thread_id},
        )
        if isinstance(exc, TimeoutError):
            error = f"the handler took longer than {self.handler_timeout:g}s"
        else:
            error = f"{type(exc).__name__}: {exc}"
        # Listeners first: once the failure is committed the inbox may look idle, and a
        # harness settling on that must already hold the exception to re-raise.
        for listener in self.failure_listeners:
            listener(message, exc)
        apology = self._apology(message, language)
        where = thread or Thread(
            bot=route.bot.name, handset=message.source, address=message.destination
        )
        if await self.store.inbox.fail(message, error, where, apology, self.numbers):
            self.on_queued()

    def _apology(self, message: Message, language: str | None) -> Reply | None:
        """The apology for a failed MO; None when it is off, or cannot be rendered (a
        broken errors/failed.txt is logged, and the MO keeps its handler's error)."""
        if self.apology is None:
            return None
        try:
            return self.apology(language)
        except Exception:
            log.exception("mo %s: no apology sent: errors/failed.txt failed", message.gateway_id)
            return None

    async def _commit(self, message: Message, route: Route, ctx: Context, started: float) -> None:
        """Commit what the handler did: thread, state, replies queued, MO handled."""
        effects = ctx.effects()
        mt_ids = await self.store.inbox.finish(message, effects)
        if mt_ids:
            self.on_queued()
        fields = _fields(message, "mo.handled", started)
        log.info(
            "mo %s from %s: %s %s -> thread %s, %d replies (%.1f ms)",
            message.gateway_id,
            message.source,
            route.bot.name,
            route.kind,
            ctx.thread.id,
            len(mt_ids),
            fields["elapsed_ms"],
            extra={
                **fields,
                "thread_id": ctx.thread.id,
                "bot": route.bot.name,
                "route": route.kind,
                "replies": mt_ids,
            },
        )

    def _context(self, message: Message, route: Route, contact: Contact) -> Context:
        thread = route.thread or Thread(
            bot=route.bot.name, handset=message.source, address=message.destination
        )
        return self._new_context(message, thread, route.bot, contact)

    def _new_context(
        self, message: Message | None, thread: Thread, bot: Bot, contact: Contact, **extra: Any
    ) -> Context:
        return Context(
            message,
            thread,
            bot,
            self.templates,
            now=self.store.clock(),
            numbers=self.numbers,
            keywords=self.router.keywords,
            on_end=self.router.on_end,
            zone=self.zone,
            lists=self.store.lists,
            contact=contact,
            contacts=self.store.contacts,
            **extra,
        )


def _fields(message: Message, event: str, started: float) -> dict[str, Any]:
    """The log fields of an MO being handled; never its content."""
    return {
        "event": event,
        "gateway_id": message.gateway_id,
        "message_id": message.id,
        "handset": message.source,
        "elapsed_ms": elapsed_ms(started),
    }
