"""Routing: which bot and handler an MO goes to, given the thread it belongs to.

The order, after compliance words (which the dispatcher answers before any bot):
1. an interrupting keyword (`@bot.keyword(..., interrupts=True)`), whatever state the
   thread is in;
2. the thread's state;
3. a keyword (the message's first word);
4. the fallback of the thread's bot, then the first bot that has a fallback.

A route to another bot than the thread's leaves that thread as it is: the MO goes to
the other bot's open thread on the number, or starts one (the dispatcher finds it).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from .bot import Bot, Handler, first_word
from .campaign import Campaign
from .fields import Fields
from .messages import Thread

log = logging.getLogger("botkit.router")


@dataclass(frozen=True)
class Route:
    """Where an MO goes: the handler, and the thread it runs in (None: the bot's open
    thread on the number, or a new one). `kind` says which step of the order chose it:
    interrupt, state, keyword or fallback."""

    bot: Bot
    handler: Handler
    kind: str
    thread: Thread | None


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
        # The main keyword of every handler, in the order bots declared them.
        self.keywords = [word for bot in self.bots.values() for word in bot.primary_keywords]
        # The contact fields the bots declare (one kind for a name declared twice).
        self.fields = Fields(field for bot in bots for field in bot.fields)
        self.campaigns = [campaign for bot in bots for campaign in bot.campaigns]
        _check_campaigns(self.campaigns, self.fields)
        # The bots whose threads run an on_end handler when they end.
        self.on_end = frozenset(bot.name for bot in bots if bot.end_handler is not None)

    def route(self, thread: Thread | None, text: str) -> Route | None:
        """Pick the handler for `text` arriving in `thread` (None when no thread is open)."""
        word = first_word(text)
        keyword_bot = self._keywords.get(word)
        if keyword_bot is not None and word in keyword_bot.interrupting:
            return self._to(keyword_bot, keyword_bot.keywords[word], "interrupt", thread)
        owner = self.bots.get(thread.bot) if thread else None
        if thread and thread.state:
            handler = owner.states.get(thread.state) if owner else None
            if handler is not None:
                return Route(owner, handler, "state", thread)
            log.warning("thread %s: no handler for state %r", thread.id, thread.state)
        if keyword_bot is not None:
            return self._to(keyword_bot, keyword_bot.keywords[word], "keyword", thread)
        if owner is not None and owner.fallback_handler is not None:
            return Route(owner, owner.fallback_handler, "fallback", thread)
        for bot in self.bots.values():
            if bot.fallback_handler is not None:
                return self._to(bot, bot.fallback_handler, "fallback", thread)
        return None

    def _to(self, bot: Bot, handler: Handler, kind: str, thread: Thread | None) -> Route:
        """A route to `bot`: in `thread` if it is that bot's, else in the bot's own."""
        if thread is not None and thread.bot == bot.name:
            return Route(bot, handler, kind, thread)
        return Route(bot, handler, kind, None)


def _check_campaigns(campaigns: Sequence[Campaign], fields: Fields) -> None:
    """Refuse campaigns of one name, or timed from a field that is not a date."""
    names = [campaign.name for campaign in campaigns]
    for campaign in campaigns:
        if names.count(campaign.name) > 1:
            raise ValueError(f"two campaigns are named {campaign.name!r}")
        field = fields.get(campaign.field)
        if field is None or field.kind not in ("date", "datetime"):
            raise ValueError(
                f"campaign {campaign.name!r}: field {campaign.field!r} must be declared as "
                "a date or datetime (Bot(fields={...}))"
            )
