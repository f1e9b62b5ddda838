"""A JSON request body, read within limits: the simulator's endpoints that take one.

    given = await read_json(request)  # or BodyError(status, message): answer it as JSON

A body must be declared `application/json` (415 otherwise): a cross-site HTML form
cannot send that, so it keeps forms from other sites out. It is read as it streams in,
and refused (413) as soon as it passes `limit` bytes, whatever its Content-Length said:
the rest never sits in memory. Then it must parse (400 otherwise); JSON nested deeper than
the parser recurses (`[` * 100000) raises RecursionError, which is a malformed body too,
not a server error.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

# Enough for any JSON object of settings; an endpoint that takes text passes its own.
MAX_BODY = 64 * 1024


class BodyError(Exception):
    """The body cannot be taken: `status` (400, 413 or 415) and a `message` to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


async def read_json(request: Request, limit: int = MAX_BODY) -> Any:
    """The request's body, parsed as JSON; BodyError if it is not JSON, or over `limit`."""
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        raise BodyError(415, "send JSON (content-type: application/json)")
    too_long = BodyError(413, f"the body is over {limit} bytes")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_long
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_long
    try:
        return json.loads(body)
    except RecursionError:
        raise BodyError(400, "the body is JSON nested too deeply") from None
    except ValueError:  # malformed JSON, or bytes that are not UTF-8
        raise BodyError(400, "the body is not JSON") from None
