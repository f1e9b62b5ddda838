"""`Context`: the one object a handler gets.

Nothing a handler does is written until it returns: its replies, state and data are
committed together with the MO being marked handled, or not at all if it raises.
A context knows its bot only as `Declared` (what a `Bot` declares), so that this
module sits below bot.py and router.py, which import it.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any, Protocol

from .addresses import OurNumbers
from .errors import HandlerError
from .gateway import rfc3339
from .languages import language_code
from .messages import ConsentChange, Message, Reply, Thread, Timer
from .store.contacts import Author
from .store.effects import Effects, Write
from .store.lists import list_name

if TYPE_CHECKING:
    from .contacts import Contact
    from .db import Tx
    from .store.contacts import Contacts
    from .store.lists import Lists
    from .templates import SMSTemplates

Handler = Callable[["Context"], Awaitable[None]]
# Further than this is a mistake (a year typed wrong), and near year 9999 a time no
# longer converts between zones.
MAX_TIMER_WAIT = timedelta(days=36_500)


class Declared(Protocol):
    """What a handler's context reads of its bot (a `Bot` is one)."""

    name: str
    mask: str | None
    expires: timedelta | datetime | None
    zone: tzinfo | None
    states: Mapping[str, Handler]
    timers: Mapping[str, Handler]


