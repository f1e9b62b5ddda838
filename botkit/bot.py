"""`Bot`: what a bot module declares, handlers registered by decorator.

    from botkit import Bot, Context

    bot = Bot("hello")

    @bot.keyword("HELLO", aliases=["HI"])
    async def hello(ctx: Context) -> None:
        ctx.reply("hello/ask_name.txt")
        ctx.state = "ask_name"

The decorators return the function unchanged, so a handler stays a plain
coroutine function that a test can call.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .context import Handler, check_options
from .fields import Field, Fields

if TYPE_CHECKING:
    from .campaign import Campaign

H = TypeVar("H", bound=Handler)

# Timers botkit sets itself (a thread's on_end hook): no bot may declare one.
RESERVED_TIMERS = "botkit:"


def normalise_keyword(word: str) -> str:
    """Keywords compare upper-cased, without surrounding punctuation: 'join!' is JOIN."""
    return word.strip().strip(".,!?;:'\"()").upper()


def first_word(text: str) -> str:
    """The keyword candidate of a message: its first word, normalised."""
    words = text.split(maxsplit=1)
    return normalise_keyword(words[0]) if words else ""


class Bot:
    """A named set of handlers: keywords that start a conversation, thread states that
    continue one, and a fallback for anything else.

    `mask` and `expires` are the defaults of every reply of the bot (`ctx.reply` takes
    both too): a sender name shown instead of our number (the default number's messages
    only), and when carriers should give up on a message (a `timedelta` from when it is
    queued, or an aware `datetime`). `timezone` (an IANA name) is the zone of the bot's
    naive times and of `ctx.now()`; None: BOTKIT_TIMEZONE. `fields` declares the contact
    fields the bot keeps, by name and type (str, int, float, bool, date or datetime):
    `ctx.contact.fields[name]` takes only values of that type, and imports, the API and
    the dashboard read text as it.
    """

    def __init__(
        self,
        name: str,
        *,
        mask: str | None = None,
        expires: timedelta | datetime | None = None,
        timezone: str | None = None,
        fields: Mapping[str, type] | None = None,
    ) -> None:
        if not name or not name.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"bot name {name!r}: use letters, digits, '-' and '_'")
        check_options(mask, expires)
        self.name = name
        self.mask = mask
        self.expires = expires
        self.zone = _zone(timezone) if timezone is not None else None
        self.fields: list[Field] = Fields.declared(fields or {})
        self.keywords: dict[str, Handler] = {}
        self.primary_keywords: list[str] = []
        self.interrupting: set[str] = set()
        self.states: dict[str, Handler] = {}
        self.timers: dict[str, Handler] = {}
        self.fallback_handler: Handler | None = None
        self.end_handler: Handler | None = None
        # Subscription lists the bot's flows (a DoubleOptIn) declare: made at start-up.
        self.lists: list[str] = []
        # Campaigns the bot carries (Campaign.attach): their events fire as its timers.
        self.campaigns: list[Campaign] = []

    def __repr__(self) -> str:
        return f"Bot({self.name!r})"

    def keyword(
        self, word: str, *, aliases: Iterable[str] = (), interrupts: bool = False
    ) -> Callable[[H], H]:
        """Register a handler for messages whose first word is `word` or an alias
        (case-insensitive). A keyword that `interrupts` is matched before any thread's
        state (a survey's or opt-in's question too): CANCEL in the middle of a booking."""
        words = [word, *aliases]

        def register(handler: H) -> H:
            _check_handler(handler)
            keys = [normalise_keyword(each) for each in words]
            for each, key in zip(words, keys, strict=True):
                if not key or any(ch.isspace() for ch in key):
                    raise ValueError(f"{self.name}: keyword {each!r} must be one word")
                if key in self.keywords or keys.count(key) > 1:
                    raise ValueError(f"{self.name}: keyword {key} is registered twice")
            self.keywords.update(dict.fromkeys(keys, handler))
            self.primary_keywords.append(keys[0])
            if interrupts:
                self.interrupting.update(keys)
            return handler

        return register

    def state(self, name: str) -> Callable[[H], H]:
        """Register the handler of thread state `name`: it gets every message of a thread
        in that state (set with `ctx.state = name`)."""
        return self._named(self.states, "state", name)

    def timer(self, name: str) -> Callable[[H], H]:
        """Register the handler of timer `name`, set in a thread with
        `ctx.schedule(name, minutes=...)` or `ctx.schedule(name, at=...)`: it runs once,
        when the timer is due."""
        if name.startswith(RESERVED_TIMERS):
            raise ValueError(f"{self.name}: timer names starting {RESERVED_TIMERS!r} are botkit's")
        return self._named(self.timers, "timer", name)

    def _named(self, table: dict[str, Handler], kind: str, name: str) -> Callable[[H], H]:
        def register(handler: H) -> H:
            _check_handler(handler)
            if not name:
                raise ValueError(f"{self.name}: a {kind} needs a name")
            if name in table:
                raise ValueError(f"{self.name}: {kind} {name!r} is registered twice")
            table[name] = handler
            return handler

        return register

    def fallback(self, handler: H) -> H:
        """Register the handler for messages nothing else claims."""
        _check_handler(handler)
        if self.fallback_handler is not None:
            raise ValueError(f"{self.name}: a bot has one fallback")
        self.fallback_handler = handler
        return handler

    def on_end(self, handler: H) -> H:
        """Register the handler that runs once when a thread of this bot ends, with
        `ctx.end_reason`: "ended" (`ctx.end()`), "expired", "opted_out" or "operator".
        Its replies, data and writes commit like a handler's (a reply to a handset that
        opted out is refused, as always)."""
        _check_handler(handler)
        if self.end_handler is not None:
            raise ValueError(f"{self.name}: a bot has one on_end handler")
        self.end_handler = handler
        return handler


def _zone(name: str) -> ZoneInfo:
    """An IANA zone by name; ValueError naming it when there is no such zone."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"timezone {name!r} is not an IANA zone like Australia/Sydney") from None


def _check_handler(handler: Callable[..., object]) -> None:
    if not inspect.iscoroutinefunction(handler):
        raise TypeError(f"handler {handler.__qualname__} must be an async function")
