"""The contacts: every person with something set (imported, set by a bot, through the
API or by an operator), whether or not they have ever texted.

GET /dashboard/contacts/   contacts in number order, filtered as botkit/contact_search.py
                           reads the query (?after= for the next page): each one's
                           number (linking to its person page), name, language, time
                           zone, the values of the first declared fields and its lists
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..contact_search import after, contact_filters, next_page
from ..contacts import Contact
from ..errors import ValidationError
from ..fields import Fields
from ..store.contact_filters import FieldMatch
from .contact_form import words
from .pages import Pages

if TYPE_CHECKING:
    from ..runtime import Runtime

# Declared fields shown as columns, the first by name; every one is on a person's page.
COLUMNS = 4


@dataclass(frozen=True)
class Row:
    """A contact as its row shows it: the values of the columns' fields in words ("" for
    none), and whether its time zone is the number's (none set)."""

    contact: Contact
    values: list[str]
    zone_of_number: bool


def routes(pages: Pages, runtime: Runtime) -> list[Route]:
    async def contacts(request: Request) -> Response:
        params = request.query_params
        store = runtime.store
        declared = store.contacts.fields
        lists = await store.lists.ids()
        context: dict[str, Any] = {
            "params": params,
            "filtered": any(value for name, value in params.items() if name != "after"),
            "fields": sorted(declared),
            "lists": list(lists),
            "columns": [],
            "hidden": 0,
            "rows": [],
            "error": "",
        }
        try:
            chosen = contact_filters(params, declared, runtime.settings.zone, lists)
            start = after(params)
        except ValidationError as exc:
            context["error"] = str(exc)
            return pages.render(request, "contacts.html", context, status_code=400)
        found, cursor = await store.contacts.listing(start, chosen)
        columns = field_columns(declared, chosen.field)
        context |= {
            "columns": columns,
            "hidden": len(declared) - len(columns),
            "rows": [row(contact, columns) for contact in found],
        }
        if cursor is not None:
            context["next"] = "?" + urlencode({**params, "after": next_page(cursor)})
        return pages.render(request, "contacts.html", context)

    return [Route("/contacts/", contacts, methods=["GET"], name="contacts")]


def field_columns(declared: Fields, chosen: FieldMatch | None) -> list[str]:
    """The fields shown as columns: the first COLUMNS declared, by name, and the one the
    page is filtered by."""
    columns = sorted(declared)[:COLUMNS]
    if chosen is not None and chosen.name not in columns:
        columns.append(chosen.name)
    return columns


def row(contact: Contact, columns: list[str]) -> Row:
    """`contact`'s row: each column's value as its kind reads (a time in the contact's
    zone)."""
    kinds, texts = contact.fields.kinds(), contact.fields.texts()
    values = [words(kinds.get(name, "text"), texts.get(name), contact) for name in columns]
    return Row(contact, values, contact.timezone is None)
