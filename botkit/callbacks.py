"""The gateway's callbacks: `GET /callbacks/{token}/mo` and `/dlr`.

validate -> store -> answer. `200 OK` is sent only once the MO or DLR is committed,
or, when the database cannot commit it, once it is fsynced in the spool (spool.py,
stored later by replay.py); only when neither can keep it is the answer 503, for the
gateway to retry if it does. A repeated id is stored once.

The spec says nothing of retrying a 400, so a 400 may lose a handset's message for
good: only a required parameter (an MO's id, source, destination and content; a
DLR's id and status) that is missing or malformed is refused. Anything else is kept,
bent as little as it takes (a value cut to size, a bad `reply_to` dropped, text that
is not UTF-8 read as Windows-1252, base64 in another dialect re-encoded, a number's `+`
that came unescaped, as a space, restored), and what was done is a flag word stored
with it (`messages.flags`, `deliveries.flags`) and a warning in the log. A HEAD (a
URL check) is answered and does nothing else.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import logging
import re
import secrets
import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from starlette.types import ASGIApp, Receive, Scope, Send

from .db import DatabaseError
from .dialects import Value, decode_base64, is_strict_base64, parse_query
from .errors import ValidationError
from .logs import elapsed_ms
from .messages import IncomingDLR, IncomingMO
from .metrics import status_label
from .numbers import international
from .replay import spooled
from .spool import SpoolError
from .store import DeliveryOutcome

if TYPE_CHECKING:
    from .runtime import Runtime

log = logging.getLogger("botkit.callbacks")
T = TypeVar("T")

# Leading zeros do not count: the value decides whether it fits 64 bits.
INT64 = re.compile(r"(-?)0*([0-9]{1,19})")
ADDRESS = re.compile(r"\+?[0-9]{2,20}")
# A `+` sent unescaped, which form decoding turns into a space: the only shape repaired.
UNESCAPED_PLUS = re.compile(r" [0-9]+")
# Carriers differ: any short printable status is kept as sent, unknown ones included.
# Never a control (C0, DEL, C1 with NEL) nor a Unicode line end: no forged log lines.
STATUS = re.compile(r"[^\x00-\x1f\x7f-\x9f\u2028\u2029]{1,64}")
MAX_REFERENCE = 50
MAX_CONTENT = 40_000
MAX_OPERATOR = 100
# A callback the database has not stored in this long is spooled (its write may still
# commit: the replay then finds it stored, as a repeated callback would).
STORE_SECONDS = 5.0


class MissingParameter(ValidationError):
    """A required callback parameter is absent."""


class Reader:
    """One callback's parameters, read leniently where losing the message is the worse
    outcome: what it had to do to keep a value is a flag word (`flags`, stored with the
    message) and a note for the log line (`notes`).

    A required parameter that is missing, given twice or malformed is refused (400);
    an optional one given twice keeps its first value (`reference-repeated`).
    """

    def __init__(self, query: dict[str, list[Value]]) -> None:
        self.query = query
        self.flags: list[str] = []
        self.notes: list[str] = []

    def flag(self, name: str, what: str, note: str) -> None:
        self.flags.append(f"{name.replace('_', '-')}-{what}")
        self.notes.append(f"{name} {note}")

    def required(self, name: str, pattern: re.Pattern[str] | None = None, what: str = "") -> str:
        """A required parameter; with `pattern`, it must match it as sent (a NUL too)."""
        values = self.query.get(name)
        if not values:
            raise MissingParameter(name, "is missing")
        if len(values) > 1:
            raise ValidationError(name, "is given more than once")
        if pattern is not None and not pattern.fullmatch(values[0].text):
            raise ValidationError(name, f"{values[0].text[:40]!r} is not {what}")
        return self._text(name, values[0])

    def optional(self, name: str, limit: int | None = None) -> str | None:
        values = self.query.get(name)
        if not values:
            return None
        if len(values) > 1:
            self.flag(name, "repeated", f"given {len(values)} times: the first kept")
        text = self._text(name, values[0])
        if limit is not None and len(text) > limit:
            self.flag(name, "truncated", f"of {len(text)} characters cut to {limit}")
            text = text[:limit]
        return text

    def _text(self, name: str, value: Value) -> str:
        """A NUL (which no SMS means, and PostgreSQL cannot store) becomes U+FFFD, the
        replacement character: the message is kept, the spot shown."""
        if value.cp1252:
            self.flag(name, "cp1252", "is not UTF-8: read as Windows-1252")
        if "\x00" not in value.text:
            return value.text
        self.flag(name, "nul-replaced", "holds NUL: replaced by U+FFFD")
        return value.text.replace("\x00", "\ufffd")

    def int64(self, name: str) -> int | None:
        """An optional 64-bit id: a malformed one is dropped (`reply-to-invalid`)."""
        text = self.optional(name)
        if text is None:
            return None
        value = int64(text)
        if value is None:
            self.flag(name, "invalid", f"{text[:40]!r} is not a 64-bit signed integer: dropped")
        return value

    def number(self, name: str) -> str:
        """A required phone number or short code, its leading `+` restored when it came
        unescaped and form decoding made it a space (`source-plus-restored`)."""
        text = self.required(name)
        if UNESCAPED_PLUS.fullmatch(text) is None:
            return text
        self.flag(name, "plus-restored", "began with a space: read as an unescaped `+`")
        return "+" + text[1:]


def int64(text: str) -> int | None:
    """The 64-bit signed integer `text` writes in decimal, leading zeros allowed (the
    value decides, not the number of digits), or None."""
    found = INT64.fullmatch(text)
    if found is None:
        return None
    value = int(found[1] + found[2])
    return value if -(2**63) <= value < 2**63 else None


def _required_int64(reader: Reader, name: str) -> int:
    text = reader.required(name)
    value = int64(text)
    if value is None:
        raise ValidationError(name, f"{text[:40]!r} is not a 64-bit signed integer")
    return value


def parse_mo(query: dict[str, list[Value]]) -> IncomingMO:
    """Validate an MO callback's parameters (`dialects.parse_query`), or raise
    ValidationError naming the bad one. Only the required ones can refuse an MO."""
    reader = Reader(query)
    gateway_id = _required_int64(reader, "id")
    source = international(reader.number("source"), "source")
    destination = reader.number("destination")
    if not ADDRESS.fullmatch(destination):
        raise ValidationError(
            "destination", f"{destination[:40]!r} is not a short code or phone number"
        )
    content = reader.required("content")
    if len(content) > MAX_CONTENT:
        raise ValidationError("content", f"is longer than {MAX_CONTENT} characters")
    content, binary = _content(reader, content, reader.optional("encoding"))
    return IncomingMO(
        gateway_id=gateway_id,
        source=source,
        destination=destination,
        content=content,
        operator=reader.optional("operator", MAX_OPERATOR) or None,
        reply_to=reader.int64("reply_to"),
        reference=reader.optional("reference", MAX_REFERENCE),
        binary=binary,
        flags=tuple(reader.flags),
        notes=tuple(reader.notes),
    )


def _content(reader: Reader, content: str, encoding: str | None) -> tuple[str, bool]:
    """The content to store, and whether it is binary (kept as standard base64).

    `base64` in any case is binary, in any of its dialects (dialects.decode_base64),
    kept as sent when it is strict base64, else re-encoded (`content-base64-normalized`).
    Any other encoding the spec does not define: the content is kept as the text it
    came as (`encoding-unknown`), rather than refused and lost for good.
    """
    if encoding is None:
        return content, False
    if encoding.strip().lower() != "base64":
        reader.flag("encoding", "unknown", f"{encoding[:20]!r} is unknown: content kept as text")
        return content, False
    if is_strict_base64(content):
        return content, True
    data = decode_base64(content)
    if data is None:
        raise ValidationError("content", "is not base64 in any dialect")
    reader.flag("content", "base64-normalized", "re-encoded as standard, padded base64")
    return base64.b64encode(data).decode(), True


def parse_dlr(query: dict[str, list[Value]]) -> IncomingDLR:
    """Validate a DLR callback's parameters. A status outside the spec's eight is kept
    verbatim (carriers differ), but it must look like a status; an over-long reference
    is cut and flagged, so it matches no MT by reference (store/deliveries.py)."""
    reader = Reader(query)
    gateway_id = _required_int64(reader, "id")
    status = reader.required("status", STATUS, "a delivery status")
    return IncomingDLR(
        gateway_id=gateway_id,
        status=status,
        reference=reader.optional("reference", MAX_REFERENCE),
        flags=tuple(reader.flags),
        notes=tuple(reader.notes),
    )


# The two callback paths: a token of Starlette's `{token}` shape, and the endpoint (a
# trailing slash, which Starlette's routing redirected, is served as without).
CALLBACK_PATH = re.compile(r"/callbacks/([^/]+)/(mo|dlr)/?")
ALLOWED = "GET, HEAD"


class Answer(NamedTuple):
    """A callback's response: its status and text (empty for a HEAD)."""

    status: int
    text: str = ""


