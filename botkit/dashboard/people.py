"""A person's page: the contact, and every conversation of one handset, with every bot,
in one timeline.

GET  /dashboard/people/{number}          the contact (name, language, time zone, fields,
                                         lists) with its edit form and the latest
                                         changes of it; the handset's latest
                                         conversations, newest first, and its latest
                                         messages of them all, each labelled with its
                                         conversation and our number (?before= an id
                                         for older)
POST /dashboard/people/{number}/contact  the edit form (CSRF): what the operator changed
                                         is saved, in the ledger as theirs, and the page
                                         shown again (303); a bad value shows the form
                                         again with the error by it (400), nothing saved

The number is in international form (`+61412345678`, URL-encoded as `%2B61412345678`
or not): another form is refused with 400; a number with no messages and no contact
gets 404.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from ..access import operator
from ..contacts import Contact
from ..csrf import checked_form
from ..errors import ValidationError
from ..numbers import international
from ..params import whole
from ..store.contacts import Author
from ..store.conversations import Person
from . import contact_form
from .pages import Pages

if TYPE_CHECKING:
    from ..runtime import Runtime

# The changes of a contact its page shows, newest first.
LEDGER = 50
SAVED = {"1": "Saved.", "0": "Nothing to save: no value was changed."}


def routes(pages: Pages, runtime: Runtime) -> list[Route]:
    def handset_of(request: Request) -> str | Response:
        """The path's number in international form; else the 400 page saying so."""
        number = request.path_params["number"]
        try:
            return international(number, "number")
        except ValidationError as exc:
            shown = number if len(number) <= 40 else f"{number[:40]}..."  # not echoed whole
            context = {"number": shown, "error": f"{exc}: write it as +61412345678."}
            return pages.render(request, "person.html", context, status_code=400)

    async def person(request: Request) -> Response:
        handset = handset_of(request)
        if isinstance(handset, Response):
            return handset
        contact = await runtime.store.contacts.get(handset)
        notice = SAVED.get(request.query_params.get("saved", ""), "")
        return await show(request, contact, notice=notice)

    async def edit(request: Request) -> Response:
        handset = handset_of(request)
        if isinstance(handset, Response):
            return handset
        contacts = runtime.store.contacts
        limit, fields = contact_form.form_limits(contacts.fields)
        form = await checked_form(request, limit, fields)
        given = {key: value for key, value in form.items() if isinstance(value, str)}
        contact = await contacts.get(handset)
        if given.get("version") != contact_form.version(contact):
            error = "It changed while you were editing it (see its changes): edit it again."
            return await show(request, contact, error=error, status_code=409)
        errors = contact_form.apply(contact, contacts.fields, given)
        if errors:  # shown with the values as stored: those typed are in the form
            stored = await contacts.get(handset)
            return await show(request, stored, given=given, errors=errors, status_code=400)
        saved = await contacts.save(contact, Author("operator", operator(request)))
        url = request.url_for("dashboard:person", number=handset)
        return RedirectResponse(f"{url.path}?saved={int(saved)}#contact", 303)

    async def show(
        request: Request,
        contact: Contact,
        *,
        given: dict[str, str] | None = None,
        errors: dict[str, str] | None = None,
        error: str = "",
        notice: str = "",
        status_code: int = 200,
    ) -> Response:
        """The page, its form filled with the contact's values (or those `given`)."""
        handset, contacts = contact.number, runtime.store.contacts
        before = whole(request.query_params, "before")
        found = await runtime.store.conversations.person(handset, before)
        if found is None and not contact.stored:
            context = {"number": handset, "person": None, "contact": None}
            return pages.render(request, "person.html", context, status_code=404)
        declared = contacts.fields
        changes = await contacts.ledger(handset, LEDGER)
        context: dict[str, Any] = {
            "number": handset,
            "person": found or Person(handset, [], False, [], {}, {}, None),
            "latest": before is None,
            "contact": contact,
            "values": contact_form.values(contact, declared),
            "inputs": contact_form.inputs(contact, declared, given, errors),
            "version": contact_form.version(contact),
            "ledger": contact_form.ledger(changes, contact, declared),
            "editing": bool(errors or error),
            "contact_error": error,
            "notice": notice,
        }
        return pages.render(request, "person.html", context, status_code=status_code)

    return [
        Route("/people/{number}", person, methods=["GET"], name="person"),
        Route("/people/{number}/contact", edit, methods=["POST"], name="contact"),
    ]