class Context:
    """The message being handled (or the timer firing), its thread, and the ways to
    answer it."""

    def __init__(
        self,
        message: Message | None,
        thread: Thread,
        bot: Declared,
        templates: SMSTemplates,
        *,
        now: datetime,
        numbers: OurNumbers,
        keywords: Sequence[str] = (),
        on_end: frozenset[str] = frozenset(),
        zone: tzinfo = UTC,
        timer: Timer | None = None,
        lists: Lists | None = None,
        end_reason: str | None = None,
        contact: Contact | None = None,
        contacts: Contacts | None = None,
        language: str | None = None,
    ) -> None:
        self.message = message
        self.thread = thread
        self.bot = bot
        self.numbers = numbers
        self.timer = timer
        self.zone = bot.zone or zone
        # Without a contact (a context made by hand): the language to render in.
        self._language = None if language is None else language_code(language)
        self._now = now
        self._end_reason = end_reason
        self._ended: str | None = None
        self._keywords = keywords
        self._on_end = on_end
        self._templates = templates
        self._lists = lists
        self._contact = contact
        self._contacts = contacts
        self._replies: list[Reply] = []
        self._consent: list[ConsentChange] = []
        self._scheduled: list[Timer] = []
        self._cancelled: list[str] = []
        self._writes: list[Write] = []

    def now(self) -> datetime:
        """The time this handler runs at, aware, in the bot's time zone (BOTKIT_TIMEZONE
        unless `Bot(timezone=...)`); the test harness's clock moves it."""
        return self._now.astimezone(self.zone)

    @property
    def end_reason(self) -> str | None:
        """Why the thread ended, in an `@bot.on_end` handler: "ended", "expired",
        "opted_out" or "operator"; None in any other handler."""
        return self._end_reason

    @property
    def text(self) -> str:
        """The message's text, as the handset sent it ("" when a timer fired)."""
        return self.message.text if self.message is not None else ""

    @property
    def state(self) -> str | None:
        """The thread's state: the next message of the thread goes to its handler."""
        return self.thread.state

    @state.setter
    def state(self, value: str | None) -> None:
        if value is not None and value not in self.bot.states:
            raise HandlerError(f"{self.bot.name} has no handler for state {value!r}")
        self.thread.state = value

    @property
    def number(self) -> str:
        """The one of our numbers this conversation is on: the number the handset texted,
        and the one every reply goes from (`ctx.numbers.default` is the default)."""
        return self.thread.address

    @property
    def data(self) -> dict[str, Any]:
        """The thread's data: a JSON-safe dict kept between messages."""
        return self.thread.data

    @property
    def language(self) -> str | None:
        """The handset's language ("es", "pt-br"; None: the default texts), what ctx.reply
        renders templates in: the contact's, as this handler leaves it."""
        return self._contact.language if self._contact is not None else self._language

    @property
    def contact(self) -> Contact:
        """The person behind the handset: name, language, time zone, fields and lists.
        What a handler changes of it commits with the handler's other effects."""
        if self._contact is None:
            raise HandlerError("this context has no contact (it was not made by botkit)")
        return self._contact

    @property
    def keywords(self) -> list[str]:
        """Every keyword the loaded bots answer to, for a help text."""
        return list(self._keywords)

    @property
    def replies(self) -> tuple[Reply, ...]:
        """The replies queued so far by this handler."""
        return tuple(self._replies)

    def reply(
        self,
        template_or_text: str,
        /,
        *,
        mask: str | None = None,
        expires: datetime | timedelta | None = None,
        **variables: Any,
    ) -> Reply:
        """Queue a reply from the number the handset texted: a template name ending in
        `.txt` is rendered with `variables`, in the handset's language where the template
        has a version for it (`hello/greet.es.txt`); any other text is sent as it is.

        `mask` (a sender name shown instead of our number, from the default number only)
        and `expires` (an aware datetime, or a timedelta from now: when carriers give up
        on it) override the bot's defaults."""
        reply = self._templates.reply(template_or_text, variables, self.language)
        mask = self.bot.mask if mask is None else mask
        expires = self.bot.expires if expires is None else expires
        try:
            check_options(mask, expires)
        except (TypeError, ValueError) as exc:
            raise HandlerError(f"{self.bot.name}: {exc}") from None
        self.numbers.origin(self.thread.address, mask=mask)  # a mask it cannot carry fails here
        reply = dataclasses.replace(reply, mask=mask, expires=self._expiry(expires))
        self._replies.append(reply)
        return reply

    def render(self, template: str, /, **variables: Any) -> str:
        """Template `template` rendered with `variables` in the handset's language, as
        `reply` would, but not sent: a part of a reply (a survey's re-ask hint)."""
        return self._templates.render(self._templates.choose(template, self.language), **variables)

    def _expiry(self, expires: datetime | timedelta | None) -> str | None:
        """`expires` as the gateway takes it: RFC 3339, a delay counted from now."""
        if expires is None:
            return None
        if isinstance(expires, timedelta):
            expires = (self._now + expires).astimezone(UTC).replace(microsecond=0)
        return rfc3339(expires)

    def schedule(
        self,
        name: str,
        *,
        at: datetime | None = None,
        seconds: float | None = None,
        minutes: float | None = None,
        hours: float | None = None,
        days: float | None = None,
        data: dict[str, Any] | None = None,
    ) -> Timer:
        """Run the bot's `@bot.timer(name)` handler in this thread once, `at` a time (a
        naive one is in the bot's time zone) or after a delay, after a restart too, unless
        the thread ends first or it is cancelled. A time already past fires at once."""
        if name not in self.bot.timers:
            raise HandlerError(f"{self.bot.name} has no handler for timer {name!r}")
        delays = {"seconds": seconds, "minutes": minutes, "hours": hours, "days": days}
        given = {unit: value for unit, value in delays.items() if value is not None}
        if (at is None) == (not given):
            raise HandlerError(f"timer {name!r}: give either at= or a delay (minutes=...)")
        if at is None:
            due = self._now + timedelta(**given)
        elif isinstance(at, datetime):
            due = at if at.utcoffset() is not None else at.replace(tzinfo=self.zone)
        else:
            raise HandlerError(f"timer {name!r}: at={at!r} is not a datetime")
        if due - self._now > MAX_TIMER_WAIT:
            raise HandlerError(f"timer {name!r}: {due.isoformat()} is more than a century away")
        timer = Timer(name=name, due_at=max(due, self._now), data=dict(data or {}))
        self._scheduled.append(timer)
        return timer

    def cancel(self, *names: str) -> None:
        """Cancel this thread's pending timers of these names (all of them if none given)."""
        self._cancelled.extend(names or ["*"])

    def subscribe(self, name: str, *, keyword: str | None = None) -> None:
        """Subscribe the handset to list `name` once this handler returns, recording this
        message (and `keyword`) in the consent ledger; a handset that opted out of this
        address stays out."""
        self._consent.append(
            ConsentChange(
                handset=self.thread.handset,
                address=self.thread.address,
                action="opt-in",
                source="sms",
                keyword=keyword,
                message_id=self.message.id if self.message is not None else None,
                list=list_name(name),
            )
        )

    async def subscribed(self, name: str) -> bool:
        """True if the handset is subscribed to list `name` (as committed before this
        handler ran)."""
        if self._lists is None:
            raise HandlerError("this context has no store to read lists from")
        return await self._lists.is_subscribed(name, self.thread.handset)

    def write(self, write: Write) -> None:
        """Run `write(tx, thread, now)` in the transaction that commits this handler, once
        the thread is saved: for flows that keep tables of their own, such as surveys.
        (Whether an operator has the thread, which silences the replies, is read as it is
        saved: a write does not change it.) The transaction may be run again (a conflict
        with another write), and `write` with it: it must do nothing but its statements."""
        self._writes.append(write)

    def effects(self, **extra: Any) -> Effects:
        """Everything this handler did, to commit in one transaction."""
        cancel = None if "*" in self._cancelled else tuple(self._cancelled)
        writes = tuple(self._writes)
        if self._contact is not None and self._contact.changes():
            if self._contacts is None:
                raise HandlerError("this context has no store to save its contact in")
            writes += (self._contact_write(self._contacts, self._contact),)
        return Effects(
            self.thread,
            numbers=self.numbers,
            replies=tuple(self._replies),
            schedule=tuple(self._scheduled),
            cancel=cancel,
            writes=writes,
            consent=tuple(self._consent),
            end_reason=self._ended,
            on_end=self._on_end,
            **extra,
        )

    def _contact_write(self, contacts: Contacts, contact: Contact) -> Write:
        """The write of what this handler changed of its contact, by its bot."""
        author = Author("bot", self.bot.name)

        async def write(tx: Tx, thread: Thread, now: str) -> None:
            await contacts.write(tx, contact, author, now)

        return write

    def end(self, reason: str = "ended") -> None:
        """End the thread once this handler returns (its timers are cancelled, its bot's
        on_end hook runs); the next message starts afresh. `reason` is "ended", or
        "expired" for a conversation that waited too long."""
        if reason not in ("ended", "expired"):
            raise HandlerError(f"ctx.end({reason!r}): the reason is 'ended' or 'expired'")
        if self.thread.status == "closed":
            return  # ended already (an on_end hook): nothing more to end
        self.thread.status = "closed"
        self.thread.state = None
        self.thread.end_reason = self._ended = reason

    def check(self) -> None:
        """Raise HandlerError if the thread's data cannot be stored as JSON."""
        try:
            stored = json.loads(json.dumps(self.thread.data, allow_nan=False))
        except (TypeError, ValueError) as exc:
            raise HandlerError(f"{self.bot.name}: thread data is not JSON-safe: {exc}") from None
        if stored != self.thread.data:
            raise HandlerError(
                f"{self.bot.name}: thread data would not come back as it is "
                "(use str keys, and lists rather than tuples)"
            )


def check_options(mask: str | None, expires: timedelta | datetime | None) -> None:
    """Refuse a mask or an expiry that no gateway request could carry."""
    if mask is not None and (not isinstance(mask, str) or not mask.strip()):
        raise ValueError(f"mask {mask!r}: give a sender name, or None for our number")
    if isinstance(expires, timedelta):
        if expires <= timedelta(0):
            raise ValueError(f"expires {expires!r}: a message must live for some time")
    elif isinstance(expires, datetime):
        if expires.utcoffset() is None:
            raise ValueError(f"expires {expires!r} is a naive datetime; give it a timezone")
    elif expires is not None:
        raise TypeError(f"expires {expires!r}: give a timedelta or an aware datetime")
