"""A person's page: every conversation of one handset, with every bot, in one timeline.

GET /dashboard/people/{number}    the handset's latest conversations, newest first, and
                                  its latest messages of them all, each labelled with its
                                  conversation and our number (?before= an id for older)

The number is in international form (`+61412345678`, URL-encoded as `%2B61412345678`
or not): another form is refused with 400, a number with no messages gets 404.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..errors import ValidationError
from ..numbers import international
from ..params import whole
from .pages import Pages

if TYPE_CHECKING:
    from ..runtime import Runtime


def routes(pages: Pages, runtime: Runtime) -> list[Route]:
    async def person(request: Request) -> Response:
        number = request.path_params["number"]
        try:
            handset = international(number, "number")
        except ValidationError as exc:
            shown = number if len(number) <= 40 else f"{number[:40]}..."  # not echoed whole
            context = {"number": shown, "error": f"{exc}: write it as +61412345678."}
            return pages.render(request, "person.html", context, status_code=400)
        before = whole(request.query_params, "before")
        found = await runtime.store.conversations.person(handset, before)
        context = {"number": handset, "person": found, "latest": before is None}
        return pages.render(request, "person.html", context, status_code=200 if found else 404)

    return [Route("/people/{number}", person, methods=["GET"], name="person")]
