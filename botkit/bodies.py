"""Request bodies, read within limits: JSON for the simulator's endpoints, URL-encoded
forms for the dashboard's.

    given = await read_json(request)  # or BodyError(status, message): answer it
    form = await read_form(request)   # the same, for a dashboard form

A body must be declared as its reader's media type (415 otherwise): a cross-site HTML
form cannot send JSON, which keeps forms from other sites out of the simulator, and a
dashboard form is never multipart, so no file part is ever spooled to disk. It is
refused (413) by its Content-Length before a byte is read, and again as soon as it
streams past `limit`, whatever its Content-Length said: the rest never sits in memory.
Then it must parse (400 otherwise); JSON nested deeper than the parser recurses
(`[` * 100000) raises RecursionError, which is a malformed body too, not a server error.
A client that leaves before its body is whole gets a 400 too (which goes nowhere): it
is gone, no server error.
"""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import parse_qsl

from starlette.datastructures import FormData
from starlette.requests import ClientDisconnect, Request

log = logging.getLogger("botkit")

# Enough for any JSON object of settings, or any dashboard form; an endpoint that takes
# longer text passes its own.
MAX_BODY = 64 * 1024
# The dashboard's forms have four fields at most (csrf, user, password, next).
MAX_FIELDS = 16

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"


class BodyError(Exception):
    """The body cannot be taken: `status` (400, 413 or 415) and a `message` to answer
    (if the client is still there)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


async def read_json(request: Request, limit: int = MAX_BODY) -> Any:
    """The request's body, parsed as JSON; BodyError if it is not JSON, or over `limit`."""
    body = await read_body(request, JSON, "JSON", limit)
    try:
        return json.loads(body)
    except RecursionError:
        raise BodyError(400, "the body is JSON nested too deeply") from None
    except ValueError:  # malformed JSON, or bytes that are not UTF-8
        raise BodyError(400, "the body is not JSON") from None


async def read_form(request: Request, limit: int = MAX_BODY, fields: int = MAX_FIELDS) -> FormData:
    """The request's URL-encoded form; BodyError if it is another kind of body, over
    `limit` bytes or `fields` fields, or not UTF-8."""
    if request.headers.get("content-length") == "0" and "content-type" not in request.headers:
        return FormData()  # a POST of nothing: a form without fields
    body = await read_body(request, FORM, "a URL-encoded form", limit)
    try:
        pairs = parse_qsl(
            body.decode(), keep_blank_values=True, max_num_fields=fields, errors="strict"
        )
    except UnicodeDecodeError:  # a ValueError too: caught first
        raise BodyError(400, "the form is not UTF-8") from None
    except ValueError:  # parse_qsl's "Max number of fields exceeded"
        raise BodyError(413, f"the form has more than {fields} fields") from None
    return FormData(pairs)


async def read_body(request: Request, media_type: str, what: str, limit: int) -> bytes:
    """The request's body, declared `media_type` (`what` names it in the refusal) and
    no longer than `limit` bytes; else BodyError (415, 413; 400 if the client left
    before sending it all)."""
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != media_type:
        raise BodyError(415, f"send {what} (content-type: {media_type})")
    too_long = BodyError(413, f"the body is over {limit} bytes")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_long
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise too_long
    except ClientDisconnect:
        left = "the client left before its body was whole"
        log.debug("%s %s: %s", request.method, request.url.path, left)
        raise BodyError(400, left) from None
    return bytes(body)
