"""The gateway's callbacks: `GET /callbacks/{token}/mo` and `/dlr`.

validate -> store -> answer. `200 OK` is sent only once the MO or DLR is committed,
so the gateway retries anything we did not keep; a repeated id is stored once.
"""

from __future__ import annotations

import base64
import ipaddress
import logging
import re
import secrets
import time
from typing import TYPE_CHECKING, Any

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from .db import DatabaseError
from .errors import ValidationError
from .logs import elapsed_ms
from .messages import IncomingDLR, IncomingMO
from .numbers import international
from .store import DeliveryOutcome

if TYPE_CHECKING:
    from .runtime import Runtime

log = logging.getLogger("botkit.callbacks")

INT64 = re.compile(r"-?[0-9]{1,19}")
ADDRESS = re.compile(r"\+?[0-9]{2,20}")
# Carriers differ: any short printable status is kept as sent, unknown ones included.
STATUS = re.compile(r"[^\x00-\x1f\x7f]{1,64}")
MAX_REFERENCE = 50
MAX_CONTENT = 40_000
MAX_OPERATOR = 100


class MissingParameter(ValidationError):
    """A required callback parameter is absent."""


def _one(params: QueryParams, name: str, required: bool) -> str | None:
    """A parameter given once; a NUL in it (which no SMS means, and PostgreSQL cannot
    store) becomes U+FFFD, the replacement character: the message is kept, the spot shown."""
    values = params.getlist(name)
    if not values:
        if required:
            raise MissingParameter(name, "is missing")
        return None
    if len(values) > 1:
        raise ValidationError(name, "is given more than once")
    return values[0].replace("\x00", "\ufffd")


def _int64(value: str | None, name: str) -> int | None:
    if value is None:
        return None
    if not INT64.fullmatch(value) or not -(2**63) <= int(value) < 2**63:
        raise ValidationError(name, f"{value[:40]!r} is not a 64-bit signed integer")
    return int(value)


def _short(value: str | None, name: str, limit: int) -> str | None:
    if value is not None and len(value) > limit:
        raise ValidationError(name, f"is longer than {limit} characters")
    return value


def parse_mo(params: QueryParams) -> IncomingMO:
    """Validate an MO callback's parameters, or raise ValidationError naming the bad one."""
    gateway_id = _int64(_one(params, "id", True), "id")
    source = international(_one(params, "source", True) or "", "source")
    destination = _one(params, "destination", True) or ""
    if not ADDRESS.fullmatch(destination):
        raise ValidationError("destination", "is not a short code or phone number")
    content = _short(_one(params, "content", True), "content", MAX_CONTENT) or ""
    encoding = _one(params, "encoding", False)
    if encoding is not None:
        if encoding != "base64":
            raise ValidationError("encoding", f"{encoding[:20]!r} is not base64")
        try:
            base64.b64decode(content, validate=True)
        except ValueError:  # binascii.Error, and non-ASCII text
            raise ValidationError("content", "is not valid base64") from None
    return IncomingMO(
        gateway_id=gateway_id,
        source=source,
        destination=destination,
        content=content,
        # An over-long carrier name is no reason to refuse a handset's message.
        operator=(_one(params, "operator", False) or "")[:MAX_OPERATOR] or None,
        reply_to=_int64(_one(params, "reply_to", False), "reply_to"),
        reference=_short(_one(params, "reference", False), "reference", MAX_REFERENCE),
        binary=encoding is not None,
    )


def parse_dlr(params: QueryParams) -> IncomingDLR:
    """Validate a DLR callback's parameters. A status outside the spec's eight is kept
    verbatim (carriers differ), but it must look like a status."""
    gateway_id = _int64(_one(params, "id", True), "id")
    status = _one(params, "status", True) or ""
    if not STATUS.fullmatch(status):
        raise ValidationError("status", f"{status[:40]!r} is not a delivery status")
    reference = _short(_one(params, "reference", False), "reference", MAX_REFERENCE)
    return IncomingDLR(gateway_id=gateway_id, status=status, reference=reference)


