"""Dashboard sessions kept in the database: the cookie holds only a random id, logging
out ends every copy of it, a session lasts 12 hours, and processes share them."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import hmac
from collections.abc import AsyncIterator

import httpx
import pytest
from conftest import eventually, rows, running
from servers import free_port, served
from signin import OUTSIDE, log_in, token, with_login
from starlette.applications import Starlette

from botkit import create_app
from botkit.serving import UVICORN_OPTIONS
from botkit.sessions import COOKIE, CSRF_COOKIE, SESSION_AGE
from botkit.testing import FakeClock

pytestmark = pytest.mark.backends


@contextlib.asynccontextmanager
async def browser(app: Starlette, scheme: str = "http") -> AsyncIterator[httpx.AsyncClient]:
    """A browser on another machine, with a cookie jar of its own."""
    transport = httpx.ASGITransport(app=app, client=OUTSIDE)
    async with httpx.AsyncClient(transport=transport, base_url=f"{scheme}://t") as client:
        yield client


async def stolen(app: Starlette, cookie: str) -> int:
    """The status of the dashboard for another browser that has a copy of `cookie`."""
    async with browser(app) as thief:
        thief.cookies.set(COOKIE, cookie)
        return (await thief.get("/dashboard/")).status_code


async def test_a_copied_cookie_stops_working_after_logging_out(settings):
    async with running(create_app(with_login(settings))) as app, browser(app) as c:
        await log_in(c)
        cookie = c.cookies[COOKIE]
        assert await stolen(app, cookie) == 200
        page = await c.get("/dashboard/")
        out = await c.post("/dashboard/logout", data={"csrf": token(page)})
        assert "Max-Age=0" in out.headers["set-cookie"]
        assert await stolen(app, cookie) == 303  # to the login form
        async with browser(app) as thief:
            thief.cookies.set(COOKIE, cookie)
            assert (await thief.get("/api/conversations")).status_code == 401
    assert rows(settings.db, "SELECT count(*) FROM dashboard_sessions")[0][0] == 0


async def test_the_cookie_holds_only_an_id_and_nothing_tells_the_password(settings):
    settings = with_login(settings)
    async with running(create_app(settings)) as app, browser(app) as c:
        await log_in(c)
        secret_key = app.state.runtime.secret_key
        cookie = c.cookies[COOKIE]
    assert len(cookie) == 43 and "." not in cookie  # 32 random bytes, nothing signed in
    (row,) = rows(settings.db, "SELECT * FROM dashboard_sessions")
    assert set(row.keys()) == {"id_hash", "username", "csrf", "credentials", "created_at"}
    assert row["id_hash"] == hashlib.sha256(cookie.encode()).hexdigest()
    assert cookie not in list(row) and "s3cret" not in str(list(row))
    login = b"ops\ns3cret!"
    before = hmac.new(login, b"botkit dashboard session", hashlib.sha256).hexdigest()
    without_the_key = {before, hashlib.sha256(login).hexdigest(), hashlib.sha256(b"s3cret!")}
    assert row["credentials"] not in without_the_key
    with_the_key = hashlib.scrypt(login, salt=secret_key.encode(), n=2**14, r=8, p=1, dklen=32)
    assert row["credentials"] == with_the_key.hex()


async def test_changing_the_password_ends_the_sessions_of_every_process(settings):
    settings = with_login(settings)
    changed = dataclasses.replace(settings, dashboard_password="n3w-s3cret!")
    async with (
        running(create_app(settings)) as old,
        running(create_app(changed)) as new,
        browser(old) as c,
    ):
        await log_in(c)
        assert await stolen(old, c.cookies[COOKIE]) == 200
        assert await stolen(new, c.cookies[COOKIE]) == 303


async def test_processes_on_one_database_share_the_sessions(settings):
    settings = with_login(settings)
    async with (
        running(create_app(settings)) as first,
        running(create_app(settings)) as second,
        browser(first) as c,
    ):
        await log_in(c)
        cookie = c.cookies[COOKIE]
        assert await stolen(second, cookie) == 200
        async with browser(second) as other:
            other.cookies.set(COOKIE, cookie)
            page = await other.get("/dashboard/")
            await other.post("/dashboard/logout", data={"csrf": token(page)})
        assert await stolen(first, cookie) == 303


async def test_a_session_lasts_twelve_hours_however_busy(settings):
    clock = FakeClock()
    async with running(create_app(with_login(settings), clock=clock)) as app, browser(app) as c:
        await log_in(c)
        cookie = c.cookies[COOKIE]
        clock.advance(SESSION_AGE - 60)
        assert (await c.get("/dashboard/")).status_code == 200
        clock.advance(61)
        assert (await c.get("/dashboard/")).status_code == 303
        assert COOKIE not in c.cookies  # the browser was told to forget it
        assert (await log_in(c)).status_code == 303
        assert await stolen(app, cookie) == 303
    # Signing in swept the expired session: only the new one is left.
    assert rows(settings.db, "SELECT count(*) FROM dashboard_sessions")[0][0] == 1


async def test_the_login_form_writes_nothing_and_its_token_is_its_cookies(settings):
    async with running(create_app(with_login(settings))) as app:
        async with browser(app) as c, browser(app) as other:
            for _ in range(3):
                form = await c.get("/dashboard/login")
            assert form.status_code == 200 and CSRF_COOKIE in c.cookies
            await other.get("/dashboard/login")
            data = {"csrf": token(form), "user": "ops", "password": "s3cret!"}
            assert (await other.post("/dashboard/login", data=data)).status_code == 403
            assert rows(settings.db, "SELECT count(*) FROM dashboard_sessions")[0][0] == 0
            signed_in = await c.post("/dashboard/login", data=data)
            assert signed_in.status_code == 303 and CSRF_COOKIE not in c.cookies
        for scheme, secure in [("https", True), ("http", False)]:
            async with browser(app, scheme) as c:
                cookie = (await c.get("/dashboard/login")).headers["set-cookie"]
                assert cookie.startswith(f"{CSRF_COOKIE}=") and "HttpOnly" in cookie
                assert "SameSite=Lax" in cookie and ("Secure" in cookie) == secure


async def test_logging_out_ends_a_live_update_stream_opened_with_a_copy_of_the_cookie(
    settings,
):
    port = free_port()
    app = create_app(with_login(settings))
    async with served(app, port, **UVICORN_OPTIONS):
        await app.state.simulator.send_mo("+61400000001", "HELLO")
        await eventually(lambda: rows(settings.db, "SELECT id FROM threads"))
        [(thread_id,)] = rows(settings.db, "SELECT id FROM threads")
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=base) as owner, httpx.AsyncClient() as thief:
            await log_in(owner)
            thief.cookies.set(COOKIE, owner.cookies[COOKIE])
            url = f"{base}/dashboard/threads/{thread_id}/events?since=2000-01-01"
            async with thief.stream("GET", url, timeout=30) as stream:
                assert stream.status_code == 200
                lines = stream.aiter_lines()
                assert "event: message" in [await anext(lines) for _ in range(2)]
                page = await owner.get("/dashboard/")
                await owner.post("/dashboard/logout", data={"csrf": token(page)})
                async with asyncio.timeout(30):  # ended within a look (RECHECK)
                    async for _ in lines:
                        pass
