"""The gateway simulator: the send API's rules, the account it plays (numbers, classes,
masks, number sequence), expiry, DLR and MO callbacks, retries, lifecycle."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import socket
from collections.abc import AsyncIterator

import httpx
import pytest
import uvicorn
from servers import free_port, start, wait_for
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from botkit.gateway import AUTH_TEXT, QUEUE_TEXT, Gateway
from botkit.simulator import STATUSES, Simulator
from botkit.testing import FakeClock

HANDSET = "+61400000001"
OTHER = "+61400000002"
# The account of the `sim` fixture: three numbers, the default first, and one mask.
DEFAULT, SECOND, THIRD = "4433", "+61400999000", "+61400999001"
ACCOUNT = {"numbers": (DEFAULT, SECOND, THIRD), "masks": ("ACME",)}
GOOD = {
    "application": "botkit",
    "password": "simulator",
    "content": "hi",
    "destination": HANDSET,
    "version": "2",
}


class Receiver:
    """The app's side of the callbacks: records each request, answers from a script, then 200."""

    def __init__(self, answers: list[int] | None = None) -> None:
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.answers = list(answers or [])
        self.app = Starlette(routes=[Route("/mo", self.handle), Route("/dlr", self.handle)])

    async def handle(self, request: Request) -> PlainTextResponse:
        self.requests.append((request.url.path, dict(request.query_params)))
        status = self.answers.pop(0) if self.answers else 200
        return PlainTextResponse("OK", status)

    def dlrs(self) -> list[dict[str, str]]:
        return [params for path, params in self.requests if path == "/dlr"]

    def mos(self) -> list[dict[str, str]]:
        return [params for path, params in self.requests if path == "/mo"]


@pytest.fixture
def receiver() -> Receiver:
    return Receiver()


