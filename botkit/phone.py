"""The simulator's phone page: one handset's conversation with the bot, and a box to text it.

The page polls `api/handsets/{number}` for the conversation and posts to
`api/handsets/{number}/send` (`api/messages` and `api/mos` list every MT and MO, for
tests). The handset picks which of our numbers it texts (by default the one its latest
MT came from), and each MT shows the number, or mask, it came from. Every URL is
relative, so it works at `/` and mounted under a prefix such as `/simulator/`. When the
app runs the simulator, the page links to its dashboard and to the transcript of the
handset's latest thread. Handset text is untrusted: the template autoescapes and the
script builds the DOM with textContent, under a CSP that forbids inline script.

Each MO shows the app's answer: `sending` until its callback is answered, `refused
(HTTP 503)` for a non-200, `not delivered` when the app was never reached; after a 200,
`stored`, or, when the app gave the simulator a `handling` lookup (it runs it
in-process), how its handler fared: `handled`, `failed: <error>` (cut short).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import jinja2
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from .bodies import MAX_BODY, BodyError, read_json
from .callbacks import MAX_CONTENT
from .errors import ValidationError
from .numbers import international
from .simulated import SimMessage, SimMO
from .threads import parse_reference

PACKAGE = Path(__file__).parent
# The body of the longest text the app takes, every character as long as JSON may spell
# it (a surrogate pair escaped: 12 bytes), and room for the rest of the object.
MAX_SEND_BODY = 12 * MAX_CONTENT + MAX_BODY
DEFAULT_HANDSET = "+61400000001"
# An MO's error is cut to this many characters on the phone (the dashboard has it whole).
SHORT_ERROR = 60

# The app's record of MOs by gateway id: (status, error) of each it stored, for the
# page to show how the app handled them (botkit/handling.py words the status).
HandlingLookup = Callable[[Sequence[int]], Awaitable[Mapping[int, tuple[str, str | None]]]]
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}

_templates = Jinja2Templates(
    env=jinja2.Environment(loader=jinja2.FileSystemLoader(PACKAGE / "templates"), autoescape=True)
)


class Handsets(Protocol):
    """What the phone page reads of the gateway simulator, and asks of it (a `Simulator`
    is one): its numbers, what it sent and was sent, and a handset's next MO."""

    dashboard: str | None
    handling: HandlingLookup | None
    sent: list[SimMessage]
    mos: list[SimMO]

    @property
    def numbers(self) -> tuple[str, ...]: ...

    def replies_go_to(self, handset: str) -> str: ...

    def dialled(self, address: str, field: str = "destination") -> str: ...

    def inbox(self, number: str) -> list[SimMessage]: ...

    def queue_mo(
        self, source: str, content: str | bytes, *, destination: str | None = None
    ) -> SimMO: ...