class CallbackEndpoints:
    """ASGI middleware that serves `GET /callbacks/{token}/mo` and `/dlr`, guarded by the
    secret token and the IP allow-list, ahead of routing; any other request goes on to
    `app`. They are the hot path, every MO and DLR: Starlette's routing, Request object
    and exception middleware cost them a tenth of the process's CPU under a flood, and
    they need none of it."""

    def __init__(self, app: ASGIApp, runtime: Runtime, token: str) -> None:
        self.app = app
        self.runtime = runtime
        self.token = token.encode()
        self.networks = [
            ipaddress.ip_network(entry, strict=False) for entry in runtime.settings.callback_allow
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = CALLBACK_PATH.fullmatch(_route_path(scope)) if scope["type"] == "http" else None
        if found is None:
            await self.app(scope, receive, send)
            return
        token, kind = found.groups()
        if scope["method"] not in ("GET", "HEAD"):
            answer = Answer(405, "Method Not Allowed")
            await _send(send, answer, ((b"allow", ALLOWED.encode()),))
            return
        answer = self._refuse(scope, token, kind)
        if answer is None:
            query = parse_query(scope["query_string"])
            answer = await (self._mo(query) if kind == "mo" else self._dlr(query))
        await _send(send, answer)

    def _refuse(self, scope: Scope, token: str, kind: str) -> Answer | None:
        """The answer to a wrong token or a caller outside the allow-list; else, to a
        HEAD (a URL check), an empty 200 that does nothing more."""
        if not secrets.compare_digest(token.encode(), self.token):
            return Answer(404, "ERROR Not found")
        head = scope["method"] == "HEAD"
        if self.networks and not _allowed(scope, self.networks):
            if kind == "mo" and not head:
                self.runtime.metrics.mo_received["forbidden"].inc()
            log.warning(
                "%s callback refused from %s: not in BOTKIT_CALLBACK_ALLOW",
                kind,
                _host(scope),
                extra={"event": f"{kind}.refused", "client": _host(scope), "http_status": 403},
            )
            return Answer(403, "ERROR Forbidden")
        return Answer(200) if head else None

    async def _mo(self, query: dict[str, list[Value]]) -> Answer:
        started = time.perf_counter()
        metrics = self.runtime.metrics
        try:
            incoming = parse_mo(query)
        except ValidationError as exc:
            metrics.mo_received["invalid"].inc()
            return _bad_request("mo", exc, query)
        if self.runtime.spool.pending:
            return await self._spool(incoming, started)
        try:
            with self.runtime.intake.storing():
                message_id = await _within(self.runtime.dispatcher.store_mo(incoming))
        except (DatabaseError, TimeoutError) as exc:
            return await self._spool(incoming, started, exc)
        if message_id is None:
            metrics.mo_received["duplicate"].inc()
            log.info(
                "mo %s from %s: duplicate, already stored",
                incoming.gateway_id,
                incoming.source,
                extra=_mo_fields(incoming, "mo.duplicate", started),
            )
        else:
            metrics.mo_received["stored"].inc()
            log.info(
                "mo %s from %s: stored as %s",
                incoming.gateway_id,
                incoming.source,
                message_id,
                extra={**_mo_fields(incoming, "mo.stored", started), "message_id": message_id},
            )
            if incoming.flags:
                _warn_flagged("mo", incoming, message_id, incoming.source)
        return Answer(200, "OK")

    async def _dlr(self, query: dict[str, list[Value]]) -> Answer:
        started = time.perf_counter()
        try:
            incoming = parse_dlr(query)
        except ValidationError as exc:
            return _bad_request("dlr", exc, query)
        if self.runtime.spool.pending:
            return await self._spool(incoming, started)
        try:
            outcome = await _within(self.runtime.store.deliveries.record(incoming))
        except (DatabaseError, TimeoutError) as exc:
            return await self._spool(incoming, started, exc)
        if outcome.new:
            self.runtime.metrics.dlr_received[status_label(incoming.status)].inc()
        _log_dlr(incoming, outcome, started)
        if outcome.new and incoming.flags:
            _warn_flagged("dlr", incoming, outcome.message_id, outcome.handset)
        return Answer(200, "OK")

    async def _spool(
        self,
        incoming: IncomingMO | IncomingDLR,
        started: float,
        failure: BaseException | None = None,
    ) -> Answer:
        """Keep a callback in the spool (replay.py stores it later), because the database
        `failure`d, or behind others waiting there (None); then answer 200. 503 only if
        the spool could not keep it either."""
        kind, fields = spooled(incoming)
        why = "behind others waiting there" if failure is None else _unstored(failure)
        extra = {"event": f"{kind}.spooled", "gateway_id": incoming.gateway_id}
        if isinstance(incoming, IncomingMO):
            extra = _mo_fields(incoming, f"{kind}.spooled", started)
        try:
            await self.runtime.spool.append(kind, fields)
        except SpoolError as exc:
            if kind == "mo":
                self.runtime.metrics.mo_received["unavailable"].inc()
            log.error(
                "%s %s: neither stored (%s) nor spooled, the gateway may retry: %s",
                kind,
                incoming.gateway_id,
                why,
                exc,
                extra={**extra, "event": f"{kind}.unavailable"},
            )
            return Answer(503, "ERROR Temporarily unavailable")
        if kind == "mo":
            self.runtime.metrics.mo_received["spooled"].inc()
        log.log(
            logging.INFO if failure is None else logging.WARNING,
            "%s %s: spooled, to be stored later: %s",
            kind,
            incoming.gateway_id,
            why,
            extra=extra,
        )
        return Answer(200, "OK")


async def _within(store: Awaitable[T]) -> T:
    """What `store` returns, or TimeoutError after STORE_SECONDS; it goes on regardless
    (the replay then finds what it stored), and a late failure of it is logged."""
    task = asyncio.ensure_future(store)
    try:
        async with asyncio.timeout(STORE_SECONDS):
            return await asyncio.shield(task)
    except TimeoutError:
        task.add_done_callback(_late)
        raise


def _late(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.info("a callback's write that was given up on failed after all: %s", task.exception())


def _unstored(exc: BaseException) -> str:
    """Why the database did not take a callback, for its log line."""
    if isinstance(exc, TimeoutError):
        return f"the database took over {STORE_SECONDS:g}s"
    return f"the database failed: {exc}"


async def _send(send: Send, answer: Answer, headers: tuple[tuple[bytes, bytes], ...] = ()) -> None:
    """Send `answer` as a plain-text response (uvicorn leaves out the body of a HEAD's)."""
    body = answer.text.encode()
    await send(
        {
            "type": "http.response.start",
            "status": answer.status,
            "headers": [
                (b"content-length", str(len(body)).encode()),
                (b"content-type", b"text/plain; charset=utf-8"),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _route_path(scope: Scope) -> str:
    """The request's path below the app's root path, as Starlette's routing reads it."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if not root or not path.startswith(root):
        return path
    if path == root:
        return ""
    return path[len(root) :] if path[len(root)] == "/" else path


def _mo_fields(incoming: IncomingMO, event: str, started: float) -> dict[str, Any]:
    """The log fields of an MO callback; never its content."""
    return {
        "event": event,
        "gateway_id": incoming.gateway_id,
        "handset": incoming.source,
        "address": incoming.destination,
        "elapsed_ms": elapsed_ms(started),
    }


def _log_dlr(incoming: IncomingDLR, outcome: DeliveryOutcome, started: float) -> None:
    log.info(
        "dlr %s %s: %s%s",
        incoming.gateway_id,
        incoming.status,
        f"mt {outcome.message_id}" if outcome.message_id else "no MT of ours",
        "" if outcome.new else " (repeat)",
        extra={
            "event": "dlr.stored" if outcome.new else "dlr.repeat",
            "gateway_id": incoming.gateway_id,
            "status": incoming.status,
            "reference": incoming.reference,
            "message_id": outcome.message_id,
            "thread_id": outcome.thread_id,
            "handset": outcome.handset,
            "elapsed_ms": elapsed_ms(started),
        },
    )


def _warn_flagged(
    kind: str, incoming: IncomingMO | IncomingDLR, message_id: int | None, handset: str | None
) -> None:
    """The warning for a callback kept only by bending a value (its flags, stored)."""
    log.warning(
        "%s %s: kept, but %s",
        kind,
        incoming.gateway_id,
        "; ".join(incoming.notes),
        extra={
            "event": f"{kind}.flagged",
            "gateway_id": incoming.gateway_id,
            "flags": ",".join(incoming.flags),
            "message_id": message_id,
            "handset": handset,
        },
    )


def _bad_request(kind: str, exc: ValidationError, query: dict[str, list[Value]]) -> Answer:
    word = "Missing" if isinstance(exc, MissingParameter) else "Invalid"
    given = query.get("id", [])
    given_id = given[0].text if given else ""
    log.warning(
        "%s callback refused: %s parameter %s",
        kind,
        exc.field,
        exc.reason,
        extra={
            "event": f"{kind}.refused",
            "http_status": 400,
            "parameter": exc.field,
            "gateway_id": int64(given_id),
        },
    )
    return Answer(400, f"ERROR {word} {exc.field} parameter")


def _host(scope: Scope) -> str:
    client = scope.get("client")
    return client[0] if client else "unknown"


def _allowed(scope: Scope, networks: list[ipaddress._BaseNetwork]) -> bool:
    try:
        address = ipaddress.ip_address(_host(scope))
    except ValueError:
        return False
    return any(address in network for network in networks)
