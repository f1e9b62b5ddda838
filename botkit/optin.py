"""Double opt-in: a keyword asks for confirmation; YES subscribes the handset to a list,
anything else declines, and silence past a timeout lets the request lapse.

The flow registers its keyword, a state and a timer on a bot with the bot's own
decorators, so routing, compliance (STOP still wins) and `botkit check` see ordinary
handlers. The subscription commits with the welcome reply, in one transaction, and the
consent ledger records it with source "sms", the keyword and the confirming MO.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from .bot import Bot, normalise_keyword
from .context import Context
from .store.lists import list_name
from .templates import is_template_name

DEFAULT_TIMEOUT = timedelta(hours=24)
YES_WORDS = frozenset({"YES", "Y", "YEP", "YEAH", "YUP", "YA", "SURE", "OK", "OKAY"})
NO_WORDS = frozenset({"NO", "NAH", "NOPE", "NOT", "DONT", "DON'T", "DON’T", "NEVER"})


def is_yes(text: str) -> bool:
    """True for a confirmation: a yes first ("Y", "YES!", "yes please?") and no word of
    refusal after it ("yeah nah" is a no), since a doubtful answer must not subscribe."""
    words = [normalise_keyword(word) for word in text.split()]
    return bool(words) and words[0] in YES_WORDS and NO_WORDS.isdisjoint(words[1:])


@dataclass(frozen=True)
class DoubleOptIn:
    """A keyword that subscribes a handset to a list once it confirms.

        bot = Bot("optin")
        DoubleOptIn(
            list="deals",
            keyword="JOIN",
            confirm="optin/confirm.txt",    # asks for YES
            welcome="optin/welcome.txt",    # YES: subscribed
            already="optin/already.txt",    # the keyword again, when subscribed
            declined="optin/declined.txt",  # any other answer
            expired="optin/expired.txt",    # no answer within `timeout`
            timeout=timedelta(hours=24),
        ).attach(bot)

    Each template is rendered with `list` and `keyword`; a text that is not a template
    name is sent as it is. With `interrupts=True` the keyword is matched before any
    thread's state, so it starts the opt-in even while another conversation waits for
    an answer.
    """

    list: str
    keyword: str
    confirm: str
    welcome: str
    already: str
    declined: str
    expired: str
    timeout: timedelta = DEFAULT_TIMEOUT
    interrupts: bool = False

    def __post_init__(self) -> None:
        list_name(self.list)
        if self.timeout <= timedelta(0):
            raise ValueError(f"double opt-in to {self.list!r}: the timeout must be positive")

    @property
    def state(self) -> str:
        """The thread state that waits for the answer."""
        return f"optin:{self.list}"

    @property
    def timer(self) -> str:
        """The timer that ends the wait."""
        return f"optin:{self.list}:expire"

    def attach(self, bot: Bot) -> DoubleOptIn:
        """Register the keyword, state and timer of this flow on `bot`, and its list, which
        the app creates (empty) at start-up so that it is there before anyone joins."""
        bot.keyword(self.keyword, interrupts=self.interrupts)(self.join)
        bot.state(self.state)(self.answer)
        bot.timer(self.timer)(self.expire)
        bot.lists.append(self.list)
        return self

    async def join(self, ctx: Context) -> None:
        """The keyword: ask for confirmation, unless the handset is subscribed already."""
        if await ctx.subscribed(self.list):
            self._reply(ctx, self.already)
            return
        self._reply(ctx, self.confirm)
        ctx.state = self.state
        ctx.schedule(self.timer, seconds=self.timeout.total_seconds())

    async def answer(self, ctx: Context) -> None:
        """The answer: YES subscribes, anything else declines."""
        ctx.state = None
        ctx.cancel(self.timer)
        if is_yes(ctx.text):
            ctx.subscribe(self.list, keyword=normalise_keyword(self.keyword))
            self._reply(ctx, self.welcome)
        else:
            self._reply(ctx, self.declined)

    async def expire(self, ctx: Context) -> None:
        """No answer in time: the request lapses, and the handset is told so."""
        if ctx.state == self.state:
            ctx.state = None
            self._reply(ctx, self.expired)

    def _reply(self, ctx: Context, template: str) -> None:
        if is_template_name(template):
            ctx.reply(template, list=self.list, keyword=normalise_keyword(self.keyword))
        else:
            ctx.reply(template)
