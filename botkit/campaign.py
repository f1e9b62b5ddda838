"""`Campaign`: messages and flows timed from a date in each contact's fields.

    reminders = Campaign("appointments", field="appointment_at", quiet_hours="21:00-08:00")
    reminders.event(days=-1, at="09:00", template="dental/reminder.txt")
    reminders.event(hours=2, start=aftercare)  # a Survey, or an async function of ctx
    reminders.attach(bot)

Each event is a timer per contact, due at the field's value moved by the event's
offset, in the contact's time zone (`at` sets the time of day of the day it lands
on). It fires once, in a new conversation of the bot with the contact, from the
campaign's number. When the field changes its pending events move; when it is
cleared, or the contact opts out of that number, they are cancelled; an event whose
time has passed is not scheduled. store/campaigns.py keeps them in step.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any, Protocol
from zoneinfo import ZoneInfo

from .broadcast import QuietHours
from .errors import ValidationError
from .localtime import localize

if TYPE_CHECKING:
    from .addresses import OurNumbers
    from .bot import Bot
    from .context import Context

NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
# The timers of a campaign's events, on the bot that carries it: campaign:NAME:INDEX.
PREFIX = "campaign:"


class Startable(Protocol):
    """A flow a campaign event can start: a Survey, a DoubleOptIn."""

    async def start(self, ctx: Context) -> None: ...


@dataclass(frozen=True)
class Event:
    """One event of a campaign: when (an offset from the field's value, and the time of
    day `at`), and what: a template sent, or a flow (or handler) started."""

    offset: timedelta
    at: time | None
    template: str | None
    start: Callable[[Context], Awaitable[None]] | None
    variables: dict[str, Any] = field(default_factory=dict)

    def due(self, anchor: date | datetime, zone: ZoneInfo) -> datetime:
        """When this event fires for a contact whose field holds `anchor`, in `zone`."""
        if isinstance(anchor, datetime):
            local = anchor.astimezone(zone)
        else:  # its midnight, moved by wall-clock days as a time is (even one skipped)
            local = datetime.combine(anchor, time(), tzinfo=zone)
        if self.at is None:
            return local + self.offset
        day = local.date() + timedelta(days=self.offset.days)
        wall = datetime.combine(day, self.at)
        try:
            return localize(wall, zone)
        except ValueError:  # a time the clocks skip in spring: the hour after it
            return localize(wall + timedelta(hours=1), zone)

    def describe(self) -> str:
        """When and what, in words: "1 day before, at 09:00: sends dental/reminder.txt"."""
        offset = self.offset
        side = "before" if offset < timedelta(0) else "after"
        if self.at is not None:
            days = abs(offset.days)
            when = f"{days} day{'s' if days != 1 else ''} {side}" if days else "on the day"
            when += f", at {self.at.strftime('%H:%M')}"
        elif offset:
            when = f"{_span(abs(offset))} {side}"
        else:
            when = "at the time"
        what = f"sends {self.template}" if self.template else f"starts {_named(self.start)}"
        return f"{when}: {what}"

    async def run(self, ctx: Context) -> None:
        """Fire: start the flow, or send the template (with `contact` and the event's
        variables) as a one-off message, as a broadcast's: its conversation is closed
        at once, so that an answer goes to a conversation still open (a survey's
        question) or starts one anew."""
        if self.start is not None:
            await self.start(ctx)
            return
        assert self.template is not None
        ctx.reply(self.template, contact=ctx.contact, **self.variables)
        ctx.thread.status = "closed"  # ended by no one: no on_end hook runs


class Campaign:
    """Events timed from the date (or date and time) in contact field `field`.

    `address` is the number its messages go from (default: the default number);
    `quiet_hours` ("21:00-08:00", in each contact's zone) holds an event that falls in
    them until they end."""

    def __init__(
        self,
        name: str,
        *,
        field: str,
        address: str | None = None,
        quiet_hours: str | None = None,
    ) -> None:
        if not isinstance(name, str) or not NAME.fullmatch(name):
            raise ValueError(
                f"campaign {name!r}: use lower-case letters, digits, '-' and '_' (64 at most)"
            )
        self.name = name
        self.field = field
        self.address = address
        try:
            self.quiet = QuietHours.parse(quiet_hours) if quiet_hours else None
        except ValidationError:
            raise ValueError(
                f"campaign {name!r}: quiet_hours={quiet_hours!r} is not like '21:00-08:00'"
            ) from None
        self.events: list[Event] = []
        self.bot: str | None = None

    def __repr__(self) -> str:
        return f"Campaign({self.name!r}, field={self.field!r})"

    def event(
        self,
        *,
        days: int = 0,
        hours: float = 0,
        minutes: float = 0,
        at: str | time | None = None,
        template: str | None = None,
        start: Startable | Callable[[Context], Awaitable[None]] | None = None,
        variables: Mapping[str, Any] | None = None,
    ) -> Campaign:
        """Add an event `days`, `hours` and `minutes` from the field's value (negative:
        before it), at time of day `at` ("09:00") if given, which sends `template` (with
        `contact` and `variables`) or starts `start` (a Survey, or an async function of
        the context). Returns the campaign, so that events chain."""
        if (template is None) == (start is None):
            raise ValueError(f"campaign {self.name!r}: an event sends a template or starts a flow")
        if self.bot is not None:
            raise ValueError(f"campaign {self.name!r}: add events before attach()")
        if variables and start is not None:
            raise ValueError(f"campaign {self.name!r}: variables are for a template")
        when = self._time_of_day(at)
        if when is not None and (hours or minutes):
            raise ValueError(f"campaign {self.name!r}: an event at a time of day moves by days")
        runner = getattr(start, "start", start)
        if start is not None and not callable(runner):
            raise TypeError(f"campaign {self.name!r}: start={start!r} is not a flow or handler")
        offset = timedelta(days=days, hours=hours, minutes=minutes)
        self.events.append(Event(offset, when, template, runner, dict(variables or {})))
        return self

    def _time_of_day(self, at: str | time | None) -> time | None:
        """`at` as a time of day; ValueError naming the campaign for one that is not."""
        if at is None or isinstance(at, time):
            return at
        try:
            return time.fromisoformat(at)
        except (TypeError, ValueError):
            raise ValueError(
                f"campaign {self.name!r}: at={at!r} is not a time of day like '09:00'"
            ) from None

    def signature(self) -> str:
        """A digest of what decides when the events fire, and what they do: when it
        changes, every contact's events are planned anew (at start-up)."""
        events = [
            (
                event.offset.total_seconds(),
                str(event.at),
                event.template,
                getattr(event.start, "__qualname__", repr(event.start)),
                sorted(event.variables.items()),
            )
            for event in self.events
        ]
        quiet = self.quiet and (str(self.quiet.start), str(self.quiet.end))
        described = repr((self.field, self.address, quiet, events))
        return hashlib.sha256(described.encode()).hexdigest()[:32]

    def timer(self, index: int) -> str:
        """The name of event `index`'s timer."""
        return f"{PREFIX}{self.name}:{index}"

    def due(self, event: Event, anchor: date | datetime, zone: ZoneInfo) -> datetime:
        """When `event` fires for a contact whose field holds `anchor`, in `zone`: out
        of the quiet hours, after them; but an event due before the contact's date that
        they would push past it goes just before they begin (a reminder the evening
        before, not after the appointment)."""
        due = event.due(anchor, zone)
        moved = self.after_quiet(due, zone)
        if moved == due or event.offset >= timedelta(0) or moved <= _instant(anchor, zone):
            return moved
        assert self.quiet is not None
        local, start = due.astimezone(zone), self.quiet.start
        evening = local.replace(hour=start.hour, minute=start.minute, second=0, microsecond=0)
        if evening > local:
            evening -= timedelta(days=1)
        return evening - timedelta(minutes=1)

    def after_quiet(self, moment: datetime, zone: ZoneInfo) -> datetime:
        """`moment`, or the end of the campaign's quiet hours in `zone` (the contact's)
        if it falls in them."""
        local = moment.astimezone(zone)
        if self.quiet is None or not self.quiet.quiet(local):
            return moment
        end = self.quiet.end
        morning = local.replace(hour=end.hour, minute=end.minute, second=0, microsecond=0)
        return morning if morning > local else morning + timedelta(days=1)

    def attach(self, bot: Bot) -> Campaign:
        """Carry the campaign on `bot`: its events fire as the bot's timers, in new
        conversations of the bot."""
        if not self.events:
            raise ValueError(f"campaign {self.name!r} has no events")
        for index, event in enumerate(self.events):
            bot.timer(self.timer(index))(event.run)
        bot.campaigns.append(self)
        self.bot = bot.name
        return self


