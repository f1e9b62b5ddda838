"""The gateway client's sockets: httpcore's network backend over asyncio's own streams.

httpcore's default under asyncio (anyio's streams) yields to the event loop between
being handed a request's bytes and writing them to the socket. Here the two are one
step, and the `DEPARTING` hook of the task making the request (botkit/departures.py)
runs in that step, just before: an MT whose departure is not in its sender's log surely
never reached the gateway, whenever the process was killed. (With anyio's, a kill in
between would only leave an MT logged that never left: kept uncertain, never sent twice.)
"""

from __future__ import annotations

import asyncio
import contextlib
import select
import ssl
from collections.abc import Iterable, Iterator
from typing import Any

import httpcore

from .departures import DEPARTING

# asyncio's errors as httpcore's, the most specific first (TimeoutError is an OSError).
_CONNECT = {TimeoutError: httpcore.ConnectTimeout, OSError: httpcore.ConnectError}
_READ = {TimeoutError: httpcore.ReadTimeout, OSError: httpcore.ReadError}
_WRITE = {TimeoutError: httpcore.WriteTimeout, OSError: httpcore.WriteError}
# httpcore's names for what it asks of a stream, and asyncio's for the same.
_EXTRA = {
    "ssl_object": "ssl_object",
    "client_addr": "sockname",
    "server_addr": "peername",
    "socket": "socket",
}


@contextlib.contextmanager
def _raised_as(errors: dict[type[Exception], type[Exception]]) -> Iterator[None]:
    """Raise the errors in `errors` as httpcore's that they map to."""
    try:
        yield
    except Exception as exc:
        for kind, raised in errors.items():
            if isinstance(exc, kind):
                raise raised(str(exc) or type(exc).__name__) from exc
        raise


class Stream(httpcore.AsyncNetworkStream):
    """One TCP (or TLS) connection, as asyncio's reader and writer."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        with _raised_as(_READ):
            async with asyncio.timeout(timeout):
                return await self._reader.read(max_bytes)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        departing = DEPARTING.get()
        if departing is not None:
            # In the same step as the write: nothing runs between. Its error is raised as
            # it is (not as a WriteError, after which httpcore would wait for an answer).
            departing()
        with _raised_as(_WRITE):
            self._writer.write(buffer)  # to the socket now, as far as it takes it
            async with asyncio.timeout(timeout):
                await self._writer.drain()

    async def aclose(self) -> None:
        # Not waiting for the close: a TLS peer that never answers would hold it up.
        self._writer.close()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            with _raised_as(_CONNECT):
                async with asyncio.timeout(timeout):
                    await self._writer.start_tls(ssl_context, server_hostname=server_hostname)
        except BaseException:
            self._writer.close()
            raise
        return self

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":  # idle, yet readable: the server closed it, or spoke
            # asyncio reads on while idle: what came is in the reader's buffer already.
            unasked = bool(self._reader._buffer)  # type: ignore[attr-defined]
            sock = self._writer.get_extra_info("socket")
            return self._reader.at_eof() or unasked or _readable(sock)
        name = _EXTRA.get(info)
        return None if name is None else self._writer.get_extra_info(name)


class Backend(httpcore.AsyncNetworkBackend):
    """Opens `Stream`s: TCP only, as the gateway client needs."""

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[tuple[int, int, Any]] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        local = None if local_address is None else (local_address, 0)
        with _raised_as(_CONNECT):
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(host, port, local_addr=local)
        for option in socket_options or ():
            writer.get_extra_info("socket").setsockopt(*option)
        return Stream(reader, writer)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def _readable(sock: Any) -> bool:
    """Whether `sock` has something to read (or is gone) right now."""
    if sock is None or sock.fileno() < 0:
        return True
    poll = select.poll()
    poll.register(sock.fileno(), select.POLLIN)
    return bool(poll.poll(0))
