"""Signing in to the dashboard: a form, a signed session cookie, CSRF on every form,
logging out, and a throttle on guessing."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import AsyncIterator

import httpx
import pytest
from conftest import ROOT, running

from botkit import create_app
from botkit.settings import Settings

OUTSIDE = ("203.0.113.9", 1234)


@pytest.fixture
async def locked(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A client from another machine, to an app with a dashboard login."""
    settings = dataclasses.replace(
        settings,
        bots=str(ROOT / "bots"),
        templates=str(ROOT / "templates"),
        dashboard_user="ops",
        dashboard_password="s3cret!",
    )
    async with running(create_app(settings)) as app:
        transport = httpx.ASGITransport(app=app, client=OUTSIDE)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield client


def token(page: httpx.Response) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)


async def log_in(client: httpx.AsyncClient, password: str = "s3cret!", **extra: str):
    form = await client.get("/dashboard/login")
    data = {"csrf": token(form), "user": "ops", "password": password, **extra}
    return await client.post("/dashboard/login", data=data)


async def test_log_in_then_out(locked):
    form = await locked.get("/dashboard/login", params={"next": "/dashboard/?bot=hello"})
    assert form.status_code == 200
    assert 'type="password"' in form.text and "s3cret!" not in form.text
    assert "no-store" in form.headers["cache-control"]
    signed_in = await locked.post(
        "/dashboard/login",
        data={
            "csrf": token(form),
            "user": "ops",
            "password": "s3cret!",
            "next": "/dashboard/?bot=hello",
        },
    )
    assert signed_in.status_code == 303
    assert signed_in.headers["location"] == "/dashboard/?bot=hello"
    cookie = signed_in.headers["set-cookie"]
    assert cookie.startswith("botkit_session=") and "httponly" in cookie.lower()
    assert "samesite=lax" in cookie.lower() and "s3cret" not in cookie

    page = await locked.get("/dashboard/")
    assert page.status_code == 200 and "Log out" in page.text
    assert (await locked.get("/api/surveys/none")).status_code == 404  # in, and no such survey

    out = await locked.post("/dashboard/logout", data={"csrf": token(page)})
    assert out.status_code == 303 and out.headers["location"].endswith("/dashboard/login")
    assert (await locked.get("/dashboard/")).status_code == 303
    assert (await locked.get("/api/surveys/none")).status_code == 401


async def test_a_wrong_password_is_refused_and_says_so(locked):
    refused = await log_in(locked, password="guess")
    assert refused.status_code == 401
    assert "Wrong user name or password." in refused.text
    assert (await locked.get("/dashboard/")).status_code == 303


async def test_login_does_not_redirect_off_the_site(locked):
    for target in ("https://evil.example/", "//evil.example/", "/dashboard//evil.example"):
        signed_in = await log_in(locked, next=target)
        assert signed_in.headers["location"] == "/dashboard/"


async def test_a_post_without_the_csrf_token_is_refused(locked):
    missing = await locked.post("/dashboard/login", data={"user": "ops", "password": "s3cret!"})
    assert missing.status_code == 403 and "CSRF" in missing.text
    await locked.get("/dashboard/login")
    wrong = await locked.post(
        "/dashboard/login", data={"csrf": "forged", "user": "ops", "password": "s3cret!"}
    )
    assert wrong.status_code == 403
    await log_in(locked)
    assert (await locked.post("/dashboard/logout", data={})).status_code == 403
    page = await locked.get("/dashboard/")
    assert page.status_code == 200 and "Log out" in page.text  # still signed in


async def test_the_session_is_new_after_logging_in(locked):
    before = token(await locked.get("/dashboard/login"))
    await log_in(locked)
    after = token(await locked.get("/dashboard/"))
    assert before != after  # a token planted before logging in does not carry over


async def test_a_forged_cookie_gets_nothing(locked):
    locked.cookies.set("botkit_session", "eyJ1c2VyIjogIm9wcyJ9.forged.signature")
    assert (await locked.get("/dashboard/")).status_code == 303


async def test_guessing_is_throttled(locked):
    for _ in range(10):
        assert (await log_in(locked, password="guess")).status_code == 401
    throttled = await log_in(locked)
    assert throttled.status_code == 429
    assert "Too many failed attempts" in throttled.text


async def test_the_session_key_is_kept_in_the_database(settings):
    async with running(create_app(settings)) as app:
        first = app.state.runtime.secret_key
    async with running(create_app(settings)) as app:
        assert app.state.runtime.secret_key == first and len(first) >= 40
    chosen = dataclasses.replace(settings, secret_key="from-the-environment")
    async with running(create_app(chosen)) as app:
        assert app.state.runtime.secret_key == "from-the-environment"
    assert "from-the-environment" not in repr(chosen)


async def test_without_a_login_the_form_says_the_dashboard_is_local(client):
    page = await client.get("/dashboard/login")
    assert "answers only on this machine" in page.text
