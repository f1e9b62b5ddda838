"""Testing bots: run them in-process against a temporary database and the simulator.

    from botkit.testing import Harness

    async def test_hello():
        async with Harness(bots="bots", templates="templates") as harness:
            phone = harness.phone("+61400000001")
            (reply,) = await phone.send("HELLO")
            assert reply.template == "hello/ask_name.txt"
            await phone.send("Ada")
            assert phone.last.text.startswith("Nice to meet you, Ada!")
            assert (await phone.thread()).data == {"name": "Ada"}

Everything is real but the clock, which stands still until the test moves it (the
simulator tells an MT's expiry by it too). A handler that raises (a timer's too) fails
the test with its own exception, and a failed expectation shows the whole conversation
so far. The
simulator plays an account with the settings' numbers and class, no masks (a mask shows
only if it is in `masks`) and no number sequence, as the spec's default: MOs name no MT
they answer, unless `number_sequence=True`.

Settings come as `botkit run` reads them: botkit.toml in the current folder (or the file
`config=` names), under the BOTKIT_* environment, under the harness's own keywords. So a
project's `stop_words` or `numbers` hold in its tests too. The harness keeps a few for
itself: a temporary database (unless `db=`), its callback token and send rate, and the
simulator as the gateway: gateway credentials, its URL and the callback allow-list are
ignored wherever they are set, so a shell set up for production runs the tests as usual.
Webhooks (the settings' and the database's) are all delivered to the harness itself,
which checks their signatures and keeps them in `webhooks`; none leaves the process.
"""

from __future__ import annotations

import asyncio
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

from starlette.applications import Starlette

from .app import create_app
from .bot import Bot
from .compliance import BOT as COMPLIANCE_BOT
from .contacts import Contact
from .languages import language_code
from .messages import Thread, Timer
from .runtime import Runtime
from .settings import Settings
from .simulator import Simulator
from .store.contacts import Author
from .webhooks.receiver import ReceivedWebhook, Receiver

__all__ = ["FakeClock", "Harness", "Phone", "ReceivedWebhook", "SentReply"]

SETTLE_TIMEOUT = 10.0
# What the harness leaves out of botkit.toml and BOTKIT_*: it is the gateway's only caller,
# and the simulator is its gateway, whatever the developer's shell has for the real one.
GATEWAY_SETTINGS = ("application", "password", "gateway_url", "callback_allow")


