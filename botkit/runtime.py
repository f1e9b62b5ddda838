"""The running parts of an app: database, store, gateway client, dispatcher, sender and
webhook sender.

Built when the app is created and started by its lifespan, so that routes can hold
it before the database is open.
"""

from __future__ import annotations

import logging
import secrets
import uuid
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import httpx

from .bot import Bot
from .campaign import sending_from
from .clock import Clock, system_clock
from .compliance import Compliance
from .db import Database, is_url
from .departures import directory_for, read_departures, remove_dead_logs
from .dispatcher import Dispatcher
from .errors import TemplateError, ValidationError
from .gateway import Gateway
from .gateway_process import ChildDepartures, GatewayProcess
from .intake import Intake
from .messages import Reply
from .metrics import Metrics
from .migrations import migrate
from .planner import Planner
from .reloader import Reloader
from .replay import Replay
from .router import Router
from .sender import Sender
from .sessions import login_fingerprint
from .settings import Settings
from .spool import Spool
from .store import Store
from .templates import SMSTemplates
from .throttle import LoginThrottle
from .webhooks.sender import WebhookSender
from .webhooks.subscriptions import Registry

log = logging.getLogger("botkit")


class Runtime:
    """Owns the resources of one app; `start()` opens them, `stop()` closes them."""

    def __init__(
        self,
        settings: Settings,
        bots: Sequence[Bot],
        gateway: Gateway | GatewayProcess,
        *,
        clock: Clock = system_clock,
        reload: bool = False,
    ) -> None:
        self.settings = settings
        self.numbers = settings.our_numbers()
        self.router = Router(bots)
        self.templates = SMSTemplates(settings.templates, auto_reload=reload)
        self.reloader = Reloader(settings.bots, self.install) if reload else None
        self.gateway = gateway
        self.clock = clock
        self.metrics = Metrics()
        self.intake = Intake()  # MO callbacks waiting to be stored
        # Callbacks kept on disk while the database cannot take them.
        self.spool = Spool(settings.spool_folder)
        self.replay: Replay | None = None
        self.planner: Planner | None = None
        self.db: Database | None = None
        self._store: Store | None = None
        self.dispatcher: Dispatcher | None = None
        self.sender: Sender | None = None
        self.webhooks: WebhookSender | None = None
        # Where webhooks are POSTed through (None: the internet; the test harness's
        # receiver for its tests).
        self.webhook_http: httpx.AsyncClient | None = None
        self.secret_key: str | None = settings.secret_key
        self.logins = LoginThrottle()
        self.login_fingerprint: str | None = None

    @property
    def store(self) -> Store:
        if self._store is None:
            raise RuntimeError("the app is not started (its lifespan has not run)")
        return self._store

    def install(self, router: Router) -> None:
        """Route from now on with `router` (new bots after a reload)."""
        self.router = router
        if self._store is not None:
            self._store.contacts.fields = router.fields
            self._store.contacts.campaigns = sending_from(router.campaigns, self.numbers)
        if self.planner is not None:
            self.planner.wake()  # a campaign changed by the reload is planned anew
        if self.dispatcher is not None:
            self.dispatcher.router = router

    def _departures_directory(self) -> Path | None:
        """Where the sender logs its MTs' departures (botkit/departures.py): beside a
        SQLite file, when a gateway process's own sockets make its requests (None: no
        log, and a crash leaves the MTs it interrupts uncertain)."""
        if is_url(self.settings.db) or not isinstance(self.gateway, GatewayProcess):
            return None
        if not self.gateway.reports_departures:
            return None
        return directory_for(self.settings.db)

    def stopped_workers(self) -> list[str]:
        """The workers (and the database writer) that should run but do not."""
        workers = [
            self.dispatcher,
            self.sender,
            self.webhooks,
            self.replay,
            self.planner,
            self.reloader,
        ]
        stopped = [w.name for w in workers if w is not None and not w.alive]
        if self.db is not None and not self.db.writing:
            stopped.append("database writer")
        return stopped

    async def start(self) -> None:
        """Open the database, migrate it, open the spool, settle what a previous run
        left, start workers."""
        self.db = await Database.open(self.settings.db)
        await migrate(self.db)
        self._store = Store(self.db, self.clock)
        self._store.contacts.fields = self.router.fields
        self._store.contacts.zone = self.settings.zone
        self._store.contacts.campaigns = sending_from(self.router.campaigns, self.numbers)
        # The spool's records name the database they are for by its id, not its URL.
        database_id = await self._store.meta.get_or_create("database_id", lambda: str(uuid.uuid4()))
        try:
            await self.spool.open(database_id)
        except OSError as exc:
            raise ValidationError(
                "BOTKIT_SPOOL", f"{self.spool.folder} cannot be a spool folder: {exc.strerror}"
            ) from None
        await self._store.lists.declare(
            name for bot in self.router.bots.values() for name in bot.lists
        )
        if self.secret_key is None:
            self.secret_key = await self._store.meta.get_or_create(
                "secret_key", lambda: secrets.token_urlsafe(32)
            )
        self.login_fingerprint = await login_fingerprint(self.settings, self.secret_key)
        departures = self._departures_directory()
        departed = read_departures(departures) if departures is not None else {}
        released, requeued, unsettled = await self._store.recover(
            resend_uncertain=self.settings.resend_uncertain, departed=departed
        )
        if unsettled and not self.settings.resend_uncertain:
            self.metrics.mt_attempts["uncertain"].inc(unsettled)
        if released or requeued or unsettled:
            log.warning(
                "recovered from an interrupted run: %d MOs to handle again; of the MTs it "
                "was sending, %d never left (queued again) and %d may have reached the "
                "gateway (%s)",
                released,
                requeued,
                unsettled,
                "queued again" if self.settings.resend_uncertain else "kept uncertain",
                extra={
                    "event": "run.recovered",
                    "mos_released": released,
                    "mts_requeued": requeued,
                    "mts_interrupted": unsettled,
                },
            )
        sender_departures: ChildDepartures | None = None
        if departures is not None:
            remove_dead_logs(departures)  # their MTs are settled now
        if isinstance(self.gateway, GatewayProcess):
            logged = None if departures is None else (departures, self._store.owner)
            await self.gateway.start(logged)
            sender_departures = self.gateway.departures if logged is not None else None
        self.sender = Sender(
            self._store,
            self.gateway,
            rate=self.settings.send_rate,
            resend_uncertain=self.settings.resend_uncertain,
            lease=self.settings.lease,
            default_number=self.numbers.default,
            metrics=self.metrics,
            departures=sender_departures,
        )
        self.dispatcher = Dispatcher(
            self._store,
            self.router,
            self.templates,
            numbers=self.numbers,
            on_queued=self.sender.wake,
            lease=self.settings.lease,
            compliance=Compliance(self.settings, self.templates),
            metrics=self.metrics,
            idle=timedelta(days=self.settings.thread_idle_days),
            zone=self.settings.zone,
            apology=self._apology if self.settings.failed_reply else None,
            intake=self.intake,
        )
        if self.settings.failed_reply:
            self._check_apology()
        self.webhooks = WebhookSender(
            self._store,
            Registry(self.db, self.settings.all_webhooks()),
            http=self.webhook_http,
            metrics=self.metrics,
            lease=self.settings.lease,
        )
        await self.webhooks.refresh()  # before the first MO: its events are written
        self.sender.start()
        self.webhooks.start()
        self.dispatcher.start()
        self.replay = Replay(self.spool, self._store, self.dispatcher, self.metrics)
        self.replay.start()
        self.planner = Planner(self._store.contacts)
        self.planner.start()
        if self.reloader is not None:
            self.reloader.start()

    def _apology(self, language: str | None = None) -> Reply:
        """The reply to an MO whose handler failed: errors/failed.txt, in `language`."""
        variables = {"sender": self.settings.sender_name}
        return self.templates.reply("errors/failed.txt", variables, language)

    def _check_apology(self) -> None:
        """Say at start-up, not at the first failure, that errors/failed.txt is broken."""
        try:
            self._apology()
        except TemplateError as exc:
            log.error("%s: no apology will be sent after a handler fails", exc)

    async def stop(self) -> None:
        """Stop the workers (letting work under way finish), then close everything. A stop
        cut short (cancelled) still closes the database: its threads would keep the
        process from exiting."""
        try:
            if self.reloader is not None:
                await self.reloader.stop()
            if self.replay is not None:
                await self.replay.stop()
            if self.planner is not None:
                await self.planner.stop()
            if self.dispatcher is not None:
                await self.dispatcher.stop()
            if self.sender is not None:
                await self.sender.stop()
            if self.webhooks is not None:
                await self.webhooks.stop()
            await self.gateway.aclose()
        finally:
            await self.spool.close()
            if self.db is not None:
                await self.db.close()
