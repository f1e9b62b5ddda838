"""The gateway failing for a while, then healthy again: nothing lost, retries back off,
and no MT sent twice where the gateway may have taken it.

A failure that surely never reached the gateway (connection refused, 503, 429) is
retried; one after which the gateway may hold the message (500, a timeout) is left
uncertain and settled by its DLR, never resent blindly. The simulator decides, per
fault, whether it accepted the message, and its record is the judge.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections import defaultdict
from collections.abc import AsyncIterator

import httpx
import pytest
from conftest import ROOT, eventually, rows
from servers import (
    Relay,
    free_port,
    gateway_env,
    output,
    poll,
    served,
    start,
    start_simulator,
    wait_for,
)
from starlette.applications import Starlette

from botkit import Settings, create_app
from botkit.clock import parse_stamp
from botkit.gateway import Gateway
from botkit.simulator import Simulator
from botkit.testing import FakeClock, Harness

pytestmark = pytest.mark.fault

PHONE = "+61400000001"
PASSWORD = "faults-Pa55"


def outbox(db: str) -> list[tuple[int, int, str, str | None]]:
    """The outbox: (message id, attempts, next attempt, last error) of each MT waiting."""
    return [
        (r["message_id"], r["attempts"], r["next_attempt_at"], r["last_error"])
        for r in rows(db, "SELECT * FROM outbox ORDER BY message_id")
    ]


def mts(db: str) -> list[dict]:
    """Every MT in the database, oldest first."""
    return [dict(r) for r in rows(db, "SELECT * FROM messages WHERE direction = 'mt' ORDER BY id")]


@pytest.mark.parametrize("status", [503, 429])
async def test_a_gateway_that_did_not_take_the_request_is_retried_with_growing_backoff(
    status: int,
    database,
) -> None:
    async with Harness(ROOT / "bots", ROOT / "templates", db=database) as harness:
        db = harness.runtime.settings.db
        sim = harness.simulator
        phones = [harness.phone(f"+6140000010{n}") for n in range(3)]
        fault = sim.fail(status=status, requests=3 * len(phones))  # three times each
        for phone in phones:
            assert await phone.send("HELLO") == []
        delays: dict[int, list[tuple[int, float]]] = defaultdict(list)
        for _ in range(10):
            waiting = outbox(db)
            if not waiting:
                break
            now = harness.clock.now
            for message_id, attempts, due, _error in waiting:
                delays[message_id].append((attempts, (parse_stamp(due) - now).total_seconds()))
            await harness.advance(max(delays[w[0]][-1][1] for w in waiting))
        assert outbox(db) == [] and fault.over()

        for phone in phones:
            (reply,) = await harness.replies_to(phone.number)
            assert reply.template == "hello/ask_name.txt"
        references = [m.reference for m in sim.sent]
        assert len(references) == len(set(references)) == len(phones)
        for reference in references:
            answers = [r.status for r in sim.requests if r.reference == reference]
            assert answers == [status, status, status, 200]
        for history in delays.values():  # backoff: each retry waits longer than the last
            assert [attempts for attempts, _ in history] == [1, 2, 3]
            waits = [delay for _, delay in history]
            assert waits == sorted(set(waits)) and waits[0] > 0
        assert {(m["status"], m["error"]) for m in mts(db)} == {("accepted", None)}


async def test_a_500_after_accepting_is_not_resent_but_settled_by_its_dlr(database) -> None:
    async with Harness(ROOT / "bots", ROOT / "templates", db=database) as harness:
        db = harness.runtime.settings.db
        sim = harness.simulator
        phone = harness.phone(PHONE)
        sim.fail(status=500, requests=1)  # the gateway queued it, then failed to answer
        (reply,) = await phone.send("HELLO")
        assert [m["status"] for m in mts(db)] == ["uncertain"]
        await harness.advance(hours=1)  # long after any retry would have gone
        assert len(sim.requests) == 1 and len(sim.sent) == 1

        await phone.deliver(reply, "received")
        (mt,) = mts(db)
        assert (mt["status"], mt["gateway_id"], mt["delivery"]) == (
            "accepted",
            reply.id,
            "received",
        )
        assert mt["uncertain"] == 1
        (greeting,) = await phone.send("Ada")  # the gateway is healthy again
        assert greeting.template == "hello/greet.txt"
        assert [m.reference for m in sim.sent] == [reply.reference, greeting.reference]


async def test_a_500_before_accepting_is_left_uncertain_not_resent(database) -> None:
    async with Harness(ROOT / "bots", ROOT / "templates", db=database) as harness:
        db = harness.runtime.settings.db
        sim = harness.simulator
        sim.fail(status=500, accept=False, requests=1)
        assert await harness.phone(PHONE).send("HELLO") == []
        await harness.advance(hours=1)
        # Botkit cannot tell this 500 from one after accepting: it keeps the MT, marked
        # uncertain for an operator, rather than risk a duplicate.
        (mt,) = mts(db)
        assert (mt["status"], mt["gateway_id"]) == ("uncertain", None)
        assert sim.sent == [] and [r.status for r in sim.requests] == [500]


@contextlib.asynccontextmanager
async def behind_a_relay(settings: Settings) -> AsyncIterator[tuple[Starlette, Simulator, Relay]]:
    """The app, its gateway client (timeout 0.3 s) reaching the simulator over real TCP
    through a relay, the simulator's callbacks reaching the app in-process, a fake clock."""
    port = free_port()
    with Relay(port) as relay:
        gateway = Gateway(
            url=f"http://127.0.0.1:{relay.port}/message",
            application="botkit",
            password=PASSWORD,
            timeout=httpx.Timeout(0.3),
        )
        app = create_app(settings, gateway=gateway, clock=FakeClock())
        to_app = httpx.AsyncClient(transport=httpx.ASGITransport(app=app))
        sim = Simulator(
            password=PASSWORD,
            mo_url="http://app/callbacks/test-token/mo",
            dlr_url="http://app/callbacks/test-token/dlr",
            http=to_app,
            dlr_delay=0,
        )
        async with to_app, served(sim.app, port), app.router.lifespan_context(app):
            yield app, sim, relay