@contextlib.asynccontextmanager
async def simulator(receiver: Receiver, **options: object) -> AsyncIterator[Simulator]:
    """A simulator whose callbacks reach `receiver` in-process."""
    transport = httpx.ASGITransport(app=receiver.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://app.test") as http:
        urls = {"mo_url": "http://app.test/mo", "dlr_url": "http://app.test/dlr"}
        defaults = {"dlr_delay": 0, "callback_backoff": 0, **urls}
        sim = Simulator(http=http, **{**defaults, **options})
        try:
            yield sim
        finally:
            await sim.aclose()


@pytest.fixture
async def sim(receiver: Receiver) -> AsyncIterator[Simulator]:
    async with simulator(receiver, **ACCOUNT) as sim:
        yield sim


async def get(
    sim: Simulator,
    client: tuple[str, int] = ("127.0.0.1", 123),
    method: str = "GET",
    **params: str | None,
) -> httpx.Response:
    """GET /message on the simulator: GOOD with `params` changed (None drops one)."""
    query = {k: v for k, v in {**GOOD, **params}.items() if v is not None}
    transport = httpx.ASGITransport(app=sim.app, client=client)
    async with httpx.AsyncClient(transport=transport) as http:
        return await http.request(method, "http://gateway.test/message", params=query)


def assert_error(answer: httpx.Response, status: int, body: str) -> None:
    assert (answer.status_code, answer.text) == (status, body)
    assert answer.headers["content-type"].startswith("text/plain")


# -- the send API ----------------------------------------------------------------------------


async def test_accepts_an_mt_with_a_unique_64_bit_id(sim: Simulator) -> None:
    answers = [await get(sim, content=f"hi {n}") for n in range(3)]
    ids = [int(answer.text) for answer in answers]
    assert all(answer.status_code == 200 for answer in answers)
    assert answers[0].headers["content-type"].startswith("text/plain")
    assert len(set(ids)) == 3 and all(2**32 < i < 2**63 for i in ids)
    assert [m.id for m in sim.sent] == ids and sim.sent_by_id[ids[1]] is sim.sent[1]
    first = sim.sent[0]
    assert (first.destination, first.content, first.sender) == (HANDSET, "hi 0", "4433")


async def test_records_every_optional_parameter(sim: Simulator) -> None:
    await get(
        sim,
        **{"class": "mt_message"},
        mask="ACME",
        reference="t1.m1",
        expires="2030-01-01T10:00:00+10:00",
    )
    await get(sim, source=SECOND)
    masked, sourced = sim.sent
    assert (masked.message_class, masked.mask, masked.sender) == ("mt_message", "ACME", "ACME")
    assert (masked.reference, masked.expires) == ("t1.m1", "2030-01-01T10:00:00+10:00")
    assert masked.number == DEFAULT
    assert (sourced.source, sourced.number, sourced.sender, sourced.message_class) == (
        SECOND,
        SECOND,
        SECOND,
        None,
    )


@pytest.mark.parametrize(("version", "status"), [("1", 500), (None, 500), ("2", 401)])
@pytest.mark.parametrize(
    "change",
    [{"password": "wrong"}, {"password": None}, {"application": "other"}, {"application": None}],
)
async def test_authentication(
    sim: Simulator, version: str | None, status: int, change: dict[str, str | None]
) -> None:
    assert_error(await get(sim, version=version, **change), status, AUTH_TEXT)
    assert sim.sent == []


@pytest.mark.parametrize(("version", "status"), [("1", 500), (None, 500), ("2", 400)])
@pytest.mark.parametrize("name", ["content", "destination"])
@pytest.mark.parametrize("value", [None, ""])
async def test_missing_parameter(
    sim: Simulator, version: str | None, status: int, name: str, value: str | None
) -> None:
    answer = await get(sim, version=version, **{name: value})
    assert_error(answer, status, f"ERROR Missing {name} parameter")


@pytest.mark.parametrize(("version", "status"), [("1", 500), ("2", 400)])
@pytest.mark.parametrize(
    ("change", "body"),
    [
        ({"class": "mt_message", "source": SECOND}, QUEUE_TEXT),
        ({"mask": "ACME"}, "ERROR Missing class parameter"),
        ({"mask": "ACME", "source": SECOND}, "ERROR Missing class parameter"),
        # The simulator's own choice: the spec names no error for these.
        ({"source": "+61400888000"}, QUEUE_TEXT),  # not one of our numbers
        ({"source": "4434"}, QUEUE_TEXT),
        ({"class": "premium"}, QUEUE_TEXT),  # not one of our classes
        ({"class": "MT_MESSAGE"}, QUEUE_TEXT),
        ({"destination": "0400000000"}, QUEUE_TEXT),
        ({"destination": "61400000001"}, QUEUE_TEXT),
        ({"destination": "+61 400 000 001"}, QUEUE_TEXT),
        ({"destination": "+1"}, QUEUE_TEXT),
        ({"reference": "r" * 51}, QUEUE_TEXT),
        ({"expires": "2030-01-01T10:00:00"}, QUEUE_TEXT),
        ({"expires": "2030-01-01"}, QUEUE_TEXT),
        ({"expires": "next week"}, QUEUE_TEXT),
    ],
)
async def test_refused_messages(
    sim: Simulator, version: str, status: int, change: dict[str, str], body: str
) -> None:
    assert_error(await get(sim, version=version, **change), status, body)
    assert sim.sent == []


@pytest.mark.parametrize(
    "change",
    [
        {"reference": "r" * 50},
        {"expires": "2030-01-01T10:00:00Z"},
        {"mask": ""},
        {"source": DEFAULT},  # the default number may be named too
        {"source": "61400999000"},  # our number, written without its plus
    ],
)
async def test_accepted_edge_values(sim: Simulator, change: dict[str, str]) -> None:
    assert (await get(sim, **change)).status_code == 200


@pytest.mark.parametrize(
    ("params", "sender"),
    [
        ({"class": "mt_message", "mask": "ACME"}, "ACME"),
        ({"class": "mt_message", "mask": "acme"}, DEFAULT),  # masks are case-sensitive
        ({"class": "mt_message", "mask": "Other"}, DEFAULT),
        ({"source": THIRD}, THIRD),
        ({}, DEFAULT),
    ],
)
async def test_the_handset_sees_a_known_mask_else_the_number(
    sim: Simulator, params: dict[str, str], sender: str
) -> None:
    assert (await get(sim, **params)).status_code == 200
    (message,) = sim.inbox(HANDSET)
    assert (message.mask, message.sender) == (params.get("mask"), sender)
    assert message.number == params.get("source", DEFAULT)


async def test_configured_classes_are_accepted(receiver: Receiver) -> None:
    async with simulator(receiver, classes=("mt_message", "premium")) as sim:
        for message_class in ("mt_message", "premium"):
            assert (await get(sim, **{"class": message_class})).status_code == 200
        assert_error(await get(sim, **{"class": "bulk"}), 400, QUEUE_TEXT)
    assert [m.message_class for m in sim.sent] == ["mt_message", "premium"]


@pytest.mark.parametrize(
    ("numbers", "error"),
    [
        ((), "at least one number"),
        (("4433", "4433"), "twice"),
        (("+61400999000", "+61 400 999 000"), "twice"),
        (("0400999000",), "neither a short code"),
    ],
)
def test_numbers_are_checked(numbers: tuple[str, ...], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        Simulator(numbers=numbers)


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({}, 200),
        ({"password": "wrong"}, 401),
        ({"content": None}, 400),
        ({"source": "+61400888000"}, 400),
        ({"version": None, "password": "wrong"}, 500),
    ],
)
async def test_head_answers_as_a_get_would_and_does_nothing(
    sim: Simulator, params: dict[str, str | None], status: int
) -> None:
    fault = sim.fail(status=503, requests=1)
    answer = await get(sim, method="HEAD", **params)
    assert (answer.status_code, answer.content) == (status, b"")
    assert answer.headers["content-type"].startswith("text/plain")
    assert (sim.sent, sim.requests, fault.answered) == ([], [], 0)
    await sim.drain()
    assert sim.callbacks == []