class FakeClock:
    """A clock that stands still until `advance` moves it."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 1, 5, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(
        self, seconds: float = 0, *, minutes: float = 0, hours: float = 0, days: float = 0
    ) -> datetime:
        """Move the clock forward; returns the new time."""
        step = timedelta(seconds=seconds, minutes=minutes, hours=hours, days=days)
        if step < timedelta(0):
            raise ValueError("the clock only moves forward")
        self.now += step
        return self.now


@dataclass(frozen=True)
class SentReply:
    """An MT that reached the handset, with what the bot meant by it, and the number
    (or mask) the handset saw it come from."""

    id: int
    text: str
    template: str | None
    reference: str | None
    thread_id: int | None
    statuses: tuple[str, ...]
    sender: str


class Harness:
    """Runs bots in-process: the app with its lifespan, a temporary SQLite file, the
    simulator as the gateway (DLRs only when a test delivers them, no number sequence
    unless `number_sequence`), a fake clock. `bots` and `templates` are folders (or a list
    of bots), by default those of the settings; other keywords are settings, over
    botkit.toml (or `config`) and the environment."""

    def __init__(
        self,
        bots: str | Path | Sequence[Bot] | None = None,
        templates: str | Path | None = None,
        *,
        config: str | Path = "botkit.toml",
        clock: FakeClock | None = None,
        db: str | Path | None = None,
        raise_errors: bool = True,
        number_sequence: bool = False,
        masks: Sequence[str] = (),
        **settings: Any,
    ) -> None:
        self.clock = clock or FakeClock()
        self.number_sequence = number_sequence
        self.masks = tuple(masks)
        self.raise_errors = raise_errors
        refused = sorted(set(settings) & set(GATEWAY_SETTINGS))
        if refused:
            raise TypeError(f"Harness plays the gateway simulator itself: drop {refused}")
        self._bots = None if bots is None or isinstance(bots, str | Path) else list(bots)
        self._folder = bots if isinstance(bots, str | Path) else None
        self._templates = templates
        self._config = config
        self._db = db
        self._settings = settings
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._lifespan: Any = None
        self._errors: list[Exception] = []
        self._phones: list[Phone] = []
        self.app: Starlette | None = None
        self._receiver = Receiver(lambda: self.runtime.webhooks.registry.webhooks, self.clock)

    async def __aenter__(self) -> Harness:
        self._tmp = tempfile.TemporaryDirectory(prefix="botkit-test-")
        try:
            self.app = create_app(self._load_settings(), bots=self._bots, clock=self.clock)
            self.simulator.default_fate = ()
            self.simulator.number_sequence = self.number_sequence
            self.simulator.masks = self.masks
            self.runtime.webhook_http = self._receiver.client()
            self._lifespan = self.app.router.lifespan_context(self.app)
            await self._lifespan.__aenter__()
        except BaseException:  # bots that do not load, settings refused: nothing left over
            self._tmp.cleanup()
            raise
        assert self.runtime.dispatcher is not None
        self.runtime.dispatcher.failure_listeners.append(
            lambda message, exc: self._errors.append(exc)
        )
        # The campaigns planned for the contacts already there (a database reopened),
        # as `botkit run` plans them soon after it starts.
        assert self.runtime.planner is not None
        async with asyncio.timeout(SETTLE_TIMEOUT):
            await self.runtime.planner.idle.wait()
        return self

    def _load_settings(self) -> Settings:
        """The settings `botkit run` would read here (botkit.toml, then BOTKIT_*, then the
        harness's keywords), with what the harness needs for itself: its own database,
        callback token and send rate, and the simulator as the gateway."""
        assert self._tmp is not None
        forced = {
            "db": str(self._db or Path(self._tmp.name) / "botkit.db"),
            "callback_token": "harness",
            "send_rate": 10_000.0,
        }
        return Settings.load(
            config_file=self._config,
            ignore=GATEWAY_SETTINGS,
            bots=None if self._folder is None else str(self._folder),
            templates=None if self._templates is None else str(self._templates),
            **{**forced, **self._settings},
        )

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._lifespan.__aexit__(exc_type, exc, tb)
        if self.runtime.webhook_http is not None:
            await self.runtime.webhook_http.aclose()
        if self._tmp is not None:
            self._tmp.cleanup()

    @property
    def runtime(self) -> Runtime:
        assert self.app is not None, "use the harness in `async with`"
        return self.app.state.runtime

    @property
    def simulator(self) -> Simulator:
        assert self.app is not None, "use the harness in `async with`"
        return self.app.state.simulator

    @property
    def webhooks(self) -> list[ReceivedWebhook]:
        """Every webhook delivered so far, the first first: each with its `url`, `type`,
        `id`, `data` and whole `payload`, its signature checked."""
        return self._receiver.received

    def phone(self, number: str = "+61400000001", *, language: str | None = None) -> Phone:
        """A simulated handset with this number, whose person reads `language` ("es",
        "pt-br"): its contact's language, set before its first text, so that templates
        are rendered in it where they have a version for it."""
        phone = Phone(self, number, None if language is None else language_code(language))
        self._phones.append(phone)
        return phone

    async def advance(
        self, seconds: float = 0, *, minutes: float = 0, hours: float = 0, days: float = 0
    ) -> None:
        """Move the clock forward and let every worker act on the new time (timers fire,
        retries go out); each phone's replies then include what they sent."""
        self.clock.advance(seconds, minutes=minutes, hours=hours, days=days)
        self.runtime.dispatcher.wake()
        self.runtime.sender.wake()
        self.runtime.webhooks.wake()
        await self.settle()
        for phone in self._phones:  # what the timers sent
            await phone._refresh()

    async def settle(self) -> None:
        """Wait until the campaigns are planned, every stored MO is handled, every due
        timer fired (but those of threads an operator took over), every due MT sent and
        every due webhook delivered.

        It waits as long as the work goes down: it fails only when the work left has not
        fallen below its lowest for SETTLE_TIMEOUT seconds (a handler that hangs, an MT
        that never leaves), so that a thousand messages on a busy machine still settle."""
        loop = asyncio.get_running_loop()
        lowest, deadline = None, loop.time() + SETTLE_TIMEOUT
        while True:
            async with asyncio.timeout(SETTLE_TIMEOUT):  # one look hangs: as stuck
                busy = await self._busy()
            if not busy:
                break
            if lowest is None or busy < lowest:
                lowest, deadline = busy, loop.time() + SETTLE_TIMEOUT
            elif loop.time() > deadline:
                raise TimeoutError(
                    f"not settled: {busy} MOs, MTs and timers still waiting, none done "
                    f"for {SETTLE_TIMEOUT:g}s"
                )
            await asyncio.sleep(0.002)
        self._raise_handler_errors()

    async def _busy(self) -> int:
        """How many MOs, due timers and due MTs are still waiting to be handled or sent,
        and callbacks the simulator has still to make (one it scheduled while the
        database was read, such as the DLR of an MT just accepted, counts)."""
        await self.simulator.drain()
        now = self.runtime.store.inbox.now()
        webhooks = await self.runtime.store.db.fetchval(
            """SELECT count(*) FROM webhook_deliveries
               WHERE state = 'pending' AND (due_at <= ? OR claimed_by IS NOT NULL)""",
            (now,),
        )
        if webhooks:
            self.runtime.webhooks.wake()
        waiting = webhooks + await self.runtime.store.db.fetchval(
            """SELECT (SELECT count(*) FROM inbox)
                    + (SELECT count(*) FROM outbox
                       WHERE state = 'sending' OR next_attempt_at <= ?)
                    + (SELECT count(*) FROM timers t
                       WHERE state = 'pending' AND due_at <= ?
                         AND NOT EXISTS (SELECT 1 FROM threads th  -- taken over
                             WHERE th.id = t.thread_id AND th.paused_by IS NOT NULL))
                """,
            (now, now),
        )
        planner = self.runtime.planner
        planning = planner is not None and not planner.idle.is_set()  # campaigns to plan
        return waiting + self.simulator.pending + planning

    def _raise_handler_errors(self) -> None:
        self._errors += self._receiver.errors  # a webhook whose signature did not hold
        self._receiver.errors.clear()
        if self._errors and self.raise_errors:
            first = self._errors[0]
            self._errors.clear()
            raise first

    async def replies_to(self, number: str) -> list[SentReply]:
        """Every MT the handset received, oldest first, with its template and thread (not
        one that expired: it never reached the handset)."""
        sent = self.simulator.inbox(number)
        if not sent:
            return []
        marks = ",".join("?" * len(sent))
        rows = await self.runtime.store.db.fetchall(
            f"""SELECT gateway_id, template, thread_id FROM messages
                WHERE direction = 'mt' AND gateway_id IN ({marks})""",
            [m.id for m in sent],
        )
        known = {row["gateway_id"]: row for row in rows}
        return [
            SentReply(
                id=m.id,
                text=m.content,
                template=known[m.id]["template"] if m.id in known else None,
                reference=m.reference,
                thread_id=known[m.id]["thread_id"] if m.id in known else None,
                statuses=tuple(m.statuses),
                sender=m.sender,
            )
            for m in sent
        ]


class Phone:
    """One handset: texts the bots, keeps what it got back."""

    def __init__(self, harness: Harness, number: str, language: str | None = None) -> None:
        self.harness = harness
        self.number = number
        self.replies: list[SentReply] = []
        self._log: list[tuple[str, str]] = []
        self._language = language  # to set on the contact, before anything else

    async def _introduce(self) -> None:
        """Set the contact's language that `Harness.phone` was given, once."""
        if self._language is not None:
            language, self._language = self._language, None
            await self.update_contact(language=language)

    async def send(
        self, text: str | bytes, *, reply_to: SentReply | int | None = None, to: str | None = None
    ) -> list[SentReply]:
        """Text the bots, at our number `to` in any spelling ("0400999000" dials
        "+61400999000"; else the one the latest reply came from, else the default), and
        return the replies it caused; ValueError for a number that is not ours. `reply_to`
        answers a given MT: only with a number sequence (`Harness(number_sequence=True)`),
        as the spec says."""
        await self._introduce()
        before = len(self.replies)
        answer = reply_to.id if isinstance(reply_to, SentReply) else reply_to
        mo = await self.harness.simulator.send_mo(
            self.number, text, destination=to, reply_to=answer
        )
        self._log.append(("MO", text if isinstance(text, str) else f"<{len(text)} bytes>"))
        if mo.answer != 200:
            raise AssertionError(f"the app answered {mo.answer} to the MO\n{self.transcript()}")
        await self._refresh()
        return self.replies[before:]

    async def deliver(self, reply: SentReply, status: str) -> SentReply:
        """Make the carrier report `status` for one reply (a DLR to the app), and return
        the reply with every status reported so far: a SentReply is a snapshot, so `reply`
        itself stays as it was (`last` and `replies` are refreshed too). The status is
        "expired" instead when the reply's expiry passed on the clock before it was
        received, and then it leaves `replies`."""
        await self.harness.simulator.report(reply.id, status)
        await self._refresh()
        statuses = self.harness.simulator.sent_by_id[reply.id].statuses
        return replace(reply, statuses=tuple(statuses))

    async def thread(self, bot: str | None = None) -> Thread | None:
        """This handset's most recent conversation (open or closed) with `bot`, or with
        any bot: its bot, state, data and status. (A STOP, START or HELP is answered in
        a conversation of its own, with the bot "compliance", that this leaves out.)"""
        return await self.harness.runtime.store.threads.latest_for(
            self.number, bot=bot, besides=None if bot else COMPLIANCE_BOT
        )

    async def timers(self, bot: str | None = None) -> list[Timer]:
        """The pending timers of `thread(bot)`, soonest first: each with its `name`,
        `due_at` (aware, UTC) and `data`."""
        thread = await self.thread(bot)
        if thread is None or thread.id is None:
            return []
        return await self.harness.runtime.store.timers.pending(thread.id)

    async def campaign_events(self) -> list[Timer]:
        """The pending campaign events of this handset's contact, soonest first: each
        with its `name` (campaign:NAME:INDEX), `due_at` (aware, UTC) and `data`."""
        return await self.harness.runtime.store.timers.campaign_events(self.number)

    async def contact(self) -> Contact:
        """The person behind this handset as the bots see it (`ctx.contact`), as stored."""
        return await self.harness.runtime.store.contacts.get(self.number)

    async def update_contact(
        self,
        *,
        name: str | None = None,
        language: str | None = None,
        timezone: str | None = None,
        fields: Mapping[str, Any] | None = None,
    ) -> Contact:
        """Set up the person behind this handset as the API would: the attributes given,
        and `fields` (a value, or text as a person types it: "2026-12-10 14:30"; None
        clears one); returns the contact saved. FieldError for a value a field cannot
        take."""
        await self._introduce()
        store = self.harness.runtime.store
        contact = await store.contacts.get(self.number)
        given = {"name": name, "language": language, "timezone": timezone}
        contact.update({**{k: v for k, v in given.items() if v is not None}, "fields": fields})
        await store.contacts.save(contact, Author("api", "harness"))
        return await self.contact()

    @property
    def last(self) -> SentReply:
        """The latest reply; fails with the conversation if there is none."""
        if not self.replies:
            raise AssertionError(f"no reply yet\n{self.transcript()}")
        return self.replies[-1]

    def expect(self, wanted: str | re.Pattern[str]) -> SentReply:
        """The latest reply, which must contain the text `wanted` (or match it, when it
        is a compiled regular expression)."""
        reply = self.last
        if isinstance(wanted, re.Pattern):
            found, how = wanted.search(reply.text) is not None, f"match {wanted.pattern!r}"
        else:
            found, how = wanted in reply.text, f"contain {wanted!r}"
        if not found:
            raise AssertionError(
                f"expected the last reply to {how}, got {reply.text!r}\n{self.transcript()}"
            )
        return reply

    def transcript(self) -> str:
        """The conversation so far, one line a message, for assertion messages."""
        lines = [f"conversation with {self.number}:"]
        lines += [f"  {'>' if who == 'MO' else '<'} {text}" for who, text in self._log]
        return "\n".join(lines) if self._log else f"no messages with {self.number} yet"

    async def _refresh(self) -> None:
        await self.harness.settle()
        seen = {reply.id for reply in self.replies}
        latest = await self.harness.replies_to(self.number)
        for reply in latest:
            if reply.id not in seen:
                self._log.append(("MT", reply.text))
        self.replies = latest
