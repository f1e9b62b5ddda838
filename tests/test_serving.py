"""What keeps slow and many clients from taking `botkit run` down, over a real uvicorn
server with botkit run's options: a connection that sends no whole request head in time
is closed (one whose head was whole is not, however long its answer takes); beyond the
concurrency limit requests are answered 503; and botkit run raises its own soft limit
of open files to the hard one."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from conftest import eventually
from servers import free_port, output, served, start, wait_for
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from botkit.serving import UVICORN_OPTIONS, HttpProtocol


class Held:
    """An app whose `/hold` answers only when the test lets it, and `/` at once."""

    def __init__(self) -> None:
        self.waiting = 0
        self.released = asyncio.Event()
        self.app = Starlette(routes=[Route("/hold", self.hold), Route("/", self.now)])

    async def hold(self, request: Request) -> Response:
        self.waiting += 1
        await self.released.wait()
        return PlainTextResponse("held")

    async def now(self, request: Request) -> Response:
        return PlainTextResponse("now")

    @contextlib.asynccontextmanager
    async def served(self, port: int, **options: Any) -> AsyncIterator[None]:
        """Served as botkit run serves, with uvicorn's `options` over its; the held
        requests let go at the end (uvicorn waits for them before it stops)."""
        async with served(self.app, port, **{**UVICORN_OPTIONS, "lifespan": "off", **options}):
            try:
                yield
            finally:
                self.released.set()


async def get(port: int, path: str) -> tuple[int, bytes]:
    """GET `path` on a connection of its own; the status and the body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    answer = await reader.read()
    writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


async def test_a_connection_without_a_whole_request_head_is_closed(monkeypatch):
    monkeypatch.setattr(HttpProtocol, "header_timeout", 0.5)
    held, port = Held(), free_port()
    async with held.served(port):
        answer = asyncio.create_task(get(port, "/hold"))
        await eventually(lambda: held.waiting == 1)
        half, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
        silent, quiet = await asyncio.open_connection("127.0.0.1", port)
        await eventually(lambda: half.at_eof() and silent.at_eof())
        assert await half.read() == b"" and await silent.read() == b""  # nothing answered
        # The held request's head was whole: it outlived the timeout, and is answered.
        held.released.set()
        assert await answer == (200, b"held")
        assert await get(port, "/") == (200, b"now")
        writer.close()
        quiet.close()


async def test_beyond_the_concurrency_limit_a_request_is_answered_503():
    held, port = Held(), free_port()
    async with held.served(port, limit_concurrency=3):
        answers = [asyncio.create_task(get(port, "/hold")) for _ in range(2)]
        await eventually(lambda: held.waiting == 2)
        assert await get(port, "/") == (503, b"Service Unavailable")
        held.released.set()
        assert await asyncio.gather(*answers) == [(200, b"held")] * 2

        async def served_again() -> bool:  # once the held connections are gone
            return await get(port, "/") == (200, b"now")

        await eventually(served_again)


def open_files(pid: int) -> tuple[int, int]:
    """The soft and hard limits of open files of process `pid`."""
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return int(soft), int(hard)
    raise AssertionError(f"no open files limit for {pid}")


@pytest.mark.skipif(not Path("/proc/self/limits").exists(), reason="reads /proc (Linux)")
def test_botkit_run_raises_its_soft_limit_of_open_files(tmp_path, processes):
    port = free_port()
    args = ["run", "--port", str(port), "--db", str(tmp_path / "botkit.db")]
    app = start(processes, args, within=["prlimit", "--nofile=256:"])
    wait_for(f"http://127.0.0.1:{port}/healthz", app)
    soft, hard = open_files(app.pid)
    assert soft == hard > 256
    assert f"open files: up to {hard} (raised from 256)" in output(app)
