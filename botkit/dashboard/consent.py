"""Consent: the opt-outs in force and the ledger of every change, for an audit.

GET /dashboard/consent      opt-outs in force and the ledger, the latest first; ?q= a number
                            in any common form, ?address= one of ours (what holds for
                            it: its own lines and those of all numbers), ?source=,
                            ?change= (opt-out or opt-in), ?after= and ?optouts_after=
                            for the next pages
GET /dashboard/consent.csv  the ledger lines the same filters pick, as
                            `botkit export consent --format csv` writes them
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from ..addresses import EVERYWHERE, OurNumbers, canonical_address
from ..errors import ValidationError
from ..export import consent_text
from ..numbers import search_forms
from ..params import whole
from ..store.consent import ACTIONS, LedgerFilter, OptOutCursor
from .pages import HEADERS, Pages

if TYPE_CHECKING:
    from ..runtime import Runtime

# The sources botkit itself records; the filter takes any other too (an import's --source).
SOURCES = ("sms", "web", "import", "operator")
FILTERS = ("q", "address", "source", "change")


@dataclass(frozen=True)
class Search:
    """What a consent page or download asks for: its filters as typed, the ledger lines
    they pick, and why they cannot be read (None: they can)."""

    filters: dict[str, str]
    match: LedgerFilter
    error: str | None


def routes(pages: Pages, runtime: Runtime) -> list[Route]:
    async def consent(request: Request) -> Response:
        search = _search(request, runtime.numbers)
        context: dict[str, Any] = {
            **{name: search.filters.get(name, "") for name in FILTERS},
            "numbers": runtime.numbers.numbers,
            "sources": _sources(search.match.source),
            "actions": ACTIONS,
            "error": search.error,
            "download": request.url_for("dashboard:consent_csv").include_query_params(
                **search.filters
            ),
        }
        if search.error is not None:
            return pages.render(request, "consent.html", context, status_code=400)
        store = runtime.store.consent
        after = request.query_params.get("optouts_after", "")
        opt_outs, opt_outs_next = await store.opt_outs(
            search.match.handsets, OptOutCursor.parse(after), addresses=search.match.addresses
        )
        ledger, ledger_next = await store.ledger_page(search.match, _ledger_cursor(request))
        context |= {
            "opt_outs": opt_outs,
            "ledger": ledger,
            "opt_outs_next": _link(request, optouts_after=str(opt_outs_next))
            if opt_outs_next
            else None,
            "ledger_next": _link(request, after=str(ledger_next)) if ledger_next else None,
        }
        return pages.render(request, "consent.html", context)

    async def download(request: Request) -> Response:
        search = _search(request, runtime.numbers)
        if search.error is not None:
            return PlainTextResponse(search.error, 400, headers=HEADERS)
        return pages.download(consent_text(runtime.store, "csv", search.match), "consent.csv")

    return [
        Route("/consent", consent, methods=["GET"], name="consent"),
        Route("/consent.csv", download, methods=["GET"], name="consent_csv"),
    ]


def _search(request: Request, numbers: OurNumbers) -> Search:
    """The filters of `request`: a number (in any form that can be one), one of our
    `numbers`, a source and a change."""
    params = request.query_params
    filters = {name: value.strip() for name in FILTERS if (value := params.get(name, "")).strip()}
    handsets, error = None, None
    if "q" in filters:
        try:
            handsets = search_forms(filters["q"])
        except ValidationError:
            error = (
                f"“{filters['q']}” is not a phone number. Search for a number such as "
                "+61 412 345 678, 61412345678 or 0412 345 678."
            )
    change = filters.get("change")
    if change is not None and change not in ACTIONS:
        error = f"“{change}” is not a change: choose {' or '.join(ACTIONS)}."
    addresses = None
    if "address" in filters:
        if filters["address"] in numbers:
            filters["address"] = numbers.ours(filters["address"])  # as the select says it
            addresses = (canonical_address(filters["address"]), EVERYWHERE)
        else:
            error = (
                f"“{filters['address']}” is not one of our numbers: choose one of "
                f"{', '.join(numbers.numbers)}."
            )
    match = LedgerFilter(
        handsets=handsets,
        addresses=addresses,
        source=filters.get("source"),
        action=change,
    )
    return Search(filters, match, error)


def _ledger_cursor(request: Request) -> int | None:
    """The ledger id of `?after=` (None: the first page); ValidationError if not one."""
    return whole(request.query_params, "after")


def _sources(chosen: str | None) -> tuple[str, ...]:
    """The choices of the source filter: botkit's own, and the one chosen if another."""
    return SOURCES if chosen is None or chosen in SOURCES else (*SOURCES, chosen)


def _link(request: Request, **changes: str) -> str:
    """This page with `changes` to its query: a next page that keeps the filters and
    where the other section is."""
    return "?" + urlencode({**request.query_params, **changes})
