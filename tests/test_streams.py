"""The gateway client's sockets (botkit/streams.py), on real sockets: plain and TLS
requests, keep-alive, a server that hangs up, httpcore's errors, and the departure hook
that runs before a request's first byte leaves, and never after."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpcore
import pytest
from conftest import eventually

from botkit.departures import DEPARTING
from botkit.streams import Backend

ANSWER = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nOK"


class Server:
    """A loopback server answering each request with ANSWER (or never, when `silent`);
    it records the bytes it received, and connections opened."""

    def __init__(self, silent: bool = False, hang_up: bool = False) -> None:
        self.writers: set[asyncio.StreamWriter] = set()
        self.received = bytearray()
        self.opened = 0
        self.silent = silent
        self.hang_up = hang_up
        self.port = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.opened += 1
        self.writers.add(writer)
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                self.received += head
                if not self.silent:
                    writer.write(ANSWER)
                    await writer.drain()
                if self.hang_up:
                    break
        except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    @contextlib.asynccontextmanager
    async def serving(self, tls: ssl.SSLContext | None = None) -> AsyncIterator[Server]:
        server = await asyncio.start_server(self.handle, "127.0.0.1", 0, ssl=tls)
        self.port = server.sockets[0].getsockname()[1]
        async with server:
            try:
                yield self
            finally:
                for writer in self.writers:
                    writer.close()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    """A self-signed certificate for localhost, made by openssl: (cert, key)."""
    openssl = shutil.which("openssl")
    assert openssl, "openssl is needed for the TLS tests (apt install openssl)"
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def connection(port: int, scheme: bytes = b"http", **options) -> httpcore.AsyncHTTPConnection:
    origin = httpcore.Origin(scheme, b"localhost" if scheme == b"https" else b"127.0.0.1", port)
    return httpcore.AsyncHTTPConnection(origin, network_backend=Backend(), **options)


async def get(conn: httpcore.AsyncHTTPConnection, timeout: float = 30.0) -> bytes:
    scheme = conn._origin.scheme.decode()
    url = f"{scheme}://{conn._origin.host.decode()}:{conn._origin.port}/message?x=1"
    timeouts = {"connect": timeout, "read": timeout, "write": timeout, "pool": timeout}
    response = await conn.request("GET", url, extensions={"timeout": timeouts})
    assert response.status == 200
    return response.content


async def test_plain_requests_share_one_kept_alive_connection():
    async with Server().serving() as server:
        conn = connection(server.port)
        assert [await get(conn), await get(conn)] == [b"OK", b"OK"]
        await conn.aclose()
    assert server.opened == 1
    assert server.received.count(b"GET /message?x=1 HTTP/1.1\r\n") == 2


async def test_tls_requests_verify_the_server_and_keep_the_connection(certificate):
    cert, key = certificate
    served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    served.load_cert_chain(cert, key)
    async with Server().serving(served) as server:
        trusting = ssl.create_default_context(cafile=str(cert))
        conn = connection(server.port, b"https", ssl_context=trusting)
        assert [await get(conn), await get(conn)] == [b"OK", b"OK"]
        await conn.aclose()
        assert server.opened == 1
        # A client that does not trust the certificate does not send.
        doubting = connection(server.port, b"https", ssl_context=ssl.create_default_context())
        with pytest.raises(httpcore.ConnectError):
            await get(doubting)
    assert server.received.count(b"GET /message?x=1") == 2


async def test_a_connection_the_server_closed_is_not_used_again():
    async with Server(hang_up=True).serving() as server:
        conn = connection(server.port)
        assert await get(conn) == b"OK"
        await eventually(lambda: conn.has_expired())  # idle, and readable: closed
        await conn.aclose()
        conn = connection(server.port)
        assert await get(conn) == b"OK"
        await conn.aclose()
    assert server.opened == 2


async def test_errors_are_httpcores():
    async with Server().serving() as server:
        port = server.port
    with pytest.raises(httpcore.ConnectError):  # nobody listens there now
        await get(connection(port))
    async with Server(silent=True).serving() as server:
        conn = connection(server.port)
        with pytest.raises(httpcore.ReadTimeout):
            await get(conn, timeout=0.2)
        await conn.aclose()


def departing(record: Callable[[], None]) -> contextlib.AbstractContextManager[None]:
    @contextlib.contextmanager
    def setting():
        token = DEPARTING.set(record)
        try:
            yield
        finally:
            DEPARTING.reset(token)

    return setting()


async def test_the_departure_hook_runs_before_the_first_byte_leaves():
    async with Server().serving() as server:
        seen_then: list[int] = []
        conn = connection(server.port)
        with departing(lambda: seen_then.append(len(server.received))):
            assert await get(conn) == b"OK"
        # Once for the request's one write, when the server had received nothing yet.
        assert seen_then == [0]
        assert await get(conn) == b"OK"  # no hook set: nothing recorded
        assert seen_then == [0]
        await conn.aclose()


async def test_a_request_whose_hook_fails_never_leaves():
    def full_disk() -> None:
        raise OSError(28, "No space left on device")

    async with Server().serving() as server:
        conn = connection(server.port)
        with departing(full_disk), pytest.raises(OSError, match="No space"):
            await get(conn)
        await conn.aclose()
        await eventually(lambda: server.opened == 1)
    assert server.received == b""