async def test_unroutable_number_fails_to_queue(sim: Simulator) -> None:
    sim.set_unroutable("+61 400 000 002")
    assert_error(await get(sim, destination=OTHER), 400, QUEUE_TEXT)
    assert (await get(sim)).status_code == 200


@pytest.mark.parametrize(
    ("allow", "client", "allowed"),
    [
        (None, "203.0.113.9", True),
        (["10.0.0.0/8"], "10.1.2.3", True),
        (["10.0.0.0/8", "192.0.2.7"], "192.0.2.7", True),
        (["10.0.0.0/8"], "192.0.2.7", False),
        (["2001:db8::/32"], "2001:db8::1", True),
        (["2001:db8::/32"], "127.0.0.1", False),
        ([], "127.0.0.1", False),
    ],
)
async def test_ip_allow_list(
    receiver: Receiver, allow: list[str] | None, client: str, allowed: bool
) -> None:
    async with simulator(receiver, allow=allow) as sim:
        for version, status in (("1", 500), ("2", 401)):
            answer = await get(sim, client=(client, 1234), version=version)
            if allowed:
                assert answer.status_code == 200
            else:
                assert_error(answer, status, AUTH_TEXT)


# -- DLRs --------------------------------------------------------------------------------------


async def test_default_dlrs_reach_the_app_in_order(sim: Simulator, receiver: Receiver) -> None:
    with_ref = int((await get(sim, reference="t1.m1")).text)
    without = int((await get(sim, destination=OTHER)).text)
    await sim.drain()
    mine = [d for d in receiver.dlrs() if d["id"] == str(with_ref)]
    default = ["submitted", "sent", "received"]
    assert mine == [{"id": str(with_ref), "status": s, "reference": "t1.m1"} for s in default]
    other = [d for d in receiver.dlrs() if d["id"] == str(without)]
    assert other == [{"id": str(without), "status": s} for s in default]
    assert sim.sent_by_id[with_ref].statuses == default


@pytest.mark.parametrize(
    "fate",
    [["submitted", "failed"], ["rejected"], ["submitted", "expired"], list(STATUSES), []],
)
async def test_set_fate(sim: Simulator, receiver: Receiver, fate: list[str]) -> None:
    sim.set_fate(HANDSET, fate)
    message_id = int((await get(sim)).text)
    await get(sim, destination=OTHER)
    await sim.drain()
    assert [d["status"] for d in receiver.dlrs() if d["id"] == str(message_id)] == fate
    assert sim.sent[0].statuses == fate
    assert sim.sent[1].statuses == ["submitted", "sent", "received"]


def test_set_fate_refuses_an_unknown_status(sim: Simulator) -> None:
    with pytest.raises(ValueError, match="'delivered'"):
        sim.set_fate(HANDSET, ["submitted", "delivered"])


