"""Contact search: the query parameters of the dashboard's contacts page and of
GET /api/contacts as filters.

q         written as a number (digits, a leading +, the spaces, dashes, dots, brackets
          and slashes people type), a phone number in any common form (+61 412 345 678,
          0061 412 345 678, 61412345678, 0412 345 678: numbers.search_forms) finds that
          contact; a part of a number is refused, as no index could find it. Any other
          text finds the contacts whose name holds it, case ignored
field, value   a field's value, read as the conversations page reads it
          (search.field_match: one reading for both)
language  a language code (es, pt-BR), as a contact's is kept
list      the name of a list: its subscribed members
after     the `next` of the page before: the digits of the number the page starts
          after, without its `+`, which a query string would read as a space
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from zoneinfo import ZoneInfo

from .contacts import NAME_LIMIT, language_code
from .errors import ValidationError
from .fields import UTC_ZONE, FieldError, Fields
from .numbers import search_forms, written_as_number
from .search import MAX_QUERY, NO_FIELDS, field_match
from .store.contact_filters import ContactFilters

# A page's `after`: a contact's number (E.164) without its `+`, or with it.
AFTER = re.compile(r"\+?([0-9]{1,20})")


def contact_filters(
    params: Mapping[str, str],
    fields: Fields = NO_FIELDS,
    zone: ZoneInfo = UTC_ZONE,
    lists: Mapping[str, int] | None = None,
) -> ContactFilters:
    """The filters named by `params`; ValidationError naming the parameter at fault.
    `field` is one of `fields` (those the bots declare), a datetime's day in `zone`;
    `list` one of `lists` (the ids of those there are, by name)."""
    q = (params.get("q") or "").strip()
    if len(q) > NAME_LIMIT:
        raise ValidationError("q", f"is longer than {NAME_LIMIT} characters")
    handsets = name = None
    if written_as_number(q):
        try:
            handsets = search_forms(q)
        except ValidationError as exc:
            raise ValidationError(
                "q",
                f"{exc.reason}: search for a whole number, such as +61 412 345 678 or "
                "0412 345 678, or for a name",
            ) from None
    elif q:
        name = q
    return ContactFilters(
        handsets=handsets,
        name=name,
        language=_language(params),
        list_id=_list(params, lists or {}),
        field=field_match(params, fields, zone),
    )


def after(params: Mapping[str, str]) -> str | None:
    """The number a page starts after (None: the first page); ValidationError for text
    that is no page's `next`, rather than the first page again."""
    text = params.get("after") or ""
    if not text:
        return None
    found = AFTER.fullmatch(text)
    if found is None:
        raise ValidationError("after", "is not the `next` of a page")
    return "+" + found.group(1)


def next_page(number: str | None) -> str | None:
    """The `next` of a page whose last contact is `number` (None: it is the last page)."""
    return None if number is None else number.removeprefix("+")


def _language(params: Mapping[str, str]) -> str | None:
    text = (params.get("language") or "").strip()
    try:
        return language_code(text[:MAX_QUERY]) if text else None
    except FieldError as exc:
        raise ValidationError("language", str(exc)) from None


def _list(params: Mapping[str, str], lists: Mapping[str, int]) -> int | None:
    name = (params.get("list") or "").strip()
    if name and name not in lists:
        known = ", ".join(sorted(lists)) or "none"
        shown = name[:MAX_QUERY]
        raise ValidationError("list", f"there is no list named {shown!r} (lists: {known})")
    return lists[name] if name else None
