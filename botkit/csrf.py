"""CSRF tokens: every dashboard form carries the browser's token (sessions.py says
where it is kept); a POST without it, or with another, is refused (403) before it
changes anything, and a request with no token to check against before its body is read."""

from __future__ import annotations

import secrets

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request

from .bodies import MAX_BODY, MAX_FIELDS, BodyError, read_form
from .sessions import visit_of

MISSING = "missing CSRF token: reload the page and try again"


def csrf_token(request: Request) -> str:
    """The browser's CSRF token, made on first use."""
    return visit_of(request).csrf_token()


async def checked_form(
    request: Request, limit: int = MAX_BODY, fields: int = MAX_FIELDS
) -> FormData:
    """The POSTed form, once its CSRF token is the session's; else 403. A form is a
    small URL-encoded body (bodies.py: else 413 or 415), of `limit` bytes and `fields`
    fields at most."""
    expected = visit_of(request).expected_csrf()
    if expected is None:
        raise HTTPException(403, MISSING)
    try:
        form = await read_form(request, limit, fields)
    except BodyError as exc:
        raise HTTPException(exc.status, exc.message) from None
    given = form.get("csrf")
    if not isinstance(given, str):
        raise HTTPException(403, MISSING)
    if not secrets.compare_digest(given.encode(), expected.encode()):
        raise HTTPException(403, "wrong CSRF token: reload the page and try again")
    return form
