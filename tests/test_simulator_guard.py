"""The simulator mounted in the app (/simulator) is as private as the dashboard: this
machine only, asked for by name, or the dashboard's login (its JSON, without a session,
answered 401); the app's own sends to it go around the mount and keep working."""

from __future__ import annotations

import httpx
from conftest import eventually, running
from signin import OUTSIDE, log_in, with_login

from botkit import create_app

PHONE = "+61400000001"
SEND = "/simulator/api/handsets/%2B61400000001/send"


async def test_without_a_login_only_this_machine_by_name_gets_the_phone_page(settings):
    async with running(create_app(settings)) as app:
        simulator = app.state.simulator
        for client, host, status in [
            (("127.0.0.1", 1234), "localhost:8000", 200),
            (("127.0.0.1", 1234), "127.0.0.1:8000", 200),
            (("127.0.0.1", 1234), "evil.example:8000", 403),  # DNS rebinding
            (OUTSIDE, "localhost:8000", 403),
        ]:
            transport = httpx.ASGITransport(app=app, client=client)
            async with httpx.AsyncClient(transport=transport, base_url=f"http://{host}") as c:
                assert (await c.get("/simulator/")).status_code == status, host
                messages = await c.get("/simulator/api/messages")
                assert messages.status_code == status, host
                sent = await c.post(SEND, json={"text": "hello"})
                assert sent.status_code == (202 if status == 200 else status), host
        assert [mo.content for mo in simulator.mos] == ["hello", "hello"]


async def test_with_a_login_the_phone_page_needs_it(settings):
    async with running(create_app(with_login(settings))) as app:
        simulator = app.state.simulator
        transport = httpx.ASGITransport(app=app, client=OUTSIDE)
        async with httpx.AsyncClient(transport=transport, base_url="http://bots.example") as c:
            page = await c.get("/simulator/")
            assert page.status_code == 303
            assert page.headers["location"] == "/dashboard/login?next=/simulator/"
            # What the page fetches is told to log in again, not sent to the form: fetch()
            # would follow the redirect to a 200 and take the text for sent.
            for refused in [
                await c.get("/simulator/api/messages"),
                await c.get("/simulator/api/handsets/%2B61400000001"),
                await c.post(SEND, json={"text": "hello"}),
            ]:
                assert refused.status_code == 401
                assert refused.json() == {"error": "not logged in: log in again"}
                assert "www-authenticate" not in refused.headers  # no browser prompt
            assert simulator.mos == []
            signed_in = await log_in(c, next="/simulator/?number=%2B61400000001")
            assert signed_in.headers["location"] == "/simulator/?number=%2B61400000001"
            assert (await c.get("/simulator/")).status_code == 200
            assert (await c.post(SEND, json={"text": "hello"})).status_code == 202
            # The MO reaches the app, and the bot's reply the simulator: the app's own
            # requests to the simulator do not go through the guarded mount.
            await eventually(lambda: simulator.inbox(PHONE))
        async with httpx.AsyncClient(
            transport=transport, base_url="http://bots.example", auth=("ops", "s3cret!")
        ) as c:
            assert (await c.get("/simulator/api/messages")).status_code == 200