async def test_statuses_advance_without_a_dlr_url() -> None:
    sim = Simulator(dlr_delay=0)
    await get(sim)
    await sim.drain()
    assert sim.sent[0].statuses == ["submitted", "sent", "received"]
    assert sim.callbacks == []
    await sim.aclose()


# -- expiry ------------------------------------------------------------------------------------

NOW = "2026-01-05T09:00:00+00:00"  # FakeClock's start
LATER = "2026-01-05T10:00:00+00:00"


@pytest.mark.parametrize("expires", [NOW, "2026-01-05T19:00:00+10:00", "2025-12-31T00:00:00Z"])
async def test_an_mt_whose_expiry_passed_before_delivery_expires(
    receiver: Receiver, expires: str
) -> None:
    async with simulator(receiver, clock=FakeClock()) as sim:
        expired = int((await get(sim, expires=expires, reference="t1.m1")).text)
        kept = int((await get(sim, expires=LATER)).text)
        await sim.drain()
        assert [(d["id"], d["status"]) for d in receiver.dlrs() if d["id"] == str(expired)] == [
            (str(expired), "expired")
        ]
        assert sim.sent_by_id[expired].statuses == ["expired"]
        assert sim.sent_by_id[kept].statuses == ["submitted", "sent", "received"]
        assert [m.id for m in sim.inbox(HANDSET)] == [kept]  # it never reached the handset


@pytest.mark.parametrize(
    ("before", "after", "statuses"),
    [
        ([], "received", ["expired"]),
        (["submitted"], "sent", ["submitted", "expired"]),
        (["submitted"], "failed", ["submitted", "failed"]),  # the carrier's verdict stands
        (["submitted", "received"], "received", ["submitted", "received", "received"]),
    ],
)
async def test_expiry_is_judged_when_the_carrier_moves_the_mt_on(
    receiver: Receiver, before: list[str], after: str, statuses: list[str]
) -> None:
    clock = FakeClock()
    async with simulator(receiver, clock=clock, fate=()) as sim:
        message_id = int((await get(sim, expires=LATER)).text)
        for status in before:
            await sim.report(message_id, status)
        clock.advance(hours=1)  # at the expiry: too late
        await sim.report(message_id, after)
        assert sim.sent_by_id[message_id].statuses == statuses
        assert [d["status"] for d in receiver.dlrs()] == statuses
        assert len(sim.inbox(HANDSET)) == (0 if "expired" in statuses else 1)


async def test_an_mo_after_an_expired_mt_goes_to_the_default_number(sim: Simulator) -> None:
    await get(sim, source=SECOND, expires="2020-01-01T00:00:00Z")
    await sim.drain()
    assert sim.sent[0].statuses == ["expired"]
    mo = await sim.send_mo(HANDSET, "hello?")
    assert mo.destination == DEFAULT


async def test_dlr_is_retried_with_the_same_parameters_until_200() -> None:
    receiver = Receiver(answers=[500, 503])
    async with simulator(receiver) as sim:
        sim.set_fate(HANDSET, ["rejected"])
        await get(sim, reference="t1.m1")
        await sim.drain()
    assert len(receiver.dlrs()) == 3 and all(d == receiver.dlrs()[0] for d in receiver.dlrs())
    assert [(c.kind, c.answers) for c in sim.callbacks] == [("dlr", [500, 503, 200])]


async def test_dlr_gives_up_after_callback_retries_and_goes_on() -> None:
    receiver = Receiver(answers=[500] * 3)
    async with simulator(receiver, callback_retries=2) as sim:
        sim.set_fate(HANDSET, ["submitted", "sent"])
        await get(sim)
        await sim.drain()
    assert [c.answers for c in sim.callbacks] == [[500, 500, 500], [200]]
    assert [d["status"] for d in receiver.dlrs()] == ["submitted"] * 3 + ["sent"]


async def test_unreachable_app_is_recorded_as_no_answer() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    sim = Simulator(mo_url=f"http://127.0.0.1:{port}/mo", callback_retries=1, callback_backoff=0)
    mo = await sim.send_mo(HANDSET, "anyone there?")
    assert (mo.answer, mo.pending) == (None, False)
    assert sim.callbacks[0].answers == [None, None]
    await sim.aclose()