def advance(app: Starlette, seconds: float) -> None:
    """Move the app's fake clock on and wake the sender to see it."""
    app.state.runtime.clock.advance(seconds)
    app.state.runtime.sender.wake()


def wait_of(app: Starlette, db: str) -> tuple[int, float]:
    """The attempts of the one MT waiting, and how long until its next attempt."""
    ((_, attempts, due, _),) = outbox(db)
    return attempts, (parse_stamp(due) - app.state.runtime.clock()).total_seconds()


def retried(db: str) -> list[tuple[int, str]]:
    """(attempts, last error) of each MT queued again after a failed attempt; not one
    still `sending`, whose attempt is counted before its outcome is written."""
    return [
        (r["attempts"], r["last_error"])
        for r in rows(db, "SELECT * FROM outbox WHERE state = 'queued' ORDER BY message_id")
        if r["last_error"] is not None
    ]


async def test_connection_refused_is_retried_then_sent_once(settings: Settings) -> None:
    async with behind_a_relay(settings) as (app, sim, relay):
        relay.off()
        assert (await sim.send_mo(PHONE, "HELLO")).answer == 200
        await eventually(lambda: [w[0] for w in retried(settings.db)] == [1])
        assert "ConnectError" in retried(settings.db)[0][1]
        first = wait_of(app, settings.db)
        advance(app, first[1])  # refused again: a longer wait
        await eventually(lambda: [w[0] for w in retried(settings.db)] == [2])
        second = wait_of(app, settings.db)
        assert first[0] < second[0] and 0 < first[1] < second[1]
        relay.on()
        advance(app, second[1])
        await eventually(lambda: outbox(settings.db) == [])
        await sim.drain()
    (mt,) = mts(settings.db)
    (sent,) = sim.sent
    assert (mt["status"], mt["gateway_id"], mt["uncertain"]) == ("accepted", sent.id, 0)
    assert [r.status for r in sim.requests] == [200]  # the refused ones never arrived


async def test_a_timeout_after_accepting_is_settled_by_its_dlr_never_resent(
    settings: Settings,
) -> None:
    async with behind_a_relay(settings) as (app, sim, _):
        sim.set_fate(PHONE, [])  # the carrier reports later, by hand
        sim.fail(delay=1.0, requests=1)  # taken on arrival, answered after the client left
        await sim.send_mo(PHONE, "HELLO")
        await eventually(lambda: [m["status"] for m in mts(settings.db)] == ["uncertain"])
        (sent,) = sim.sent  # the dangerous case: the gateway has it
        advance(app, 3600)
        await eventually(lambda: len(sim.requests) == 1)  # the held request was answered
        await sim.report(sent.id, "submitted")
        (mt,) = mts(settings.db)
        assert (mt["status"], mt["gateway_id"], mt["uncertain"]) == ("accepted", sent.id, 1)
        assert mt["reference"] == sent.reference and mt["delivery"] == "submitted"
        assert len(sim.sent) == 1 and [r.faulted for r in sim.requests] == [True]


async def test_a_timeout_before_accepting_is_left_uncertain(settings: Settings) -> None:
    async with behind_a_relay(settings) as (app, sim, _):
        sim.fail(status=500, delay=1.0, accept=False, requests=1)
        await sim.send_mo(PHONE, "HELLO")
        await eventually(lambda: [m["status"] for m in mts(settings.db)] == ["uncertain"])
        advance(app, 3600)
        await eventually(lambda: len(sim.requests) == 1)
    assert sim.sent == []
    (mt,) = mts(settings.db)
    assert (mt["status"], mt["gateway_id"]) == ("uncertain", None)


