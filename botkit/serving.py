"""How `botkit run` serves the app: uvicorn's options, its HTTP protocol, and the
process's limit of open files.

uvicorn parses requests with httptools when it is installed (botkit depends on
uvicorn[standard]): much less CPU a callback than h11. But httptools' URL parser takes
at most 64 KiB, and an MO's content rides in the query string: the longest the
callbacks take (40,000 characters, each up to 12 bytes percent-encoded) is up to 480 KB
of request line. `HttpProtocol` takes those, up to MAX_URL; and a whole request head
up to MAX_HEAD, which neither parser bounds (a head of endless header fields would be
buffered until the process runs out of memory).

uvicorn's keep-alive timeout runs only between requests: a connection that never
finishes its request head (a slow client, or a slow-loris attack) would be held for
ever, a file descriptor each. `HttpProtocol` closes one after HEADER_TIMEOUT. The
reverse proxy in front is what stops slow clients (docs/deploying.md); this is the
backstop for a server reached without one.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from typing import Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

log = logging.getLogger("botkit")

# The longest request line taken (as h11's limit on a request head was): what is
# longer is no callback of ours, and is answered 400.
MAX_URL = 1024 * 1024
# The longest request head taken (request line and header fields): what is longer is
# answered 431 and its connection closed, unread. The longest request line, and room
# for far more header fields than any client of ours sends (nginx's default is 8 KiB).
MAX_HEAD = MAX_URL + 64 * 1024
# The longest URL httptools' own parser splits (its offsets are 16-bit).
PARSED_URL = 0xFFFF
# Seconds a connection has to send a whole request head, from when it opens or its
# request begins: the longest callback's 480 KB at 48 KB/s. (nginx, in front, sends
# each head at once.)
HEADER_TIMEOUT = 10.0
# Connections (or requests under way) beyond which a request is answered 503, unread:
# a flood costs no more than this many at once. Far above what the gateway's callbacks
# need (500 MO/s answered in tens of ms is tens at once; a stall of 2 s, a thousand),
# plus the dashboard's live streams, which stay open; and above the 2,000 connections
# bench/load.py opens at the most. The spec says nothing of the gateway retrying a 503:
# it is for a flood, not a burst.
LIMIT_CONCURRENCY = 4096
# Seconds an idle keep-alive connection is kept between requests (uvicorn's default;
# bench/load.py reuses one only within 2 s).
KEEP_ALIVE = 5


class HttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, which also takes a URL longer than httptools'
    parser does (its query string is split off first, and put back in the request's
    scope before the app sees it), closes a connection that has not sent a whole
    request head within `header_timeout` seconds of opening or of its request's start,
    and answers 431 to a request head over MAX_HEAD bytes."""

    header_timeout = HEADER_TIMEOUT
    _head_timer: asyncio.TimerHandle | None = None
    # Bytes received of the request head being parsed; None between heads.
    _head_size: int | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """Parse `data`, then refuse a head grown over MAX_HEAD: counted a read at a time
        (a read is at most 256 KiB), so no more than one read past it is buffered."""
        super().data_received(data)
        if self._head_size is None or self.transport.is_closing():
            return
        self._head_size += len(data)  # the part before the head, if any, counts too
        if self._head_size > MAX_HEAD:
            log.debug("closed a connection whose request head is over %d bytes", MAX_HEAD)
            self._refuse_head()

    def _refuse_head(self) -> None:
        """Answer 431 and close the connection."""
        reason = b"Request head too large"
        default_headers = [b"%s: %s\r\n" % header for header in self.server_state.default_headers]
        self.transport.write(
            b"".join(
                [
                    STATUS_LINE[431],
                    *default_headers,
                    b"content-type: text/plain; charset=utf-8\r\n",
                    b"content-length: %d\r\n" % len(reason),
                    b"connection: close\r\n\r\n",
                    reason,
                ]
            )
        )
        self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_size = 0
        self._start_head_timer()

    def _start_head_timer(self) -> None:
        """Close the connection if its head is not whole in time (a timer already
        running, from its opening, is left as it is: its first byte earns no more)."""
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.header_timeout, self._head_timed_out)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            log.debug(
                "closed a connection that sent no whole request head in %ss", self.header_timeout
            )
            self.transport.close()

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        if len(self.url) > MAX_URL:  # raised in the parser's callback: answered 400
            raise ValueError(f"a request line over {MAX_URL} bytes")

    def on_headers_complete(self) -> None:
        self._head_size = None
        self._stop_head_timer()
        if len(self.url) <= PARSED_URL:
            super().on_headers_complete()
            return
        self.url, _, query = self.url.partition(b"?")
        super().on_headers_complete()
        # Without a fragment, as httptools gives it; the request's task has not run yet.
        self.scope["query_string"] = query.partition(b"#")[0]


UVICORN_OPTIONS: dict[str, Any] = {
    "http": HttpProtocol,
    "access_log": False,  # botkit logs each MO, MT and DLR itself
    "log_config": None,
    # The client address a proxy forwards is the one BOTKIT_CALLBACK_ALLOW checks.
    "proxy_headers": True,
    "limit_concurrency": LIMIT_CONCURRENCY,
    "timeout_keep_alive": KEEP_ALIVE,
}


def raise_open_files() -> None:
    """Raise this process's soft limit of open files to its hard limit, and log it:
    each connection is an open file, and the soft limit is often 1,024 (systemd's
    default) where the hard one is far higher."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as exc:  # a hard limit the system takes as no soft one
            log.warning("open files: up to %d, not raised to %d: %s", soft, hard, exc)
            return
    raised = f" (raised from {soft})" if soft != hard else ""
    fields = {"event": "run.open_files", "open_files": hard, "raised_from": soft}
    log.info("open files: up to %d%s", hard, raised, extra=fields)
