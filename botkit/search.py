"""Conversation search: the query parameters of the dashboard and /api as filters.

q       a number (3 digits or more, in any common format) matches handsets that
        contain it; any other text matches threads with a message that holds each of
        its words (see below)
bot     the bot's name
status  open, paused (an operator has it) or closed
state   the thread's state in its bot
since, until   days (YYYY-MM-DD, in BOTKIT_TIMEZONE) of the thread's last activity,
        inclusive
address the one of our numbers the thread is on, in any form (+61400999000,
        61400999000); one a thread is on that BOTKIT_NUMBERS lacks is taken too
failed  1: only threads with an MO whose handling failed (0 or empty: all)
field, value   threads of contacts whose field `field` (one the bots declare) holds
        `value`, read as that field's kind reads typed text (fields.py): `yes` finds a
        bool that is true, `1,000` a number 1000, `2026-12-10` a date. For a datetime
        field a day finds the times of that day in BOTKIT_TIMEZONE, as since/until
        read days (values are kept as UTC stamps, and a contact's own zone is not in
        the database to compare with), and a time finds that instant. `field` with no
        value finds contacts with any value of it; text matches as it is, case and all.

A text `q` is looked up in the database's full-text index of messages (SQLite's FTS5,
PostgreSQL's text search: migration 18), not read out of every message. Its words are
what white space separates; a message matches when it holds every one of them, in any
order, each as the start of a word of the message, case ignored: `refund` finds
"Refund", "refunds" and "refunded?", not "nonrefundable"; `ada late` finds "Ada is
running late". A word's letters and digits count, punctuation separates them, and a
word with punctuation inside is those parts side by side: `you're` finds "you're" (and
"you re"), `e-mail` finds "e-mail". Accents count (`cafe` does not find "café"), an
emoji is no word, and a `q` with no letter or digit matches nothing. Nothing in `q` is
search syntax: quotes, `*`, `AND`, `OR`, `NEAR(` are text like any other. The two
engines split text alike for ordinary words; they differ at the edges: PostgreSQL keeps
an e-mail address, a web address or a number like 3.5 as one word where SQLite splits
it (so `ada` finds "ada@example.com" on both, `example` on SQLite only), and takes
every part of a word with punctuation inside as the start of a word, where SQLite so
takes only the last (`you're` also finds "your refund" on PostgreSQL).

Words, not any run of characters (as a search read every message's text before): both
engines index words, and PostgreSQL's cannot find the middle of one. SQLite's trigram
tokenizer could, but for 3 characters or more only, with an index 7 times the size,
and slower: a search would find on one engine what it misses on the other.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo

from .addresses import OurNumbers, canonical_address
from .errors import ValidationError
from .fields import UTC_ZONE, Field, FieldError, Fields, dump
from .store.contact_filters import FieldMatch
from .store.conversations import STATUSES, Filters

NUMBER = re.compile(r"[+\d\s().-]*\d[\d\s().-]*")
DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
MAX_QUERY = 200
NO_FIELDS = Fields()


@dataclass(frozen=True)
class Numbers:
    """The numbers conversations can be filtered by: ours, as configured and the default
    first, then any other a thread is on (one BOTKIT_NUMBERS lacks, or no longer lists).
    Each is shown in one form, and `spellings` holds every form threads store it in (a
    thread keeps the number as the gateway wrote it: 61400999000 for +61400999000)."""

    spellings: dict[str, tuple[str, ...]]
    ours: OurNumbers | None = None

    @classmethod
    def of(cls, ours: OurNumbers, found: Iterable[str]) -> Numbers:
        """Our numbers and those `found` on threads."""
        shown = {canonical_address(number): number for number in ours.numbers}
        spellings = {number: (number,) for number in ours.numbers}
        for address in found:
            name = shown.setdefault(canonical_address(ours.spelled(address)), address)
            if address not in spellings.get(name, ()):
                spellings[name] = (*spellings.get(name, ()), address)
        return cls(spellings, ours)

    def __iter__(self) -> Iterator[str]:
        return iter(self.spellings)

    def __len__(self) -> int:
        return len(self.spellings)

    def shown(self) -> dict[str, str]:
        """The form each stored spelling is shown in."""
        return {stored: name for name, forms in self.spellings.items() for stored in forms}

    def find(self, text: str) -> str | None:
        """The number `text` names (one of ours in any spelling: 0400999000 is
        +61400999000), in the form it is shown in; None if no such number."""
        name = self.ours.spelled(text) if self.ours is not None else text
        return next((shown for shown in self if _same(shown, name)), None)


def _same(one: str, other: str) -> bool:
    return canonical_address(one) == canonical_address(other)


def filters(
    params: Mapping[str, str],
    numbers: Numbers | None = None,
    zone: ZoneInfo = UTC_ZONE,
    fields: Fields = NO_FIELDS,
) -> Filters:
    """The filters named by `params`; ValidationError naming the parameter at fault.
    The `address` filter picks among `numbers` (none: refused); days are in `zone`;
    `field` is one of `fields` (those the bots declare)."""
    q = (params.get("q") or "").strip()
    if len(q) > MAX_QUERY:
        raise ValidationError("q", f"is longer than {MAX_QUERY} characters")
    number = words = None
    digits = re.sub(r"\D", "", q)
    if NUMBER.fullmatch(q) and len(digits) >= 3:
        # A national number (0412 ...) is matched without its trunk 0: +61412...
        number = digits[1:] if digits.startswith("0") and "+" not in q else digits
    elif q:
        words = text_words(q)
    status = params.get("status") or None
    if status is not None and status not in STATUSES:
        raise ValidationError("status", f"must be one of {', '.join(STATUSES)}")
    since, until = _day(params, "since"), _day(params, "until")
    if since and until and until < since:
        raise ValidationError("until", "is before since")
    if until == date.max:
        raise ValidationError("until", "is past the last day there is")
    address = (params.get("address") or "").strip()
    return Filters(
        addresses=_addresses(address, numbers) if address else None,
        bot=params.get("bot") or None,
        status=status,
        state=params.get("state") or None,
        number=number,
        words=words,
        since=_midnight("since", since, zone) if since else None,
        before=_midnight("until", until + timedelta(days=1), zone) if until else None,
        failed=_failed(params),
        field=field_match(params, fields, zone),
    )


def text_words(text: str) -> tuple[str, ...]:
    """The words a text search looks for: `text` split at white space (and NUL, which
    would end FTS5's query), each with a letter or digit, each once whatever its case."""
    found: dict[str, str] = {}
    for word in text.replace("\x00", " ").split():
        if any(character.isalnum() for character in word):
            found.setdefault(word.casefold(), word)
    return tuple(found.values())


def _midnight(name: str, day: date, zone: tzinfo) -> str:
    """The stamp of the moment `day` begins in `zone` (isoformat: clock.stamp's form,
    zero-padded for any year); ValidationError naming `name` for a day out of range."""
    try:
        moment = datetime.combine(day, time(), zone).astimezone(UTC)
    except OverflowError:
        raise ValidationError(name, f"{day.isoformat()} is out of range") from None
    return moment.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def _failed(params: Mapping[str, str]) -> bool:
    """Whether `failed=1` asks for threads with a failure only."""
    value = params.get("failed") or "0"
    if value not in ("0", "1"):
        raise ValidationError("failed", f"{value[:MAX_QUERY]!r} is not 1 or 0")
    return value == "1"


def field_match(
    params: Mapping[str, str], fields: Fields = NO_FIELDS, zone: ZoneInfo = UTC_ZONE
) -> FieldMatch | None:
    """The contacts `field` and `value` ask for, on the conversations page and the
    contacts page alike (contact_search.py): the value as the field's kind reads it (a
    datetime field's day: its times); ValidationError naming the one at fault."""
    name = params.get("field") or ""
    text = (params.get("value") or "").strip()[:MAX_QUERY]
    if not name:
        if text:
            raise ValidationError("value", "is given without a field")
        return None
    try:
        field = fields.get_declared(name[:MAX_QUERY])
    except FieldError as exc:
        raise ValidationError("field", str(exc)) from None
    try:
        if field.kind == "datetime" and DAY.fullmatch(text):
            day = Field(name, "date").parse(text)
            assert isinstance(day, date)
            since = _midnight("value", day, zone)
            before = _midnight("value", day + timedelta(days=1), zone) if day < date.max else None
            return FieldMatch(name, since=since, before=before)
        value = field.parse(text, zone)
    except FieldError as exc:
        raise ValidationError("value", str(exc)) from None
    return FieldMatch(name, None if value is None else dump(value))


def _day(params: Mapping[str, str], name: str) -> date | None:
    value = params.get(name) or None
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValidationError(name, f"{value!r} is not a day (YYYY-MM-DD)") from None


def _addresses(text: str, numbers: Numbers | None) -> tuple[str, ...]:
    """The spellings threads store the number `text` names in; ValidationError if it is
    none of `numbers`."""
    name = numbers.find(text) if numbers is not None and len(text) <= MAX_QUERY else None
    if numbers is None or name is None:
        known = f" ({', '.join(numbers)})" if numbers else ""
        raise ValidationError("address", f"{text[:MAX_QUERY]!r} is not one of our numbers{known}")
    return numbers.spellings[name]