def campaign_of(timer: str) -> str:
    """The name of the campaign whose event `timer` names (campaign:NAME:INDEX)."""
    return timer.removeprefix(PREFIX).rpartition(":")[0]


def sending_from(campaigns: Sequence[Campaign], numbers: OurNumbers) -> list[Campaign]:
    """`campaigns`, each with the one of our numbers it sends from (the default unless
    it names one; ValidationError for a number not ours)."""
    for campaign in campaigns:
        given = campaign.address
        campaign.address = numbers.ours(given, "Campaign(address=)") if given else numbers.default
    return list(campaigns)


def _instant(anchor: date | datetime, zone: ZoneInfo) -> datetime:
    """A field's value as an instant: a date is its midnight in `zone`."""
    if isinstance(anchor, datetime):
        return anchor
    return datetime.combine(anchor, time(), tzinfo=zone)


def _span(delta: timedelta) -> str:
    """A delay in words: "1 day 2 hours", "30 minutes"."""
    minutes = int(delta.total_seconds() // 60)
    parts = [(minutes // 1440, "day"), (minutes // 60 % 24, "hour"), (minutes % 60, "minute")]
    return " ".join(f"{n} {unit}{'s' if n != 1 else ''}" for n, unit in parts if n)


def _named(start: object) -> str:
    """What an event starts, by name: a flow's (a Survey's), or a function's."""
    flow = getattr(start, "__self__", None)
    name = getattr(flow, "name", None)
    return f"{type(flow).__name__} {name!r}" if name else getattr(start, "__name__", repr(start))