# -- MOs ---------------------------------------------------------------------------------------


async def test_mo_without_prior_mt(sim: Simulator, receiver: Receiver) -> None:
    mo = await sim.send_mo("+61 400 000 001", "JOIN")
    assert receiver.mos() == [
        {
            "id": str(mo.id),
            "source": HANDSET,
            "destination": "4433",
            "content": "JOIN",
            "operator": "Telstra",
        }
    ]
    assert mo.answer == 200 and mo.id > 2**32 and sim.mos == [mo]
    assert (mo.reply_to, mo.reference, mo.binary) == (None, None, False)


@pytest.fixture
async def sequenced(receiver: Receiver) -> AsyncIterator[Simulator]:
    """The `sim` account with a number sequence: MOs name the MT they answer."""
    async with simulator(receiver, number_sequence=True, **ACCOUNT) as sim:
        yield sim


async def test_mo_answers_the_latest_mt_with_its_reference(
    sequenced: Simulator, receiver: Receiver
) -> None:
    await get(sequenced, reference="t1.m1", source=SECOND)
    latest = int((await get(sequenced, reference="t1.m2", source=THIRD)).text)
    await get(sequenced, destination=OTHER, reference="t9.m9")
    mo = await sequenced.send_mo(HANDSET, "yes", operator="Optus")
    params = receiver.mos()[0]
    assert params["reply_to"] == str(latest) == str(mo.reply_to)
    assert params["reference"] == "t1.m2" == mo.reference
    assert params["destination"] == THIRD
    assert params["operator"] == "Optus"


async def test_mo_to_a_number_answers_the_latest_mt_from_it(
    sequenced: Simulator, receiver: Receiver
) -> None:
    from_second = int((await get(sequenced, reference="t1.m1", source=SECOND)).text)
    await get(sequenced, reference="t2.m1", source=THIRD)
    mo = await sequenced.send_mo(HANDSET, "yes", destination=SECOND)
    assert (mo.destination, mo.reply_to, mo.reference) == (SECOND, from_second, "t1.m1")
    nothing_from_there = await sequenced.send_mo(HANDSET, "hi", destination=DEFAULT)
    assert (nothing_from_there.reply_to, nothing_from_there.reference) == (None, None)


async def test_mo_can_answer_an_older_mt(sequenced: Simulator, receiver: Receiver) -> None:
    older = int((await get(sequenced, reference="t1.m1", source=SECOND)).text)
    await get(sequenced, reference="t1.m2")
    mo = await sequenced.send_mo(HANDSET, "about the first one", reply_to=older)
    assert (receiver.mos()[0]["reply_to"], receiver.mos()[0]["reference"]) == (str(older), "t1.m1")
    assert mo.destination == SECOND  # where that MT came from


async def test_reply_to_an_mt_without_reference_has_no_reference(
    sequenced: Simulator, receiver: Receiver
) -> None:
    message_id = int((await get(sequenced)).text)
    await sequenced.send_mo(HANDSET, "ok")
    assert receiver.mos()[0]["reply_to"] == str(message_id)
    assert "reference" not in receiver.mos()[0]


async def test_without_number_sequence_there_is_no_reply_to(
    sim: Simulator, receiver: Receiver
) -> None:
    await get(sim, reference="t1.m1")
    await get(sim, reference="t1.m2", source=SECOND)
    mo = await sim.send_mo(HANDSET, "ok")
    elsewhere = await sim.send_mo(HANDSET, "ok", destination=THIRD)
    assert all("reply_to" not in p and "reference" not in p for p in receiver.mos())
    assert (mo.reply_to, mo.destination) == (None, SECOND)  # where the latest MT came from
    assert (elsewhere.reply_to, elsewhere.destination) == (None, THIRD)
    with pytest.raises(ValueError, match="reply_to needs number_sequence=True"):
        await sim.send_mo(HANDSET, "about that one", reply_to=sim.sent[0].id)


async def test_an_mo_goes_only_to_one_of_our_numbers(sim: Simulator) -> None:
    with pytest.raises(ValueError, match=r"'5000' is not one of our numbers \(4433, \+61"):
        await sim.send_mo(HANDSET, "hi", destination="5000")
    with pytest.raises(ValueError, match="'0400999002' is not one of our numbers"):
        await sim.send_mo(HANDSET, "hi", destination="0400999002")
    assert sim.mos == []


