"""Shared fixtures: a real SQLite file in a temporary folder, the app with its lifespan
running, and the in-process simulator as its gateway."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from browser import page  # noqa: F401  (a fixture)
from postgres import postgres  # noqa: F401  (a fixture)
from servers import running_processes
from starlette.applications import Starlette

from botkit import Settings, create_app

ROOT = Path(__file__).resolve().parent.parent

processes = pytest.fixture(running_processes)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.load(
        environ={},
        config_file=tmp_path / "none.toml",
        db=str(tmp_path / "botkit.db"),
        bots=str(ROOT / "bots"),
        templates=str(ROOT / "templates"),
        send_rate=1000.0,
        callback_token="test-token",
    )


@contextlib.asynccontextmanager
async def running(app: Starlette) -> AsyncIterator[Starlette]:
    """Run the app's lifespan around a block, as a server would."""
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[Starlette]:
    async with running(create_app(settings)) as app:
        yield app


def client_to(app: Starlette) -> httpx.AsyncClient:
    """An HTTP client that talks to `app` in-process."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


@pytest.fixture
def client_for() -> Callable[[Starlette], httpx.AsyncClient]:
    return client_to


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with client_to(app) as client:
        yield client


async def eventually(
    check: Callable[[], Awaitable[Any] | Any], timeout: float = 10.0, interval: float = 0.02
) -> Any:
    """Poll `check` until it returns something truthy; fail with its last value."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last value {value!r})")
        await asyncio.sleep(interval)


def rows(db_path: str | Path, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
    """Read the database file directly, as an operator with the sqlite3 shell would."""
    conn = sqlite3.connect(db_path)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()