async def test_a_slow_gateway_within_the_timeout_is_just_slow(settings: Settings) -> None:
    async with behind_a_relay(settings) as (_, sim, _):
        sim.fail(delay=0.1, requests=1)
        await sim.send_mo(PHONE, "HELLO")
        await eventually(lambda: [m["status"] for m in mts(settings.db)] == ["accepted"])
    (sent,) = sim.sent
    assert mts(settings.db)[0]["gateway_id"] == sent.id and mts(settings.db)[0]["uncertain"] == 0


def test_real_processes_through_503s_refusals_and_500s(tmp_path, processes) -> None:
    """`botkit simulator` and `botkit run` as processes, faults switched over HTTP: every
    MT reaches the gateway exactly once, and the JSON log shows the backoff."""
    (tmp_path / "bots").mkdir()
    shutil.copy(ROOT / "bots" / "hello.py", tmp_path / "bots")
    app_port = free_port()
    sim_port = start_simulator(processes, app_port, PASSWORD)
    app_url, sim_url = f"http://127.0.0.1:{app_port}", f"http://127.0.0.1:{sim_port}"
    db = str(tmp_path / "botkit.db")
    with Relay(sim_port) as relay:
        app = start(
            processes,
            ["run", "--port", str(app_port), "--db", db, "--bots", str(tmp_path / "bots"),
             "--templates", str(ROOT / "templates")],
            env={
                **gateway_env(relay.port, PASSWORD),
                "BOTKIT_SEND_RATE": "100",
                "BOTKIT_LOG_FORMAT": "json",
            },
        )  # fmt: skip
        wait_for(f"{app_url}/healthz", app)

        def fault(**body: object) -> dict:
            answer = httpx.post(f"{sim_url}/api/faults", json=body)
            assert answer.status_code == 200, answer.text
            return answer.json()["fault"]

        def text(numbers: range, word: str = "HELLO") -> None:
            for n in numbers:
                url = f"{sim_url}/api/handsets/+6140000020{n}/send"
                assert httpx.post(url, json={"text": word}).status_code == 202

        def settled(count: int) -> bool:
            """`count` MTs, each answered for good by the gateway."""
            statuses = [m["status"] for m in mts(db)]
            return len(statuses) == count and set(statuses) <= {"accepted", "uncertain"}

        # 503 twice for each of five MTs: retried, 2 s then 4 s later.
        assert fault(status=503, requests=10)["accept"] is False
        text(range(5))
        poll(lambda: settled(5) and outbox(db) == [], timeout=30)
        assert httpx.get(f"{sim_url}/api/faults").json()["fault"]["over"]
        after_503 = [m["reference"] for m in mts(db)]

        # The gateway unreachable: refused until the relay is back.
        relay.off()
        text(range(5, 8))
        poll(lambda: len(outbox(db)) == 3 and all(w[3] for w in outbox(db)))
        assert all("ConnectError" in w[3] for w in outbox(db))
        relay.on()
        poll(lambda: settled(8) and outbox(db) == [], timeout=30)

        # A 500 after accepting, and a slow answer: neither is resent.
        assert fault(status=500, requests=1)["accept"] is True
        text(range(8, 9))
        poll(lambda: settled(9))
        fault(delay=0.2, requests=1)
        text(range(9, 10))
        poll(lambda: settled(10))
        assert httpx.delete(f"{sim_url}/api/faults").json() == {"fault": None}

        def all_accepted() -> bool:
            return {m["status"] for m in mts(db)} == {"accepted"}

        poll(all_accepted)  # the uncertain one, by its DLR
        sent = httpx.get(f"{sim_url}/api/messages").json()["messages"]
        requests = httpx.get(f"{sim_url}/api/requests").json()["requests"]
    references = [m["reference"] for m in sent]
    assert len(references) == len(set(references)) == 10, "an MT reached the gateway twice"
    assert {m["reference"]: int(m["id"]) for m in sent} == {
        m["reference"]: m["gateway_id"] for m in mts(db)
    }
    assert sorted(r["status"] for r in requests if r["faulted"]) == [200] + [500] + [503] * 10
    assert sum(m["uncertain"] for m in mts(db)) == 1

    retries: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for line in output(app).splitlines():
        entry = json.loads(line) if line.startswith("{") else {}
        if entry.get("event") == "mt.retried":
            retries[entry["reference"]].append((entry["attempt"], entry["retry_in_s"]))
    for reference in after_503:  # backoff: the second retry waited longer than the first
        (first, second) = retries[reference]
        assert (first[0], second[0]) == (1, 2) and 0 < first[1] < second[1]