@pytest.mark.parametrize(
    "dialled", ["+61400999000", "61400999000", "+61 400 999 000", "0400999000", "0061400999000"]
)
async def test_an_mo_to_our_number_in_any_spelling_goes_to_it_as_configured(
    sim: Simulator, receiver: Receiver, dialled: str
) -> None:
    """Regression: the MO's destination went as dialled, and the app refused
    "+61 400 999 000" (400); "0400999000" was not one of our numbers at all."""
    mo = await sim.send_mo(HANDSET, "hi", destination=dialled)
    assert (mo.destination, mo.answer) == (SECOND, 200)
    assert receiver.mos()[0]["destination"] == SECOND


async def test_mo_is_retried_with_the_same_id_until_200() -> None:
    receiver = Receiver(answers=[500, 404])
    async with simulator(receiver) as sim:
        mo = await sim.send_mo(HANDSET, "hello")
    assert [params["id"] for params in receiver.mos()] == [str(mo.id)] * 3
    assert mo.answer == 200 and sim.callbacks[0].answers == [500, 404, 200]


async def test_an_attempt_that_fails_outside_httpx_is_retried() -> None:
    """Regression: anyio raised AttributeError (its socket gone) when the app, killed
    and started again, reset a connection as it opened; it escaped `_callback`, and
    the MO was given up after a handful of attempts (the crash tests, under load)."""

    class ResetOnce(httpx.AsyncBaseTransport):
        def __init__(self, app: httpx.AsyncBaseTransport) -> None:
            self.app, self.failed = app, False

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            if not self.failed:
                self.failed = True
                raise AttributeError("'NoneType' object has no attribute 'getpeername'")
            return await self.app.handle_async_request(request)

    receiver = Receiver()
    transport = ResetOnce(httpx.ASGITransport(app=receiver.app))
    async with httpx.AsyncClient(transport=transport) as http:
        sim = Simulator(http=http, mo_url="http://app.test/mo", callback_backoff=0)
        mo = sim.queue_mo(HANDSET, "hello")
        await sim.drain()
        await sim.aclose()
    assert (mo.answer, mo.pending) == (200, False)
    assert sim.callbacks[0].answers == [None, 200]
    assert len(receiver.mos()) == 1


async def test_mo_gives_up_and_records_the_last_answer() -> None:
    receiver = Receiver(answers=[503] * 6)
    async with simulator(receiver) as sim:
        mo = await sim.send_mo(HANDSET, "hello")
    assert len(receiver.mos()) == 6 and mo.answer == 503


