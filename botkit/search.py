"""Conversation search: the query parameters of the dashboard and /api as filters.

q       a number (3 digits or more, in any common format) matches handsets that
        contain it; any other text matches threads with a message containing it
bot     the bot's name
status  open, paused (an operator has it) or closed
state   the thread's state in its bot
since, until   days (YYYY-MM-DD, UTC) of the thread's last activity, inclusive
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, timedelta

from .errors import ValidationError
from .store.conversations import STATUSES, Filters

NUMBER = re.compile(r"[+\d\s().-]*\d[\d\s().-]*")
MAX_QUERY = 200


def filters(params: Mapping[str, str]) -> Filters:
    """The filters named by `params`; ValidationError naming the parameter at fault."""
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
    return Filters(
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
