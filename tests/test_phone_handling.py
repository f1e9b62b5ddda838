"""The phone page shows the app's answer to each MO: in `botkit run`'s simulator mode how
the app handled it (handled, or failed with its error, cut short and escaped); standalone,
`stored` after a 200 and `refused (HTTP n)` otherwise. Against the real app."""

from __future__ import annotations

import html

import httpx
import pytest
from conftest import ROOT
from test_dashboard_failures import HOSTILE, PHONE, fragile_bot

from botkit.phone import SHORT_ERROR
from botkit.simulator import Simulator
from botkit.testing import Harness

pytestmark = pytest.mark.backends

API = "/api/handsets/%2B61400000001"


def mo_statuses(conversation: dict) -> list[str]:
    return [m["status"] for m in conversation["messages"] if m["direction"] == "mo"]


async def test_in_simulator_mode_each_mo_shows_how_the_app_handled_it(database):
    long = "x" * 100
    bots = [fragile_bot()]
    async with Harness(bots, ROOT / "templates", db=database, raise_errors=False) as h:
        phone = h.phone(PHONE)
        for text in ("BEGIN", HOSTILE, long):
            await phone.send(text)
        transport = httpx.ASGITransport(app=h.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as c:
            conversation = (await c.get(f"/simulator{API}")).json()
            page = (await c.get("/simulator/", params={"number": PHONE})).text
    error = f"ValueError: cannot take {long}"
    assert mo_statuses(conversation) == [
        "handled",
        f"failed: ValueError: cannot take {HOSTILE}",
        f"failed: {error[: SHORT_ERROR - 1]}…",
    ]
    assert f"failed: ValueError: cannot take {html.escape(HOSTILE)}" in page
    assert HOSTILE not in page


async def test_standalone_an_mo_is_stored_after_a_200_and_refused_otherwise(app):
    transport = httpx.ASGITransport(app=app)
    statuses = []
    for token in ("test-token", "wrong-token"):
        simulator = Simulator(
            mo_url=f"http://botkit.test/callbacks/{token}/mo",
            http=httpx.AsyncClient(transport=transport),
            callback_retries=0,
        )
        await simulator.send_mo(PHONE, "hello")
        sim = httpx.ASGITransport(app=simulator.app)
        async with httpx.AsyncClient(transport=sim, base_url="http://sim.test") as c:
            statuses += mo_statuses((await c.get(API)).json())
        await simulator.aclose()
    assert statuses == ["stored", "refused (HTTP 404)"]