def callback_routes(runtime: Runtime, token: str) -> list[Route]:
    """The two callback routes, guarded by the secret token and the IP allow-list."""
    networks = [
        ipaddress.ip_network(entry, strict=False) for entry in runtime.settings.callback_allow
    ]
    metrics = runtime.metrics

    def refuse(request: Request, kind: str) -> Response | None:
        if not secrets.compare_digest(request.path_params["token"].encode(), token.encode()):
            return PlainTextResponse("ERROR Not found", status_code=404)
        if networks and not _allowed(request, networks):
            if kind == "mo":
                metrics.mo_received.inc(outcome="forbidden")
            log.warning(
                "%s callback refused from %s: not in BOTKIT_CALLBACK_ALLOW",
                kind,
                _host(request),
                extra={"event": f"{kind}.refused", "client": _host(request), "http_status": 403},
            )
            return PlainTextResponse("ERROR Forbidden", status_code=403)
        return None

    async def mo(request: Request) -> Response:
        started = time.perf_counter()
        if refused := refuse(request, "mo"):
            return refused
        try:
            incoming = parse_mo(request.query_params)
        except ValidationError as exc:
            metrics.mo_received.inc(outcome="invalid")
            return _bad_request("mo", exc, request.query_params)
        try:
            message_id = await runtime.store.inbox.add(incoming)
        except DatabaseError as exc:
            metrics.mo_received.inc(outcome="unavailable")
            log.error(
                "mo %s: not stored, the gateway will retry: %s",
                incoming.gateway_id,
                exc,
                extra=_mo_fields(incoming, "mo.unavailable", started),
            )
            return PlainTextResponse("ERROR Temporarily unavailable", status_code=503)
        if message_id is None:
            metrics.mo_received.inc(outcome="duplicate")
            log.info(
                "mo %s from %s: duplicate, already stored",
                incoming.gateway_id,
                incoming.source,
                extra=_mo_fields(incoming, "mo.duplicate", started),
            )
        else:
            metrics.mo_received.inc(outcome="stored")
            log.info(
                "mo %s from %s: stored as %s",
                incoming.gateway_id,
                incoming.source,
                message_id,
                extra={**_mo_fields(incoming, "mo.stored", started), "message_id": message_id},
            )
            runtime.dispatcher.wake()
        return PlainTextResponse("OK")

    async def dlr(request: Request) -> Response:
        started = time.perf_counter()
        if refused := refuse(request, "dlr"):
            return refused
        try:
            incoming = parse_dlr(request.query_params)
        except ValidationError as exc:
            return _bad_request("dlr", exc, request.query_params)
        try:
            outcome = await runtime.store.deliveries.record(incoming)
        except DatabaseError as exc:
            log.error(
                "dlr %s: not stored, the gateway will retry: %s",
                incoming.gateway_id,
                exc,
                extra={"event": "dlr.unavailable", "gateway_id": incoming.gateway_id},
            )
            return PlainTextResponse("ERROR Temporarily unavailable", status_code=503)
        if outcome.new:
            metrics.dlr_received.inc(status=incoming.status)
        _log_dlr(incoming, outcome, started)
        return PlainTextResponse("OK")

    return [
        Route("/callbacks/{token}/mo", mo, methods=["GET"]),
        Route("/callbacks/{token}/dlr", dlr, methods=["GET"]),
    ]


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


def _bad_request(kind: str, exc: ValidationError, params: QueryParams) -> Response:
    word = "Missing" if isinstance(exc, MissingParameter) else "Invalid"
    given_id = params.get("id", "")
    log.warning(
        "%s callback refused: %s parameter %s",
        kind,
        exc.field,
        exc.reason,
        extra={
            "event": f"{kind}.refused",
            "http_status": 400,
            "parameter": exc.field,
            "gateway_id": int(given_id) if INT64.fullmatch(given_id) else None,
        },
    )
    return PlainTextResponse(f"ERROR {word} {exc.field} parameter", status_code=400)


def _host(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _allowed(request: Request, networks: list[ipaddress._BaseNetwork]) -> bool:
    try:
        address = ipaddress.ip_address(_host(request))
    except ValueError:
        return False
    return any(address in network for network in networks)
