"""Signing in to the dashboard: a form, a session cookie, CSRF on every form,
logging out, and a throttle on guessing."""

from __future__ import annotations

import dataclasses

import httpx
from conftest import eventually, running
from signin import OUTSIDE, log_in, token, with_login

from botkit import create_app


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


async def test_a_page_that_rebinds_its_name_to_this_machine_gets_nothing(client_for, app):
    # DNS rebinding: a browser on this machine, sent by evil.example, now resolving
    # to 127.0.0.1; the request comes from loopback but names evil.example.
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 1234))
    for host, status in [
        ("evil.example:8000", 403),
        ("localhost:8000", 200),
        ("127.0.0.1:8000", 200),
        ("[::1]:8000", 200),
    ]:
        async with httpx.AsyncClient(transport=transport, base_url=f"http://{host}") as c:
            assert (await c.get("/dashboard/")).status_code == status, host
            assert (await c.get("/api/conversations")).status_code == status, host


async def test_guessing_by_basic_auth_is_throttled_too(locked):
    for n in range(10):
        guess = await locked.get("/api/conversations", auth=("ops", f"guess{n}"))
        assert guess.status_code == 401
    right = await locked.get("/api/conversations", auth=("ops", "s3cret!"))
    assert right.status_code == 429 and "Too many failed attempts" in right.json()["error"]
    assert (await log_in(locked)).status_code == 429  # the form counts the same failures


async def test_an_operator_by_basic_auth_is_named_on_what_they_do(settings):
    async with running(create_app(with_login(settings))) as app:
        simulator = app.state.simulator
        await simulator.send_mo("+61400000001", "hello")
        threads = app.state.runtime.store.threads
        thread = await eventually(lambda: threads.latest_for("+61400000001"))
        transport = httpx.ASGITransport(app=app, client=OUTSIDE)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://t", auth=("ops", "s3cret!")
        ) as c:
            page = await c.get(f"/dashboard/threads/{thread.id}")
            assert "Reply as ops" in page.text
            await c.post(f"/dashboard/threads/{thread.id}/pause", data={"csrf": token(page)})
        paused = await threads.get(thread.id)
        assert paused.paused_by == "ops"


async def test_changing_the_password_ends_every_session(settings):
    settings = with_login(settings)
    async with running(create_app(settings)) as app:
        transport = httpx.ASGITransport(app=app, client=OUTSIDE)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            await log_in(c)
            cookie = c.cookies["botkit_session"]
    changed = dataclasses.replace(settings, dashboard_password="n3w-s3cret!")
    async with running(create_app(changed)) as app:
        transport = httpx.ASGITransport(app=app, client=OUTSIDE)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            c.cookies.set("botkit_session", cookie)
            assert (await c.get("/dashboard/")).status_code == 303  # to the form again
    async with running(create_app(settings)) as app:
        transport = httpx.ASGITransport(app=app, client=OUTSIDE)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            c.cookies.set("botkit_session", cookie)
            assert (await c.get("/dashboard/")).status_code == 200  # the same key, password


async def test_the_session_cookie_is_secure_over_https(settings):
    settings = with_login(settings)
    async with running(create_app(settings)) as app:
        transport = httpx.ASGITransport(app=app, client=OUTSIDE)
        async with httpx.AsyncClient(transport=transport, base_url="https://t") as c:
            signed_in = await log_in(c)
            assert "secure" in signed_in.headers["set-cookie"].lower()
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            signed_in = await log_in(c)
            assert "secure" not in signed_in.headers["set-cookie"].lower()
