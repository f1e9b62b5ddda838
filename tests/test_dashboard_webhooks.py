"""The dashboard's webhooks page on both backends: the webhooks in force (no secret but
its last 4, no URL query), deliveries with their state, attempts, last answer (escaped)
and next attempt, a delivery's history, and an operator's retry of a failed one (CSRF
checked); private like every page."""

from __future__ import annotations

import httpx
import pytest
from conftest import eventually
from signin import log_in, token
from test_webhooks import Receiver, hooked_to

from botkit.testing import FakeClock

pytestmark = pytest.mark.backends

HOSTILE = "<script>alert(1)</script>"
HANDSET = "+61400000001"


def client_to(app) -> httpx.AsyncClient:
    """A browser on this machine (the dashboard has no login)."""
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 1234))
    return httpx.AsyncClient(transport=transport, base_url="http://localhost")


async def test_a_failed_delivery_is_shown_escaped_and_retried_by_an_operator(settings):
    receiver = Receiver(fails=1, body=HOSTILE)
    async with hooked_to(receiver, settings, FakeClock()) as app, client_to(app) as c:
        runtime = app.state.runtime
        runtime.webhooks.schedule = ()  # one attempt, then failed
        await app.state.simulator.send_mo(HANDSET, f"hi {HOSTILE}")
        await eventually(lambda: runtime.metrics.webhooks["failed"]._value.get())

        page = await c.get("/dashboard/webhooks")
        assert page.status_code == 200
        assert HOSTILE not in page.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
        assert "whsec_" not in page.text and "…cdef" in page.text
        assert '/dashboard/webhooks">Webhooks</a>' in page.text  # in the nav
        assert ">failed</td>" in page.text and ">Retry</button>" in page.text
        assert "script-src 'self'" in page.headers["content-security-policy"]

        (row,) = (await runtime.store.webhooks.page())[0]
        detail = await c.get(f"/dashboard/webhooks/{row['id']}")
        assert detail.status_code == 200 and HOSTILE not in detail.text
        assert "hi &lt;script&gt;" in detail.text and "HTTP 500: &lt;script&gt;" in detail.text
        assert (await c.get("/dashboard/webhooks/999")).status_code == 404

        retry = f"/dashboard/webhooks/{row['id']}/retry"
        assert (await c.post(retry)).status_code == 403  # no CSRF token
        assert (await c.post(retry, data={"csrf": "forged"})).status_code == 403
        done = await c.post(retry, data={"csrf": token(page)})
        assert done.status_code == 303
        assert done.headers["location"] == f"/dashboard/webhooks#d{row['id']}"
        await eventually(lambda: runtime.metrics.webhooks["delivered"]._value.get())
        again = await c.post(retry, data={"csrf": token(page)})
        assert again.status_code == 409 and "only a failed one can be retried" in again.text
        missing = await c.post("/dashboard/webhooks/999/retry", data={"csrf": token(page)})
        assert missing.status_code == 404 and "There is no delivery 999." in missing.text

        delivered = await c.get("/dashboard/webhooks", params={"state": "delivered"})
        assert ">delivered</td>" in delivered.text and ">Retry</button>" not in delivered.text
        failed = await c.get("/dashboard/webhooks", params={"state": "failed"})
        assert "No deliveries failed." in failed.text
        bad = await c.get("/dashboard/webhooks", params={"state": "<b>"})
        assert bad.status_code == 400 and "<b>" not in bad.text
    assert len(receiver.requests) == 2


async def test_the_webhooks_page_is_private(locked):
    for answer in (
        await locked.get("/dashboard/webhooks"),
        await locked.get("/dashboard/webhooks/1"),
        await locked.post("/dashboard/webhooks/1/retry"),
    ):
        assert answer.status_code == 303 and "/dashboard/login" in answer.headers["location"]
    await log_in(locked)
    page = await locked.get("/dashboard/webhooks")
    assert page.status_code == 200 and "No webhooks" in page.text
    assert (await locked.post("/dashboard/webhooks/1/retry")).status_code == 403  # no CSRF
