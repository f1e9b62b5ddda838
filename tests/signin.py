"""Signing in to the dashboard in tests: an app (or `botkit run`) with a login, a client
from another machine (the `locked` fixture), and the login form filled in."""

from __future__ import annotations

import dataclasses
import re
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from servers import free_port, start, wait_for

from botkit import create_app
from botkit.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
OUTSIDE = ("203.0.113.9", 1234)


def with_login(settings: Settings) -> Settings:
    """The example bots, and a dashboard login."""
    return dataclasses.replace(
        settings,
        bots=str(ROOT / "bots"),
        templates=str(ROOT / "templates"),
        dashboard_user="ops",
        dashboard_password="s3cret!",
    )


def run_with_login(processes: list[subprocess.Popen], db: Path) -> tuple[subprocess.Popen, str]:
    """`botkit run` with the dashboard login, on `db`, started: it and its base URL."""
    env = {"BOTKIT_DASHBOARD_USER": "ops", "BOTKIT_DASHBOARD_PASSWORD": "s3cret!"}
    port = free_port()
    app = start(processes, ["run", "--port", str(port), "--db", str(db)], env=env)
    base = f"http://127.0.0.1:{port}"
    wait_for(f"{base}/healthz", app)
    return app, base


@pytest.fixture
async def locked(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A client from another machine, to an app with a dashboard login."""
    app = create_app(with_login(settings))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=OUTSIDE)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
            yield client


def token(page: httpx.Response) -> str:
    """The CSRF token of a page's forms."""
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found is not None, "no CSRF token on the page"
    return found.group(1)


async def log_in(
    client: httpx.AsyncClient, password: str = "s3cret!", **extra: str
) -> httpx.Response:
    """Fill in and send the login form."""
    form = await client.get("/dashboard/login")
    data = {"csrf": token(form), "user": "ops", "password": password, **extra}
    return await client.post("/dashboard/login", data=data)
