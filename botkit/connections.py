"""The gateway client's connections: httpcore's, to one origin, without the cost httpx's
pool adds to each request (bench/client.py measures it).

httpcore's pool, for each request and again for each response closed, walks every
connection it holds (polling each idle one's socket), asks which async library runs,
and lets requests in flight together take the same connection, the losers going round
again: with 16 requests in flight, three quarters of each request's CPU. `Connections`
keeps httpcore's own HTTP/1.1 connections (the same code for I/O, TLS and keep-alive)
on a stack instead, and `own_connections` says when a Gateway may use it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
import urllib.request
from collections.abc import Iterator

import httpcore
import httpx

from .streams import Backend

# httpx's own defaults, 100 connections at once, each kept idle for 5 s at most; but all
# of them kept idle, not 20. The sender's MTs leave in bursts (a claim's worth at once, up
# to 32): keeping only 20 closed the rest after each burst and opened them again for the
# next, a connection (with TLS, a handshake) for one MT in three at 500 MT/s.
MAX_CONNECTIONS = 100
# Shorter than the 5 s servers commonly keep an idle connection (uvicorn's, the
# simulator's, nginx's default is longer): a server that closes a connection as a request
# goes out on it fails that request with no answer, and an MT sent so is uncertain, never
# resent. Closing first, the client never reuses one the server is about to close.
KEEPALIVE_EXPIRY = 4.0

# httpcore's errors as the httpx ones they stand for: httpx's table
# (httpx/_transports/default.py), the most specific first.
HTTPX_ERRORS: dict[type[Exception], type[httpx.TransportError]] = {
    httpcore.ConnectTimeout: httpx.ConnectTimeout,
    httpcore.ReadTimeout: httpx.ReadTimeout,
    httpcore.WriteTimeout: httpx.WriteTimeout,
    httpcore.PoolTimeout: httpx.PoolTimeout,
    httpcore.TimeoutException: httpx.TimeoutException,
    httpcore.ConnectError: httpx.ConnectError,
    httpcore.ReadError: httpx.ReadError,
    httpcore.WriteError: httpx.WriteError,
    httpcore.NetworkError: httpx.NetworkError,
    httpcore.ProxyError: httpx.ProxyError,
    httpcore.UnsupportedProtocol: httpx.UnsupportedProtocol,
    httpcore.LocalProtocolError: httpx.LocalProtocolError,
    httpcore.RemoteProtocolError: httpx.RemoteProtocolError,
    httpcore.ProtocolError: httpx.ProtocolError,
}


@contextlib.contextmanager
def httpx_errors() -> Iterator[None]:
    """Raise httpcore's errors as httpx's, as httpx's own transport does."""
    try:
        yield
    except Exception as exc:
        mapped = next((HTTPX_ERRORS[c] for c in type(exc).__mro__ if c in HTTPX_ERRORS), None)
        if mapped is None:
            raise
        raise mapped(str(exc)) from exc


class Connections:
    """httpcore's HTTP/1.1 connections to one origin, without httpx's pool's cost per request.

    httpcore's pool, for each request and again for each response closed, walks every
    connection it holds (polling each idle one's socket), asks which async library runs
    (each time a failed import of sniffio, where that is not installed), and lets
    requests in flight together take the same connection, the losers going round again.
    Here httpcore's own HTTP/1.1 connections (one request each at a time, as there) wait
    on a stack, the most recently used on top; one is checked only when taken (expired,
    or closed by the server: then closed and the next taken). At most `MAX_CONNECTIONS`
    at once, then a wait up to the pool timeout and PoolTimeout; every one kept idle, none
    longer than `KEEPALIVE_EXPIRY`.
    asyncio only, as botkit is.
    """

    def __init__(self, origin: httpcore.Origin) -> None:
        self._origin = origin
        self._ssl_context = httpx.create_ssl_context()  # as httpx's transport makes it
        self._backend = Backend()  # asyncio's streams: see botkit/streams.py
        self._slots = asyncio.Semaphore(MAX_CONNECTIONS)
        # (went idle at, connection), the oldest first.
        self._idle: collections.deque[tuple[float, httpcore.AsyncHTTPConnection]]
        self._idle = collections.deque()
        self._closed = False

    async def get(self, request: httpcore.Request) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """Send `request` on one of the connections and read its answer whole: the status,
        headers and body. Raises httpx's errors, as httpx's transport does, and once closed
        httpx's client's RuntimeError."""
        self._refuse_if_closed()
        await self._acquire(request.extensions.get("timeout", {}).get("pool"))
        try:
            self._refuse_if_closed()  # while it waited for a slot
            connection = await self._take()
            with httpx_errors():
                response = await connection.handle_async_request(request)
        except BaseException:
            self._slots.release()
            raise  # httpcore closed the connection, if it opened one
        try:
            with httpx_errors():
                body = b"".join([part async for part in response.stream])  # type: ignore[union-attr]
        finally:
            try:
                await response.aclose()  # ends the exchange (closes the connection if cut short)
            finally:
                await self._give_back(connection)
        return response.status, response.headers, body

    def _refuse_if_closed(self) -> None:
        if self._closed:
            raise RuntimeError("Cannot send a request, as the client has been closed.")

    async def _acquire(self, timeout: float | None) -> None:
        """Take a slot for one connection, waiting at most `timeout` for one."""
        if not self._slots.locked():
            await self._slots.acquire()  # returns at once
            return
        try:
            async with asyncio.timeout(timeout):
                await self._slots.acquire()
        except TimeoutError:
            raise httpx.PoolTimeout(f"all {MAX_CONNECTIONS} connections busy") from None

    async def _take(self) -> httpcore.AsyncHTTPConnection:
        """The most recently used idle connection still usable, or a new one."""
        while self._idle:
            _, connection = self._idle.pop()
            if connection.is_available() and not connection.has_expired():
                return connection
            await connection.aclose()
        return httpcore.AsyncHTTPConnection(
            self._origin,
            ssl_context=self._ssl_context,
            keepalive_expiry=KEEPALIVE_EXPIRY,
            network_backend=self._backend,
        )

    async def _give_back(self, connection: httpcore.AsyncHTTPConnection) -> None:
        """Free the slot; keep the connection if it can take another request."""
        self._slots.release()
        now = time.monotonic()
        if connection.is_available() and not self._closed:
            self._idle.append((now, connection))
        else:
            await connection.aclose()
        while self._idle and now - self._idle[0][0] > KEEPALIVE_EXPIRY:
            await self._idle.popleft()[1].aclose()

    async def aclose(self) -> None:
        self._closed = True
        while self._idle:
            await self._idle.popleft()[1].aclose()


def own_connections(url: str) -> Connections | None:
    """The connections for a Gateway of our own sending to `url`; None where httpx's
    client must send: it routes through a proxy named in the environment (HTTPS_PROXY,
    ALL_PROXY...: httpx reads them as urllib does) and sends a password in the URL as
    basic auth."""
    proxies = urllib.request.getproxies()
    parsed = httpx.URL(url)
    if any(proxies.get(scheme) for scheme in ("http", "https", "all")) or parsed.userinfo:
        return None
    core = httpcore.URL(
        scheme=parsed.raw_scheme, host=parsed.raw_host, port=parsed.port, target=b"/"
    )
    return Connections(core.origin)  # the port is the scheme's default when the URL has none
