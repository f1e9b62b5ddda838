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
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from .context import Context

Handler = Callable[["Context"], Awaitable[None]]
H = TypeVar("H", bound=Handler)


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
    queued, or an aware `datetime`).
    """

    def __init__(
        self,
        name: str,
        *,
        mask: str | None = None,
        expires: timedelta | datetime | None = None,
    ) -> None:
        if not name or not name.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"bot name {name!r}: use letters, digits, '-' and '_'")
        check_options(mask, expires)
        self.name = name
        self.mask = mask
        self.expires = expires
        self.keywords: dict[str, Handler] = {}
        self.primary_keywords: list[str] = []
        self.states: dict[str, Handler] = {}
        self.timers: dict[str, Handler] = {}
        self.fallback_handler: Handler | None = None
        # Subscription lists the bot's flows (a DoubleOptIn) declare: made at start-up.
        self.lists: list[str] = []

    def __repr__(self) -> str:
        return f"Bot({self.name!r})"

    def keyword(self, word: str, *, aliases: Iterable[str] = ()) -> Callable[[H], H]:
        """Register a handler for messages whose first word is `word` or an alias
        (case-insensitive)."""
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
            return handler

        return register

    def state(self, name: str) -> Callable[[H], H]:
        """Register the handler of thread state `name`: it gets every message of a thread
        in that state (set with `ctx.state = name`)."""
        return self._named(self.states, "state", name)

    def timer(self, name: str) -> Callable[[H], H]:
        """Register the handler of timer `name`, set in a thread with
        `ctx.schedule(name, minutes=...)`: it runs once, when the timer is due."""
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


def _check_handler(handler: Callable[..., object]) -> None:
    if not inspect.iscoroutinefunction(handler):
        raise TypeError(f"handler {handler.__qualname__} must be an async function")