async def test_an_mo_whose_callback_url_is_too_long_is_not_delivered_without_a_traceback(
    sim: Simulator, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    """Regression: httpx.InvalidURL (a URL over 65,536 characters) escaped `_callback`:
    send_mo raised it, and queue_mo logged "simulator task failed" and its traceback."""
    text = "é " * 10_000  # within the app's MAX_CONTENT, 90,000 characters percent-encoded
    mo = await sim.send_mo(HANDSET, text)
    queued = sim.queue_mo(HANDSET, text)
    await sim.drain()
    for each in (mo, queued):
        assert (each.answer, each.pending) == (None, False)
        assert each.callback is not None and each.callback.answers == [None]  # not retried
    assert receiver.mos() == []
    assert [r.levelname for r in caplog.records if r.name == "botkit.simulator"] == ["WARNING"] * 2
    assert "URL" in caplog.records[-1].getMessage()


async def test_binary_mo_is_base64(sim: Simulator, receiver: Receiver) -> None:
    data = bytes([0, 1, 254, 255]) + "é".encode()
    mo = await sim.send_mo(HANDSET, data)
    params = receiver.mos()[0]
    assert params["encoding"] == "base64"
    assert base64.b64decode(params["content"]) == data
    assert mo.binary and mo.content == params["content"]
    await sim.send_mo(HANDSET, "plain ünïcode")
    assert "encoding" not in receiver.mos()[1]


async def test_queue_mo_delivers_in_the_background(sim: Simulator, receiver: Receiver) -> None:
    mo = sim.queue_mo(HANDSET, "later")
    assert mo.pending and mo in sim.mos
    await sim.drain()
    assert not mo.pending and mo.answer == 200
    assert receiver.mos()[0]["content"] == "later"


async def test_mo_without_mo_url_is_recorded_but_not_delivered() -> None:
    sim = Simulator()
    mo = await sim.send_mo(HANDSET, "hello?")
    assert (mo.answer, mo.pending, sim.callbacks) == (None, False, [])
    await sim.aclose()


async def test_inbox(sim: Simulator) -> None:
    await get(sim, content="one")
    await get(sim, destination=OTHER, content="other")
    await get(sim, content="two")
    assert [m.content for m in sim.inbox("+61 400 000 001")] == ["one", "two"]


# -- lifecycle ---------------------------------------------------------------------------------


async def test_drain_times_out_on_callbacks_that_take_too_long(receiver: Receiver) -> None:
    async with simulator(receiver, dlr_delay=60) as sim:
        await get(sim)
        with pytest.raises(TimeoutError):
            await sim.drain(timeout=0.01)


async def test_aclose_cancels_pending_callbacks(receiver: Receiver) -> None:
    async with simulator(receiver, dlr_delay=60) as sim:
        await get(sim)
        await sim.aclose()
        assert sim._tasks == set()
    assert receiver.requests == []


async def test_lifespan_closes_the_client_it_created() -> None:
    sim = Simulator()
    async with sim.app.router.lifespan_context(sim.app):
        assert not sim._http.is_closed
    assert sim._http.is_closed


@contextlib.asynccontextmanager
async def serve(app: Starlette) -> AsyncIterator[str]:
    """Serve `app` with a real uvicorn on a free loopback port; yields its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await task
        sock.close()


async def test_over_real_sockets_gateway_to_simulator_to_app() -> None:
    receiver = Receiver()
    sim = Simulator(dlr_delay=0, allow=["127.0.0.1"], number_sequence=True)
    async with serve(receiver.app) as app_url, serve(sim.app) as sim_url:
        sim.mo_url, sim.dlr_url = f"{app_url}/mo", f"{app_url}/dlr"
        async with Gateway(
            url=f"{sim_url}/message", application="botkit", password="simulator"
        ) as gateway:
            message_id = await gateway.send(HANDSET, "Reply YES", reference="t7.m1")
        await sim.drain()
        mo = await sim.send_mo(HANDSET, "YES")
    assert [d["status"] for d in receiver.dlrs()] == ["submitted", "sent", "received"]
    assert receiver.mos()[0]["reply_to"] == str(message_id)
    assert receiver.mos()[0]["reference"] == "t7.m1" and mo.answer == 200
    assert sim._http.is_closed  # uvicorn ran the lifespan's shutdown


def test_botkit_simulator_plays_the_account_its_flags_describe(processes) -> None:
    port, app_port = free_port(), free_port()  # nothing listens for the callbacks
    app = f"http://127.0.0.1:{app_port}"
    simulator = start(
        processes,
        ["simulator", "--port", str(port), "--mo-url", f"{app}/mo", "--dlr-url", f"{app}/dlr",
         "--numbers", "4433,+61 400 999 000", "--classes", "mt_message,premium",
         "--masks", "ACME", "--number-sequence"],
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    wait_for(f"{base}/", simulator)

    def send(**params: str) -> httpx.Response:
        return httpx.get(f"{base}/message", params={**GOOD, **params})

    assert send(source=SECOND).status_code == 200
    assert send(**{"class": "premium", "mask": "ACME"}).status_code == 200
    assert_error(send(source=THIRD), 400, QUEUE_TEXT)
    assert_error(send(**{"class": "bulk"}), 400, QUEUE_TEXT)
    sent = httpx.get(f"{base}/api/messages").json()["messages"]
    assert [m["sender"] for m in sent] == [SECOND, "ACME"]
    texted = httpx.post(f"{base}/api/handsets/{HANDSET}/send", json={"text": "hi", "to": SECOND})
    assert texted.status_code == 202
    (mo,) = httpx.get(f"{base}/api/mos").json()["mos"]
    assert (mo["destination"], mo["reply_to"]) == (SECOND, sent[0]["id"])


def test_botkit_simulator_refuses_a_bad_number(processes) -> None:
    args = ["simulator", "--mo-url", "http://a/mo", "--dlr-url", "http://a/dlr"]
    bad = start(processes, [*args, "--numbers", "4433,0400999000"])
    assert bad.wait(20) == 2


# -- faults --------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [503, 429])
async def test_a_fault_that_did_not_take_the_request_queues_nothing_then_heals(
    sim: Simulator, status: int
) -> None:
    fault = sim.fail(status=status, requests=2)
    answers = [await get(sim, reference=f"t1.m{n}") for n in range(3)]
    assert [a.status_code for a in answers] == [status, status, 200]
    assert [m.reference for m in sim.sent] == ["t1.m2"] and fault.over()
    assert [(r.reference, r.status, r.faulted) for r in sim.requests] == [
        ("t1.m0", status, True),
        ("t1.m1", status, True),
        ("t1.m2", 200, False),
    ]
    assert sim.requests[2].message_id == sim.sent[0].id


async def test_a_500_is_after_queuing_unless_told_otherwise(
    sim: Simulator, receiver: Receiver
) -> None:
    sim.fail(status=500, requests=1)
    answer = await get(sim, reference="t1.m1")
    assert (answer.status_code, answer.text) == (500, "Internal Server Error")
    await sim.drain()
    assert [d["reference"] for d in receiver.dlrs()] == ["t1.m1"] * 3  # it is delivered
    sim.fail(status=500, accept=False)
    assert (await get(sim, reference="t1.m2")).status_code == 500
    assert [m.reference for m in sim.sent] == ["t1.m1"]
    sim.heal()
    assert (await get(sim)).status_code == 200


async def test_a_delay_alone_answers_the_id_late(sim: Simulator) -> None:
    sim.fail(delay=0.01, requests=1)
    answer = await get(sim)
    assert answer.status_code == 200 and int(answer.text) == sim.sent[0].id


async def test_a_fault_for_some_seconds_runs_out(sim: Simulator) -> None:
    fault = sim.fail(status=503, seconds=0.01)
    await asyncio.sleep(0.02)
    assert fault.over() and (await get(sim)).status_code == 200 and fault.answered == 0


@pytest.mark.parametrize(
    "fault",
    [
        {"status": 404},
        {"status": 503, "accept": True},
        {"delay": 1.0, "accept": False},
        {},
        {"delay": -1.0},
        {"status": 500, "requests": 0},
        {"status": 500, "seconds": 0},
    ],
)
def test_impossible_faults_are_refused(sim: Simulator, fault: dict) -> None:
    with pytest.raises(ValueError):
        sim.fail(**fault)


async def test_faults_over_http(sim: Simulator) -> None:
    transport = httpx.ASGITransport(app=sim.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sim.test") as http:
        assert (await http.get("/api/faults")).json() == {"fault": None}
        started = await http.post("/api/faults", json={"status": 503, "requests": 1})
        assert started.json()["fault"] == {
            "status": 503,
            "delay": 0.0,
            "accept": False,
            "requests": 1,
            "seconds": None,
            "answered": 0,
            "over": False,
        }
        assert (await get(sim)).status_code == 503
        assert (await http.get("/api/faults")).json()["fault"]["over"]
        for bad in ({"status": "503"}, {"status": True}, {"kind": "x"}, [503], {"status": 200}):
            assert (await http.post("/api/faults", json=bad)).status_code == 400
        form = await http.post("/api/faults", data={"status": "503"})
        assert form.status_code == 415
        headers = {"content-type": "application/json"}
        # Regression: a body of any size was read; `[` * 100000 raised RecursionError (500).
        for body, status in ((b"[" * 60_000, 400), (b" " * 100_000 + b"{}", 413)):
            refused = await http.post("/api/faults", content=body, headers=headers)
            assert refused.status_code == status and "error" in refused.json()
        await http.post("/api/faults", json={"delay": 0.5})
        assert (await http.delete("/api/faults")).json() == {"fault": None}
        (request,) = (await http.get("/api/requests")).json()["requests"]
    assert request == {
        "destination": HANDSET,
        "reference": None,
        "status": 503,
        "message_id": None,
        "faulted": True,
    }
