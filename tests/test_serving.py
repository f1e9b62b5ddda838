"""What keeps slow and many clients from taking `botkit run` down, over a real uvicorn
server with botkit run's options: a connection that sends no whole request head in time
is closed (one whose head was whole is not, however long its answer takes); a head
over MAX_HEAD is answered 431 and its connection closed; beyond the concurrency limit
requests are answered 503; and botkit run raises its own soft limit of open files to
the hard one."""

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

from botkit.serving import MAX_HEAD, UVICORN_OPTIONS, HttpProtocol


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


PAD = b"X-Pad: " + b"p" * (64 * 1024) + b"\r\n"


def head_of(size: int) -> bytes:
    """A GET of `/` whose head (its blank line not counted) is `size` bytes of padding
    header fields."""
    start = b"GET / HTTP/1.1\r\nHost: x\r\n"
    pads, rest = divmod(size - len(start), len(PAD))
    assert rest >= len(b"X: \r\n"), "a size that leaves room for a last field"
    return start + PAD * pads + b"X: " + b"q" * (rest - len(b"X: \r\n")) + b"\r\n"


async def test_a_request_head_over_max_head_is_answered_431_and_closed():
    held, port = Held(), free_port()
    async with held.served(port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(head_of(MAX_HEAD + 16))  # and never the blank line
        answer = await reader.read()  # to the end: the server closed the connection
        writer.close()
        assert answer.startswith(b"HTTP/1.1 431 ")
        assert answer.endswith(b"\r\n\r\nRequest head too large")
        # The longest head taken is answered.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(head_of(MAX_HEAD - 64) + b"Connection: close\r\n\r\n")
        assert (await reader.read()).endswith(b"\r\n\r\nnow")
        writer.close()
        assert await get(port, "/") == (200, b"now")


async def test_header_fields_sent_without_end_are_not_buffered_without_end():
    """A client that streams header fields for ever is cut off soon after MAX_HEAD (what
    it sends meanwhile fills the sockets' buffers)."""
    held, port = Held(), free_port()
    async with held.served(port):
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n")
        with pytest.raises(ConnectionError):
            for _ in range(64 * MAX_HEAD // len(PAD)):
                writer.write(PAD)
                await writer.drain()
        writer.close()


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
