"""Routing: which bot and handler an MO goes to, given the thread it belongs to.

The order is the thread's current state, then a keyword (first word), then the
fallback of the thread's bot, then the first bot that has a fallback. A route to a
bot other than the open thread's closes that thread and starts a new one.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from .bot import Bot, Handler, first_word
from .messages import Thread

log = logging.getLogger("botkit.router")


@dataclass(frozen=True)
class Route:
    """Where an MO goes: the handler, and the thread it runs in (None: a new thread).
    `closing` is an open thread this route replaces."""

    bot: Bot
    handler: Handler
    kind: str
    thread: Thread | None
    closing: Thread | None = None


class Router:
    """Every loaded bot, and the keywords they claim (each keyword by one bot only)."""

    def __init__(self, bots: Sequence[Bot]) -> None:
        self.bots: dict[str, Bot] = {}
        self._keywords: dict[str, Bot] = {}
        for bot in bots:
            if bot.name in self.bots:
                raise ValueError(f"two bots are named {bot.name!r}")
            self.bots[bot.name] = bot
            for word in bot.keywords:
                if word in self._keywords:
                    other = self._keywords[word].name
                    raise ValueError(
                        f"keyword {word} is claimed by bots {other!r} and {bot.name!r}"
                    )
                self._keywords[word] = bot

    @property
    def keywords(self) -> list[str]:
        """The main keyword of every handler, in the order bots declared them."""
        return [word for bot in self.bots.values() for word in bot.primary_keywords]

    def route(self, thread: Thread | None, text: str) -> Route | None:
        """Pick the handler for `text` arriving in `thread` (None when no thread is open)."""
        owner = self.bots.get(thread.bot) if thread else None
        if thread and thread.state:
            handler = owner.states.get(thread.state) if owner else None
            if handler is not None:
                return Route(owner, handler, "state", thread)
            log.warning("thread %s: no handler for state %r", thread.id, thread.state)
        bot = self._keywords.get(first_word(text))
        if bot is not None:
            return self._to(bot, bot.keywords[first_word(text)], "keyword", thread)
        if owner is not None and owner.fallback_handler is not None:
            return Route(owner, owner.fallback_handler, "fallback", thread)
        for bot in self.bots.values():
            if bot.fallback_handler is not None:
                return self._to(bot, bot.fallback_handler, "fallback", thread)
        return None

    def _to(self, bot: Bot, handler: Handler, kind: str, thread: Thread | None) -> Route:
        if thread is not None and thread.bot == bot.name:
            return Route(bot, handler, kind, thread)
        return Route(bot, handler, kind, None, closing=thread)