class PhonePage:
    """The routes of the phone page, over one simulator."""

    def __init__(self, simulator: Handsets) -> None:
        self.simulator = simulator

    def routes(self) -> list[BaseRoute]:
        """The page, its two JSON endpoints and its static files."""
        return [
            Route("/", self.page, methods=["GET"]),
            Route("/api/messages", self.all_sent, methods=["GET"]),
            Route("/api/mos", self.all_mos, methods=["GET"]),
            Route("/api/handsets/{number}", self.conversation, methods=["GET"]),
            Route("/api/handsets/{number}/send", self.send, methods=["POST"]),
            Mount("/static", StaticFiles(directory=PACKAGE / "static"), name="static"),
        ]

    async def page(self, request: Request) -> Response:
        """The page for the handset in `?number=` (default +61400000001)."""
        error = None
        try:
            number = international(request.query_params.get("number", DEFAULT_HANDSET), "number")
        except ValidationError as exc:
            number, error = DEFAULT_HANDSET, str(exc)
        context = {
            "number": number,
            "numbers": self.simulator.numbers,
            "to": self.simulator.replies_go_to(number),
            "messages": await self.messages(number),
            "error": error,
            "dashboard": self.simulator.dashboard,
            "transcript": self.transcript(number),
        }
        return _templates.TemplateResponse(
            request,
            "simulator/phone.html",
            context,
            status_code=200 if error is None else 400,
            headers=HEADERS,
        )

    async def all_sent(self, request: Request) -> Response:
        """GET api/messages: every MT the gateway accepted, the address the handset saw it
        come from, and when (seconds since the epoch), for tests over real HTTP."""
        sent = [
            {
                "id": str(m.id),
                "destination": m.destination,
                "sender": m.sender,
                "reference": m.reference,
                "accepted_at": m.created_at,
            }
            for m in self.simulator.sent
        ]
        return JSONResponse({"messages": sent}, headers=HEADERS)

    async def all_mos(self, request: Request) -> Response:
        """GET api/mos: every MO a handset sent, with the app's answer to each callback
        attempt (null: unreachable) and whether delivery is still under way."""
        mos = [
            {
                "id": str(mo.id),
                "source": mo.source,
                "destination": mo.destination,
                "content": mo.content,
                "reply_to": None if mo.reply_to is None else str(mo.reply_to),
                "answers": [] if mo.callback is None else mo.callback.answers,
                "pending": mo.pending,
            }
            for mo in self.simulator.mos
        ]
        return JSONResponse({"mos": mos}, headers=HEADERS)

    async def conversation(self, request: Request) -> Response:
        """GET api/handsets/{number}: the conversation as JSON (ids as strings: 64-bit)."""
        try:
            number = international(request.path_params["number"], "number")
        except ValidationError as exc:
            return JSONResponse({"error": str(exc)}, 400, headers=HEADERS)
        conversation = {
            "number": number,
            "to": self.simulator.replies_go_to(number),
            "messages": await self.messages(number),
            "transcript": self.transcript(number),
        }
        return JSONResponse(conversation, headers=HEADERS)

    async def send(self, request: Request) -> Response:
        """POST api/handsets/{number}/send with JSON {"text": ..., "to": ...}: the handset
        texts the app, at our number `to` in any spelling (optional: else where replies go
        by default). Text the app would refuse, and a body over MAX_SEND_BODY, are refused."""
        try:
            number = international(request.path_params["number"], "number")
            text, to = _text_and_to(await read_json(request, MAX_SEND_BODY))
            to = None if to is None else self.simulator.dialled(to, "to")
        except BodyError as exc:
            return JSONResponse({"error": exc.message}, exc.status, headers=HEADERS)
        except ValueError as exc:  # ValidationError too
            return JSONResponse({"error": str(exc)}, 400, headers=HEADERS)
        mo = self.simulator.queue_mo(number, text, destination=to)
        return JSONResponse({"id": str(mo.id)}, 202, headers=HEADERS)

    async def messages(self, number: str) -> list[dict[str, Any]]:
        """MTs to and MOs from one handset, oldest first, shaped for the page."""
        mts = [_mt(message) for message in self.simulator.inbox(number)]
        sent = [mo for mo in self.simulator.mos if mo.source == number]
        handling = await self._handling([mo.id for mo in sent if mo.answer == 200])
        mos = [_mo(mo, handling.get(mo.id)) for mo in sent]
        return sorted(mts + mos, key=lambda entry: entry["at"])

    async def _handling(self, ids: list[int]) -> Mapping[int, tuple[str, str | None]]:
        """How the app handled the MOs with these ids, if the simulator can ask it."""
        lookup = self.simulator.handling
        return {} if lookup is None or not ids else await lookup(ids)

    def transcript(self, number: str) -> str | None:
        """The dashboard's page of the thread of the latest MT to `number` (its reference
        names it), when the simulator knows the dashboard; else None."""
        if self.simulator.dashboard is None:
            return None
        for message in reversed(self.simulator.inbox(number)):
            if (parsed := parse_reference(message.reference)) is not None:
                return f"{self.simulator.dashboard}threads/{parsed[0]}"
        return None


def _text_and_to(given: Any) -> tuple[str, str | None]:
    """The "text" of a parsed JSON object, non-empty and no longer than the app takes,
    and its "to" (a string, or absent), or ValidationError."""
    if not isinstance(given, dict):
        raise ValidationError("text", "the body is not a JSON object")
    text, to = given.get("text"), given.get("to")
    if to is not None and not isinstance(to, str):
        raise ValidationError("to", "must be one of our numbers, as a string")
    if not isinstance(text, str) or not text:
        raise ValidationError("text", "must be a non-empty string")
    if len(text) > MAX_CONTENT:
        raise ValidationError(
            "text", f"is longer than {MAX_CONTENT} characters: the app refuses it"
        )
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError("text", "holds a lone surrogate, which no handset can send") from None
    return text, to


def _mt(message: SimMessage) -> dict[str, Any]:
    status = message.statuses[-1] if message.statuses else "accepted"
    return {
        "direction": "mt",
        "id": str(message.id),
        "text": message.content,
        "address": message.sender,
        "status": status,
        "at": message.created_at,
    }


def _mo(mo: SimMO, handled: tuple[str, str | None] | None) -> dict[str, Any]:
    """An MO shaped for the page, with the app's answer and, if known, how the app
    `handled` it (its status and error)."""
    return {
        "direction": "mo",
        "id": str(mo.id),
        "text": f"[binary, base64] {mo.content}" if mo.binary else mo.content,
        "address": mo.destination,
        "status": _mo_status(mo, handled),
        "at": mo.created_at,
    }


def _mo_status(mo: SimMO, handled: tuple[str, str | None] | None) -> str:
    """What the handset sees of an MO: the app's answer, then how it was handled."""
    if mo.pending:
        return "sending"
    if mo.answer is None:
        return "not delivered"
    if mo.answer != 200:
        return f"refused (HTTP {mo.answer})"
    if handled is None or handled[0] == "received":
        return "stored"
    status, error = handled
    if status == "failed" and error:
        return f"failed: {_short(error)}"
    return status


def _short(text: str) -> str:
    """`text` cut to SHORT_ERROR characters."""
    return text if len(text) <= SHORT_ERROR else text[: SHORT_ERROR - 1] + "…"
