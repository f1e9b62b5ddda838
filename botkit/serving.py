"""How `botkit run` serves the app: uvicorn's options, and its HTTP protocol.

uvicorn parses requests with httptools when it is installed (botkit depends on
uvicorn[standard]): much less CPU a callback than h11. But httptools' URL parser takes
at most 64 KiB, and an MO's content rides in the query string: the longest the
callbacks take (40,000 characters, each up to 12 bytes percent-encoded) is up to 480 KB
of request line. `HttpProtocol` takes those, up to MAX_URL.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

# The longest request line taken (as h11's limit on a request head was): what is
# longer is no callback of ours, and is answered 400.
MAX_URL = 1024 * 1024
# The longest URL httptools' own parser splits (its offsets are 16-bit).
PARSED_URL = 0xFFFF


class HttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, which also takes a URL longer than httptools'
    parser does: its query string is split off first, and put back in the request's
    scope before the app sees it."""

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        if len(self.url) > MAX_URL:  # raised in the parser's callback: answered 400
            raise ValueError(f"a request line over {MAX_URL} bytes")

    def on_headers_complete(self) -> None:
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
}
