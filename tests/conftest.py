"""Shared fixtures: a real database (a SQLite file in a temporary folder, or a database
of a throwaway PostgreSQL), the app with its lifespan running, and the in-process
simulator as its gateway.

A module marked `pytest.mark.backends` runs each test that uses `database` (directly,
or through `settings`, `app` and `client`) once on each backend.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from browser import page  # noqa: F401  (a fixture)
from postgres import cluster, drop_database, fresh_database, postgres  # noqa: F401  (fixtures)
from servers import running_processes
from signin import locked  # noqa: F401  (a fixture)
from starlette.applications import Starlette

from botkit import Settings, create_app
from botkit.db import is_url
from botkit.db.postgres import translate
from botkit.settings import describe

ROOT = Path(__file__).resolve().parent.parent

processes = pytest.fixture(running_processes)
SETTING_VARIABLES = [variable for variable, _, _ in describe()]


@pytest.fixture(autouse=True)
def away_from_the_developers_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Each test runs with no BOTKIT_* setting in its environment and from an empty
    folder, so that a developer's shell or botkit.toml (which the harness and the
    commands read) changes nothing. Settings a test wants, it sets itself."""
    for variable in SETTING_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))


BACKENDS = ("sqlite", "postgresql")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    both = metafunc.definition.get_closest_marker("backends")
    chosen = any(  # a test may name its backends with @pytest.mark.parametrize("database")
        "database" in marker.args[0] for marker in metafunc.definition.iter_markers("parametrize")
    )
    if both and not chosen and "database" in metafunc.fixturenames:
        metafunc.parametrize("database", BACKENDS, indirect=True)


@pytest.fixture
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """Where the test's database is: a SQLite file, or the URL of a new PostgreSQL
    database (in modules marked `backends`), dropped afterwards."""
    if getattr(request, "param", "sqlite") == "sqlite":
        yield str(tmp_path / "botkit.db")
        return
    server = request.getfixturevalue("postgres")
    url = await fresh_database(server)
    yield url
    await drop_database(server, url)


@pytest.fixture
def settings(tmp_path: Path, database: str) -> Settings:
    return settings_for(tmp_path, database)


def settings_for(tmp_path: Path, database: str, bots: Path = ROOT / "bots") -> Settings:
    """A test's settings: its database, the simulator, no developer's settings, and the
    spool in its temporary folder."""
    return Settings.load(
        environ={},
        config_file=tmp_path / "none.toml",
        db=database,
        bots=str(bots),
        templates=str(ROOT / "templates"),
        send_rate=1000.0,
        callback_token="test-token",
        spool=str(tmp_path / "spool"),
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


def rows(database: str | Path, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
    """Read the database directly, as an operator with the sqlite3 shell (or psql) would."""
    if is_url(str(database)):
        with ThreadPoolExecutor(1) as thread:  # its own event loop: callers are sync
            return thread.submit(asyncio.run, _postgres_rows(str(database), sql, params)).result()
    conn = sqlite3.connect(database)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


async def _postgres_rows(url: str, sql: str, params: tuple[Any, ...]) -> list[Any]:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetch(translate(sql), *params)
    finally:
        await conn.close()
