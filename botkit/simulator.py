"""An emulator of the Mobile Gateway HTTPS API, for tests and for running without credentials.

    simulator = Simulator(mo_url="http://127.0.0.1:8000/callbacks/t/mo",
                          dlr_url="http://127.0.0.1:8000/callbacks/t/dlr")
    uvicorn.run(simulator.app)          # GET /message is the gateway, / the phone page

It answers `GET /message` as the spec says (v1 and v2 error codes, 64-bit signed ids), then
delivers DLRs for each accepted MT and MOs from simulated handsets as GET callbacks, retried
with the same parameters until the app answers 200. Everything it accepted and sent is
recorded for tests to inspect.

The account it plays has `numbers` (the default first), message `classes` and `masks`:

- An MT with `class` goes from the default number, one with `source` from that number;
  both together are refused, as is a `mask` without `class` (Missing class parameter).
- A mask shows as the sender only if it is among `masks` (case-sensitive); any other is
  ignored and the MT arrives from the default number, as the spec says.
- `expires`: when an MT's expiry is at or before the moment the carrier would move it on
  (submitted, sent, received), its DLR is `expired` instead and it never reaches the
  handset: it leaves the handset's inbox and the phone page. Time is `clock`'s.
- MOs carry `reply_to` (and the answered MT's `reference`) only with `number_sequence`:
  the spec sends it "only when a number sequence is used". An MO goes to one of
  `numbers`: the one given, in any spelling a handset may dial ("+61 400 999 000",
  "0400999000"; `dialled`), else the one the handset's latest MT came from, else the
  default. Its callback names the number as configured, as the carrier routed it.
- A callback whose URL httpx cannot build (too long: an MO of a few thousand non-ASCII
  characters percent-encodes past 65,536) is not delivered (`answer` None): a warning,
  not a retry, since the same URL fails the same way.
- HEAD /message answers the status the gateway's checks give a GET with the same query
  (200, or the authentication or parameter error), with no body, and does nothing else:
  nothing is queued or recorded, and a fault neither answers it nor counts it (a fault
  plays a failing send, and a HEAD sends nothing).

The simulator's own choices, where the spec names no error: an MT whose `source` is not
among `numbers`, or whose `class` is not among `classes`, is refused with "Failed to queue
message" (400 in v2, 500 in v1): the gateway cannot create a message it has no route or
billing for, and that is the spec's error for a message it could not create. The same
answers a malformed destination, an over-long reference and an `expires` that is not
RFC 3339.

Faults: `simulator.fail(status=503, requests=3)` makes the gateway fail send requests for
a while, then be healthy again (`heal()` ends it at once); botkit/faults.py says how each
kind of fault answers and whether the message was accepted.

Over HTTP (`botkit simulator`), JSON endpoints for tests and operators:
`POST /api/faults` with a JSON object of `fail`'s arguments (`{"status": 503, "seconds": 2}`)
starts a fault and answers it; `GET /api/faults` shows the current one (or null);
`DELETE /api/faults` heals. `GET /api/requests` lists every send request and its answer,
`GET /api/messages` every MT accepted, `GET /api/mos` every MO with its callback attempts.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ipaddress
import itertools
import logging
import secrets
import time
from collections.abc import AsyncIterator, Coroutine, Sequence
from http import HTTPStatus
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from .addresses import SIMULATOR_NUMBER, OurNumbers, canonical_address
from .bodies import BodyError, read_json
from .clock import Clock, system_clock
from .errors import ValidationError
from .faults import Fault, fault_arguments
from .gateway import AUTH_TEXT, MAX_REFERENCE, QUEUE_TEXT, parse_rfc3339
from .numbers import international
from .phone import HandlingLookup, PhonePage
from .simulated import SimCallback, SimMessage, SimMO, SimRequest

STATUSES = ("submitted", "sent", "received", "failed", "frozen", "dead", "rejected", "expired")
DEFAULT_FATE = ("submitted", "sent", "received")
# The statuses that move an MT on towards the handset: an expiry that passed turns them
# into "expired" (until it was received).
ON_THE_WAY = DEFAULT_FATE
DEFAULT_CLASSES = ("mt_message",)
CALLBACK_TIMEOUT = httpx.Timeout(5.0)
# Callbacks in flight at once: fewer than httpx's pool of 100 connections, so that none
# waits for one (thousands waiting time out of the pool, and its bookkeeping grows
# quadratic: a burst of retries after an app's restart would starve the simulator).
CALLBACK_CONCURRENCY = 50
# Ids start above 2**32 so 32-bit bugs show, and grow with the clock so a restarted
# simulator does not reuse the ids an app already stored (it deduplicates MOs on them).
FIRST_ID = 2**32

logger = logging.getLogger("botkit.simulator")


class Simulator:
    """The gateway's send API, its DLR and MO callbacks, and a phone page, as one ASGI app."""

    def __init__(
        self,
        *,
        application: str = "botkit",
        password: str = "simulator",
        mo_url: str | None = None,
        dlr_url: str | None = None,
        allow: Sequence[str] | None = None,
        numbers: Sequence[str] = (SIMULATOR_NUMBER,),
        classes: Sequence[str] = DEFAULT_CLASSES,
        masks: Sequence[str] = (),
        number_sequence: bool = False,
        clock: Clock = system_clock,
        dlr_delay: float = 0.05,
        http: httpx.AsyncClient | None = None,
        callback_retries: int = 5,
        callback_backoff: float = 0.05,
        callback_backoff_cap: float = 1.0,
        fate: Sequence[str] = DEFAULT_FATE,
        dashboard: str | None = None,
        handling: HandlingLookup | None = None,
    ) -> None:
        self.application = application
        # The app's dashboard, relative to the phone page, when the app runs this simulator.
        self.dashboard = dashboard
        # The app's record of how it handled MOs, when the app runs this simulator.
        self.handling = handling
        self._password = password
        self.mo_url = mo_url
        self.dlr_url = dlr_url
        self._allow = None if allow is None else [ipaddress.ip_network(a, False) for a in allow]
        self.numbers = numbers  # parsed by the setter, a tuple
        self.classes = tuple(classes)
        self.masks = tuple(masks)
        self.number_sequence = number_sequence
        self.clock = clock
        self.dlr_delay = dlr_delay
        self.callback_retries = callback_retries
        self.callback_backoff = callback_backoff
        self.callback_backoff_cap = callback_backoff_cap
        self._owns_http = http is None
        self._http = http if http is not None else httpx.AsyncClient(timeout=CALLBACK_TIMEOUT)
        self.sent: list[SimMessage] = []
        self.sent_by_id: dict[int, SimMessage] = {}
        self.mos: list[SimMO] = []
        self.callbacks: list[SimCallback] = []
        self.requests: list[SimRequest] = []
        self.fault: Fault | None = None
        self._fates: dict[str, tuple[str, ...]] = {}
        self.default_fate = _checked(fate)
        self._unroutable: set[str] = set()
        self._ids = itertools.count(FIRST_ID + time.time_ns() // 1000)
        self._tasks: set[asyncio.Task[None]] = set()
        self._callback_slots = asyncio.Semaphore(CALLBACK_CONCURRENCY)
        routes = [
            Route("/message", self._message, methods=["GET", "HEAD"]),
            Route("/api/faults", self._faults, methods=["GET", "POST", "DELETE"]),
            Route("/api/requests", self._requests, methods=["GET"]),
            *PhonePage(self).routes(),
        ]
        self.app = Starlette(routes=routes, lifespan=self._lifespan)

    def __repr__(self) -> str:
        return f"Simulator(application={self.application!r}, sent={len(self.sent)})"

    def set_fate(self, destination: str, statuses: Sequence[str]) -> None:
        """Make MTs to `destination` go through `statuses` (DLRs in that order) from now on."""
        self._fates[international(destination)] = _checked(statuses)

    def set_unroutable(self, destination: str) -> None:
        """Make the gateway refuse MTs to `destination` with "Failed to queue message"."""
        self._unroutable.add(international(destination))

    def fail(
        self,
        *,
        status: int | None = None,
        delay: float = 0.0,
        accept: bool | None = None,
        requests: int | None = None,
        seconds: float | None = None,
    ) -> Fault:
        """Fail send requests from now on, as the module docstring says, until the fault
        runs out or `heal()`; replaces the current fault. ValueError for an impossible one."""
        self.fault = Fault(status, delay, accept, requests, seconds)
        logger.warning("gateway fault: %s", self.fault.as_json())
        return self.fault

    def heal(self) -> None:
        """End the current fault: the gateway is healthy again."""
        self.fault = None

    @property
    def numbers(self) -> tuple[str, ...]:
        """Our numbers, the default first (a test may give the account another)."""
        return self._dialled.numbers

    @numbers.setter
    def numbers(self, numbers: Sequence[str]) -> None:
        self._dialled = account_numbers(numbers)

    @property
    def default_number(self) -> str:
        """The number MTs by class come from, and MOs go to when nothing else decides."""
        return self.numbers[0]

    def replies_go_to(self, handset: str) -> str:
        """The number of ours an MO from `handset` goes to when it names none: the one its
        latest MT came from, else the default."""
        inbox = self.inbox(handset)
        return inbox[-1].number if inbox else self.default_number

    def dialled(self, address: str, field: str = "destination") -> str:
        """Our number a handset reaches by dialling `address`, as configured: any spelling
        botkit.addresses knows ("+61 400 999 000", "61400999000", "0400999000" and
        "0061400999000" dial "+61400999000"); ValueError naming `field` and listing our
        numbers otherwise."""
        try:
            return self._dialled.ours(address, field)
        except ValidationError as exc:
            raise ValueError(str(exc)) from None

    def inbox(self, number: str) -> list[SimMessage]:
        """The MTs sent to one handset, oldest first, but those that expired (which never
        reached it)."""
        number = international(number)
        return [m for m in self.sent if m.destination == number and not m.expired]

    async def send_mo(
        self,
        source: str,
        content: str | bytes,
        *,
        destination: str | None = None,
        reply_to: int | None = None,
        operator: str = "Telstra",
    ) -> SimMO:
        """Send an MO from handset `source`; returns once the app answered 200 or we gave up."""
        mo = self._new_mo(source, content, destination, reply_to, operator)
        await self._deliver_mo(mo)
        return mo

    def queue_mo(
        self,
        source: str,
        content: str | bytes,
        *,
        destination: str | None = None,
        reply_to: int | None = None,
        operator: str = "Telstra",
    ) -> SimMO:
        """Record an MO like `send_mo` and deliver it in the background (`drain` waits for it)."""
        mo = self._new_mo(source, content, destination, reply_to, operator)
        self._spawn(self._deliver_mo(mo))
        return mo

    @property
    def pending(self) -> int:
        """How many DLR/MO callbacks are scheduled or under way."""
        return len(self._tasks)

    async def drain(self, timeout: float = 10.0) -> None:
        """Wait until every scheduled DLR/MO callback is delivered or given up; TimeoutError."""
        async with asyncio.timeout(timeout):
            while self._tasks:
                await asyncio.wait(set(self._tasks))

    async def aclose(self) -> None:
        """Cancel pending callbacks and close the HTTP client if the simulator created it."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._owns_http:
            await self._http.aclose()

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        yield
        await self.aclose()

    async def _message(self, request: Request) -> Response:
        """GET /message: queue an MT and answer its id or the spec's error, unless a fault
        answers instead (queuing it first when the fault accepts it)."""
        if request.method == "HEAD":
            return self._head(request)
        query = request.query_params
        fault = self.fault if self.fault is not None and self.fault.take() else None
        response, message = PlainTextResponse(""), None
        if fault is None or fault.accept:
            response, message = self._answer(request)
        if fault is not None:
            await asyncio.sleep(fault.delay)
            if fault.status is not None:
                response = PlainTextResponse(HTTPStatus(fault.status).phrase, fault.status)
        self.requests.append(
            SimRequest(
                destination=query.get("destination"),
                reference=query.get("reference"),
                status=response.status_code,
                message_id=None if message is None else message.id,
                faulted=fault is not None,
            )
        )
        return response

    def _head(self, request: Request) -> Response:
        """HEAD /message: the status a GET would get, without a body (its length is known
        only once a message exists); nothing queued, recorded or counted by a fault."""
        refusal = self._refusal(request)
        response = Response(status_code=200 if refusal is None else refusal.status_code)
        response.headers["content-type"] = "text/plain; charset=utf-8"
        del response.headers["content-length"]
        return response

    def _answer(self, request: Request) -> tuple[PlainTextResponse, SimMessage | None]:
        """The spec's answer to a send request, and the MT when it was queued."""
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal, None
        message = self._queue(request.query_params)
        return PlainTextResponse(str(message.id)), message

    def _refusal(self, request: Request) -> PlainTextResponse | None:
        """The spec's error for a send request the gateway would not queue, else None."""
        query = request.query_params
        v2 = query.get("version") == "2"  # the spec's default is 1; only 2 changes the codes
        refused = 400 if v2 else 500
        if not self._authorised(request):
            return PlainTextResponse(AUTH_TEXT, 401 if v2 else 500)
        for name in ("content", "destination"):
            if not query.get(name):
                return PlainTextResponse(f"ERROR Missing {name} parameter", refused)
        if query.get("class") and query.get("source"):
            return PlainTextResponse(QUEUE_TEXT, refused)
        if query.get("mask") and not query.get("class"):
            return PlainTextResponse("ERROR Missing class parameter", refused)
        if not self._can_queue(query):
            return PlainTextResponse(QUEUE_TEXT, refused)
        return None

    async def _faults(self, request: Request) -> JSONResponse:
        """GET, POST (a JSON object of `fail`'s arguments) or DELETE /api/faults."""
        if request.method == "POST":
            try:
                self.fail(**fault_arguments(await read_json(request)))
            except BodyError as exc:
                return JSONResponse({"error": exc.message}, exc.status)
            except ValueError as exc:
                return JSONResponse({"error": str(exc)}, 400)
        elif request.method == "DELETE":
            self.heal()
        fault = self.fault
        return JSONResponse({"fault": None if fault is None else fault.as_json()})

    async def _requests(self, request: Request) -> JSONResponse:
        """GET /api/requests: every send request and its answer (ids as strings: 64-bit)."""
        answers = [
            {
                "destination": r.destination,
                "reference": r.reference,
                "status": r.status,
                "message_id": None if r.message_id is None else str(r.message_id),
                "faulted": r.faulted,
            }
            for r in self.requests
        ]
        return JSONResponse({"requests": answers})

    def _authorised(self, request: Request) -> bool:
        """Whether the caller's IP is allowed and the credentials match (in constant time)."""
        if self._allow is not None:
            host = request.client.host if request.client else ""
            try:
                address = ipaddress.ip_address(host)
            except ValueError:
                return False
            if not any(address in network for network in self._allow):
                return False
        query = request.query_params
        application = _same(query.get("application", ""), self.application)
        password = _same(query.get("password", ""), self._password)
        return application and password

    def _can_queue(self, query: QueryParams) -> bool:
        """Whether the gateway could create the MT: a routable destination, a reference of at
        most 50 characters, an RFC 3339 expiry, one of our numbers and classes."""
        destination = query["destination"]
        if not _is_e164(destination) or destination in self._unroutable:
            return False
        if len(query.get("reference", "")) > MAX_REFERENCE:
            return False
        if query.get("expires"):
            try:
                parse_rfc3339(query["expires"])
            except ValueError:
                return False
        source, message_class = query.get("source"), query.get("class")
        if source and self._ours(source) is None:
            return False
        return not message_class or message_class in self.classes

    def _queue(self, query: QueryParams) -> SimMessage:
        """Create and schedule an MT that `_can_queue` allowed."""
        expires = query.get("expires") or None
        source = query.get("source") or None
        mask = query.get("mask") or None
        number = self.default_number if source is None else self._ours(source)
        assert number is not None
        message = SimMessage(
            id=next(self._ids),
            destination=query["destination"],
            content=query["content"],
            message_class=query.get("class") or None,
            source=source,
            mask=mask,
            reference=query.get("reference") or None,
            expires=expires,
            number=number,
            sender=mask if mask in self.masks else number,
            expires_at=None if expires is None else parse_rfc3339(expires),
        )
        self.sent.append(message)
        self.sent_by_id[message.id] = message
        fate = self._fates.get(message.destination, self.default_fate)
        self._spawn(self._deliver_statuses(message, fate))
        return message

    async def report(self, message_id: int, status: str) -> None:
        """Move an accepted MT to `status` now and send its DLR (for tests that drive
        delivery by hand, with an empty fate)."""
        (status,) = _checked([status])
        await self._report(self.sent_by_id[message_id], status)

    async def _deliver_statuses(self, message: SimMessage, fate: Sequence[str]) -> None:
        """Move an MT through its fate, sending a DLR for each status when dlr_url is set;
        an MT that expired goes no further."""
        for status in fate:
            await asyncio.sleep(self.dlr_delay)
            await self._report(message, status)
            if message.expired:
                return

    async def _report(self, message: SimMessage, status: str) -> None:
        """Record `status` and send its DLR; "expired" instead of a status that would move
        the MT on towards the handset after its expiry passed."""
        on_the_way = status in ON_THE_WAY and "received" not in message.statuses
        if on_the_way and message.expires_at is not None and message.expires_at <= self.clock():
            status = "expired"
        message.statuses.append(status)
        if self.dlr_url is None:
            return
        params = {"id": str(message.id), "status": status}
        if message.reference is not None:
            params["reference"] = message.reference
        await self._callback(self.dlr_url, SimCallback("dlr", params))

    def _new_mo(
        self,
        source: str,
        content: str | bytes,
        destination: str | None,
        reply_to: int | None,
        operator: str,
    ) -> SimMO:
        """Record an MO to one of our numbers (the one given, in any spelling, else the one
        the handset's latest MT came from, else the default), named as configured; with a
        number sequence it answers the latest MT from that number (or `reply_to`).
        ValueError for a number that is not ours, or a `reply_to` without a number sequence."""
        source = international(source, "source")
        if reply_to is not None and not self.number_sequence:
            raise ValueError(
                "reply_to needs number_sequence=True: without a number sequence the gateway "
                "cannot tell which MT a message answers, and sends no reply_to"
            )
        answered = self.sent_by_id.get(reply_to) if reply_to is not None else None
        if destination is None:
            # A reply goes to the number the MT came from; a mask is for display only.
            destination = answered.number if answered else self.replies_go_to(source)
        else:
            destination = self.dialled(destination)
        if reply_to is None and self.number_sequence:
            from_there = [m for m in self.inbox(source) if m.number == destination]
            answered = from_there[-1] if from_there else None
            reply_to = answered.id if answered else None
        binary = isinstance(content, bytes)
        mo = SimMO(
            id=next(self._ids),
            source=source,
            destination=destination,
            content=base64.b64encode(content).decode("ascii") if binary else content,
            reply_to=reply_to,
            reference=answered.reference if answered else None,
            binary=binary,
            operator=operator,
        )
        self.mos.append(mo)
        return mo

    async def _deliver_mo(self, mo: SimMO) -> None:
        """Send the MO callback, as the spec shapes it, and record the app's final answer."""
        try:
            if self.mo_url is None:
                logger.warning("MO %d from %s not delivered: no mo_url", mo.id, mo.source)
                return
            params = {
                "id": str(mo.id),
                "source": mo.source,
                "destination": mo.destination,
                "content": mo.content,
                "operator": mo.operator,
            }
            if mo.reply_to is not None:
                params["reply_to"] = str(mo.reply_to)
            if mo.reference is not None:
                params["reference"] = mo.reference
            if mo.binary:
                params["encoding"] = "base64"
            mo.callback = SimCallback("mo", params)
            mo.answer = await self._callback(self.mo_url, mo.callback)
        finally:
            mo.pending = False

    async def _callback(self, url: str, record: SimCallback) -> int | None:
        """GET `url` with the record's parameters until it answers 200, at most
        1 + callback_retries times, backing off up to the cap; the last answer."""
        self.callbacks.append(record)
        for attempt in range(self.callback_retries + 1):
            if attempt:
                pause = self.callback_backoff * 2 ** min(attempt - 1, 30)
                await asyncio.sleep(min(self.callback_backoff_cap, pause))
            try:
                async with self._callback_slots:
                    response = await self._http.get(url, params=record.params)
            except httpx.InvalidURL as exc:
                # Not a request that failed: none can be made, now or on a retry.
                kind, callback_id = record.kind, record.params["id"]
                logger.warning("%s callback %s not delivered: %s", kind, callback_id, exc)
                record.answers.append(None)
                break
            except httpx.RequestError as exc:
                # The URL holds the app's callback token: name the callback, not the URL.
                error = type(exc).__name__
                logger.info("%s callback %s: %s", record.kind, record.params["id"], error)
                record.answers.append(None)
                continue
            except Exception as exc:
                # Not one of httpx's: an app that resets the connection as it opens can
                # make anyio raise AttributeError (its socket gone, when httpcore asks for
                # the peer). A gateway tries again whatever went wrong with an attempt.
                error = type(exc).__name__
                logger.warning("%s callback %s: %s", record.kind, record.params["id"], error)
                record.answers.append(None)
                continue
            record.answers.append(response.status_code)
            if response.status_code == 200:
                break
        return record.answers[-1]

    def _ours(self, address: str) -> str | None:
        """`address` as our number is configured ("61400999000" names "+61400999000"), or
        None when it is not one of ours."""
        wanted = canonical_address(address)
        return next((n for n in self.numbers if canonical_address(n) == wanted), None)

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        """Run `coroutine` as a tracked task, so drain() can wait for it and aclose() cancel it."""
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("simulator task failed", exc_info=task.exception())


def account_numbers(numbers: Sequence[str], field: str = "numbers") -> OurNumbers:
    """The account's numbers (botkit.addresses checks them: at least one, none twice, each
    a short code or an international number), for the spellings a handset may dial;
    ValidationError (a ValueError) naming `field` otherwise. (The class is not used: MTs
    name their own.)"""
    return OurNumbers(numbers, message_class=DEFAULT_CLASSES[0], field=field)


def _same(given: str, expected: str) -> bool:
    """Compare a credential in constant time."""
    return secrets.compare_digest(given.encode(), expected.encode())


def _is_e164(value: str) -> bool:
    """Whether `value` is already an international number in E.164 form."""
    try:
        return international(value) == value
    except ValidationError:
        return False


def _checked(statuses: Sequence[str]) -> tuple[str, ...]:
    """`statuses` as a tuple, or ValueError naming the first the gateway never sends."""
    for status in statuses:
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}; the gateway sends {STATUSES}")
    return tuple(statuses)
