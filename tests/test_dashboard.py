"""The dashboard's first pages: conversations and transcripts, private and escaped."""

from __future__ import annotations

import base64
import dataclasses

import httpx
import pytest
from conftest import ROOT, running

from botkit import create_app
from botkit.testing import Harness

pytestmark = pytest.mark.backends

BOTS, TEMPLATES = ROOT / "bots", ROOT / "templates"
PHONE = "+61400000001"
HOSTILE = "<script>alert(1)</script> <img src=x onerror=alert(1)>"


def client(harness: Harness, ip: str = "127.0.0.1", **headers: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=harness.app, client=(ip, 1234))
    return httpx.AsyncClient(transport=transport, base_url="http://localhost", headers=headers)


async def test_conversations_list_threads_with_their_last_message_escaped(database):
    async with Harness(BOTS, TEMPLATES, db=database) as harness:
        await harness.phone(PHONE).send("hello")
        await harness.phone(PHONE).send(HOSTILE)
        async with client(harness) as c:
            page = await c.get("/dashboard/")
        assert page.status_code == 200
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert PHONE in page.text and "hello" in page.text
        assert "<script>alert(1)</script>" not in page.text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" not in page.text  # the last is the reply
        async with client(harness) as c:
            thread_id = (await harness.phone(PHONE).thread()).id
            transcript = await c.get(f"/dashboard/threads/{thread_id}")
        assert transcript.status_code == 200
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in transcript.text
        assert "<img src=x" not in transcript.text
        assert "Hi! I&#39;m the botkit hello bot." in transcript.text


async def test_conversations_page_by_keyset_and_filter_by_bot(database):
    async with Harness(BOTS, TEMPLATES, db=database) as harness:
        for n in range(60):
            await harness.phone(f"+614000001{n:02d}").send("hello")
        await harness.phone("+61400000999").send("JOIN")
        async with client(harness) as c:
            first = await c.get("/dashboard/")
            assert first.text.count("<tr>") == 1 + 50
            link = first.text.split('rel="next" href="')[1].split('"')[0].replace("&amp;", "&")
            second = await c.get(f"/dashboard/{link}")
            assert second.text.count("<tr>") == 1 + 11
            optin = await c.get("/dashboard/", params={"bot": "optin"})
            assert optin.text.count("<tr>") == 1 + 1
            assert "+61400000999" in optin.text
            missing = await c.get("/dashboard/threads/999999")
            assert missing.status_code == 404


async def test_the_dashboard_is_private(settings, database):
    async with (
        Harness(BOTS, TEMPLATES, db=database) as harness,
        client(harness, ip="203.0.113.9") as c,
    ):
        assert (await c.get("/dashboard/")).status_code == 403
    locked = dataclasses.replace(settings, dashboard_user="ops", dashboard_password="s3cret!")
    async with running(create_app(locked)) as app:
        transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 1234))
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as c:
            assert (await c.get("/api/surveys/x")).status_code == 401
            login = await c.get("/dashboard/")
            assert login.status_code == 303
            assert login.headers["location"] == "/dashboard/login?next=/dashboard/"
            good = base64.b64encode(b"ops:s3cret!").decode()
            page = await c.get("/dashboard/", headers={"Authorization": f"Basic {good}"})
            assert page.status_code == 200
            assert "s3cret!" not in page.text
