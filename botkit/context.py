"""`Context`: the one object a handler gets.

Nothing a handler does is written until it returns: its replies, state and data are
committed together with the MO being marked handled, or not at all if it raises.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from .errors import HandlerError
from .messages import Message, Reply, Thread

if TYPE_CHECKING:
    from .bot import Bot
    from .router import Router
    from .templates import SMSTemplates


class Context:
    """The message being handled, its thread, and the ways to answer it."""

    def __init__(
        self,
        message: Message,
        thread: Thread,
        bot: Bot,
        router: Router,
        templates: SMSTemplates,
    ) -> None:
        self.message = message
        self.thread = thread
        self.bot = bot
        self._router = router
        self._templates = templates
        self._replies: list[Reply] = []

    @property
    def text(self) -> str:
        """The message's text, as the handset sent it."""
        return self.message.text

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
    def data(self) -> dict[str, Any]:
        """The thread's data: a JSON-safe dict kept between messages."""
        return self.thread.data

    @property
    def keywords(self) -> list[str]:
        """Every keyword the loaded bots answer to, for a help text."""
        return self._router.keywords

    @property
    def replies(self) -> tuple[Reply, ...]:
        """The replies queued so far by this handler."""
        return tuple(self._replies)

    def reply(self, template_or_text: str, /, **variables: Any) -> Reply:
        """Queue a reply: a template name ending in `.txt` is rendered with `variables`;
        any other text is sent as it is."""
        reply = self._templates.reply(template_or_text, variables)
        self._replies.append(reply)
        return reply

    def end(self) -> None:
        """Close the thread once this handler returns; the next message starts afresh."""
        self.thread.status = "closed"
        self.thread.state = None

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
