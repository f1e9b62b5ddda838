"""Conversation search: the query parameters of the dashboard and /api as filters.

q       a number (3 digits or more, in any common format) matches handsets that
        contain it; any other text matches threads with a message containing it
bot     the bot's name
status  open, paused (an operator has it) or closed
state   the thread's state in its bot
since, until   days (YYYY-MM-DD, UTC) of the thread's last activity, inclusive
address the one of our numbers the thread is on, in any form (+61400999000,
        61400999000); one a thread is on that BOTKIT_NUMBERS lacks is taken too
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, timedelta

from .addresses import OurNumbers, canonical_address
from .errors import ValidationError
from .store.conversations import STATUSES, Filters

NUMBER = re.compile(r"[+\d\s().-]*\d[\d\s().-]*")
MAX_QUERY = 200


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


def filters(params: Mapping[str, str], numbers: Numbers | None = None) -> Filters:
    """The filters named by `params`; ValidationError naming the parameter at fault.
    The `address` filter picks among `numbers` (none: refused)."""
    q = (params.get("q") or "").strip()
    if len(q) > MAX_QUERY:
        raise ValidationError("q", f"is longer than {MAX_QUERY} characters")
    number = text = None
    digits = re.sub(r"\D", "", q)
    if NUMBER.fullmatch(q) and len(digits) >= 3:
        # A national number (0412 ...) is matched without its trunk 0: +61412...
        number = digits[1:] if digits.startswith("0") and "+" not in q else digits
    elif q:
        text = q
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
        text=text,
        since=f"{since.isoformat()}T00:00:00.000000Z" if since else None,
        before=f"{(until + timedelta(days=1)).isoformat()}T00:00:00.000000Z" if until else None,
    )


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
