"""The client for the Mobile Gateway HTTPS API: sends one MT message per GET request.

    gateway = Gateway(application="acme", password=os.environ["BOTKIT_PASSWORD"])
    async with gateway:
        message_id = await gateway.send("+61400000001", "Hello", message_class="mt_message")

Every answer of the gateway is turned into an id or one exception of `botkit.errors` in
`check_response`; every network failure in `map_network_error`. The password never leaves
this module: it is redacted from exception texts, from httpx's and httpcore's log records,
and from `repr()`.

The client a Gateway makes for itself is built for the CPU an MT costs (issue 15;
bench/client.py measures it). Its requests skip httpx's AsyncClient, which adds nothing
the gateway uses (auth, redirects, cookies, event hooks), and httpx's pool, which with 16
requests in flight took most of the CPU of each (3/5; 3/4 without sniffio installed).
They go to botkit/connections.py's `Connections`, httpcore's own HTTP/1.1 connections
to the gateway, as httpcore's requests made from parts built once (URL, headers,
timeouts) and the same on the wire, byte for byte; httpx's Request and Response, which
parse the URL again and wrap the answer, took 2/5 of what was left (900 -> 540 us of CPU
per MT here). A client the caller gives (`http=`), or a gateway URL that a proxy in the
environment or a password in the URL concerns, sends through httpx's client as it
always did.
"""

from __future__ import annotations

import html
import ipaddress
import json
import logging
import re
import time
import urllib.parse
import urllib.request
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any

import httpcore
import httpx

from .connections import own_connections
from .db import redact
from .errors import (
    AuthenticationError,
    GatewayError,
    MissingParameterError,
    QueueError,
    TransientError,
    ValidationError,
)
from .logs import elapsed_ms
from .numbers import international

DEFAULT_URL = "https://api.sms.optus.com.au/message"
DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)

MAX_REFERENCE = 50
# httpx refuses a longer query (InvalidURL), so the gateway client refuses the message.
MAX_QUERY = 65_536
# The most characters of query one character of content can take: 4 bytes of UTF-8,
# each escaped as %XX.
_MOST_ESCAPED = 12
ID_MIN, ID_MAX = -(2**63), 2**63 - 1

AUTH_TEXT = "ERROR Invalid authentication information"
QUEUE_TEXT = "ERROR Failed to queue message"
_MISSING = re.compile(r"ERROR Missing (\S+) parameter")
_ID = re.compile(r"-?[0-9]{1,19}")
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)
# The server says it did not take the request on (overloaded, throttled): safe to retry.
# Any other 5xx may have come after the message was queued (a crash, a proxy that lost
# the answer), so a resend could deliver it twice.
_NOT_TAKEN = frozenset({429, 503})
# Only these prove the request never reached the gateway (httpx's own line).
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# httpx logs whole request URLs (query string included); httpcore logs per module.
_HTTP_LOGGERS = (
    "httpx",
    "httpcore",
    "httpcore.connection",
    "httpcore.http11",
    "httpcore.http2",
    "httpcore.proxy",
    "httpcore.socks",
)
REDACTED = "[redacted]"

logger = logging.getLogger("botkit.gateway")


class _RedactSecrets(logging.Filter):
    """Replaces every registered secret, in each way a URL or a page may spell it, in a
    log record's message (and in any text given to `redact`)."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: set[str] = set()
        self._pattern: re.Pattern[str] | None = None

    def add(self, forms: set[str]) -> None:
        self.forms |= {form for form in forms if form}
        # Longest first, so a raw form inside an encoded one cannot leave a remainder;
        # any case, as a proxy may echo %2b for %2B.
        alternatives = sorted(self.forms, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, alternatives)), re.IGNORECASE)

    def redact(self, text: str) -> str:
        return text if self._pattern is None else self._pattern.sub(REDACTED, text)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # malformed args: the handler reports those
            return True
        redacted = self.redact(message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True


_redactor = _RedactSecrets()


def redacted(text: str) -> str:
    """`text` with every password a Gateway of this process was given replaced."""
    return _redactor.redact(text)


def _secret_forms(secret: str) -> set[str]:
    """The ways `secret` can come back in a gateway's or a proxy's answer: raw, as httpx,
    quote and quote_plus encode it, each of those HTML-escaped (an error page quoting the
    URL) or written as a JSON string (with `/` escaped, as PHP does, or `<>&`, as Go
    does), and its UTF-8 read as Latin-1."""
    httpx_form = str(httpx.QueryParams({"p": secret})).removeprefix("p=")
    quoted = {urllib.parse.quote(secret, safe=""), urllib.parse.quote_plus(secret)}
    forms = {secret, httpx_form, *quoted, secret.encode().decode("latin-1")}
    return forms | {html.escape(form) for form in forms} | _json_forms(forms)


def _json_forms(forms: set[str]) -> set[str]:
    """`forms` as JSON encoders write them inside a string: plain, ASCII-only, and with
    `/` or `<`, `>`, `&` escaped."""
    written = set()
    for form in forms:
        for ascii_only in (False, True):
            plain = json.dumps(form, ensure_ascii=ascii_only)[1:-1]
            go = plain.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
            written |= {plain, plain.replace("/", "\\/"), go}
    return written


def _protect(secret: str) -> None:
    """Redact `secret` from every httpx and httpcore log record from now on."""
    _redactor.add(_secret_forms(secret))
    for name in _HTTP_LOGGERS:
        http_logger = logging.getLogger(name)
        if _redactor not in http_logger.filters:
            http_logger.addFilter(_redactor)


def in_clear(url: str) -> bool:
    """True for a plain-http URL to another machine: the password would travel in clear.
    (Loopback stays allowed, for the simulator and tests; a URL that does not parse is
    for the caller's own check to refuse.)"""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return False
    if parsed.scheme != "http":
        return False
    if parsed.host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(parsed.host).is_loopback
    except ValueError:  # a name other than localhost: it may resolve anywhere
        return True


def parse_rfc3339(text: str) -> datetime:
    """Return the aware datetime of an RFC 3339 timestamp with an offset, or raise ValueError."""
    if not _RFC3339.fullmatch(text):
        raise ValueError(f"{text!r} is not an RFC 3339 timestamp with an offset")
    return datetime.fromisoformat(text.upper().replace("Z", "+00:00"))


def check_response(status_code: int, text: str) -> int:
    """Return the message id of a gateway answer, or raise the one error it means (v1 and v2)."""
    body = text.strip()
    if status_code == 200:
        if _ID.fullmatch(body) and ID_MIN <= int(body) <= ID_MAX:
            return int(body)
        raise TransientError(
            f"HTTP 200 without a 64-bit message id: {body[:200]!r}",
            may_have_been_accepted=True,
            status_code=status_code,
        )
    # v2 answers these with 400 (auth 401), v1 with 500: the text decides.
    if status_code in (400, 401, 500):
        if body == AUTH_TEXT:
            raise AuthenticationError(body, status_code=status_code)
        if missing := _MISSING.fullmatch(body):
            raise MissingParameterError(body, name=missing[1], status_code=status_code)
        if body == QUEUE_TEXT:
            raise QueueError(body, status_code=status_code)
    description = f"HTTP {status_code}: {body[:200]}"
    if status_code == 401:
        raise AuthenticationError(description, status_code=status_code)
    if 500 <= status_code <= 599 or status_code in _NOT_TAKEN:
        raise TransientError(
            description,
            may_have_been_accepted=status_code not in _NOT_TAKEN,
            status_code=status_code,
        )
    # Other 4xx, and statuses the gateway never sends (3xx): retrying will not help.
    raise GatewayError(description, status_code=status_code)


def map_network_error(exc: httpx.RequestError, url: str) -> TransientError:
    """Return our error for an httpx failure; only a failed connect proves nothing was sent."""
    reason = str(exc) or "no details"
    return TransientError(
        _redactor.redact(f"{type(exc).__name__} talking to {redact(url)}: {reason}"),
        may_have_been_accepted=not isinstance(exc, _NOT_SENT),
    )


# Charsets that read ASCII as ASCII: httpx's when a Content-Type names none (UTF-8), and
# what servers name most.
_ASCII_CHARSETS = frozenset({b"", b"utf-8", b"utf8", b"us-ascii", b"ascii", b"iso-8859-1"})


def _text(status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> str:
    """The answer's text, as httpx's `response.text` reads it. The gateway's answers (an
    id, an error) are ASCII, unencoded, with at most one Content-Type naming a charset
    that reads ASCII as ASCII: those are decoded here, in a step; any other answer goes
    through httpx's Response."""
    if body.isascii():
        types = []
        for name, value in headers:
            name = name.lower()
            if name == b"content-encoding":
                break
            if name == b"content-type":
                types.append(value)
        else:
            if len(types) <= 1 and _charset(types[0] if types else b"") in _ASCII_CHARSETS:
                return body.decode("ascii")
    return httpx.Response(status, headers=headers, content=body).text


def _charset(content_type: bytes) -> bytes | None:
    """The charset a plain Content-Type names, lowercased; b"" when it names none; None
    for one with parameters in RFC 2231's forms (`charset*=`), left to httpx."""
    if b"*" in content_type:
        return None
    for parameter in content_type.lower().split(b";")[1:]:
        key, _, value = parameter.partition(b"=")
        if key.strip() == b"charset":
            return value.strip().strip(b'"')
    return b""


def rfc3339(value: str | datetime) -> str:
    """Return `value` as RFC 3339 text with an offset, or raise ValidationError on `expires`."""
    if isinstance(value, datetime):
        offset = value.utcoffset()
        if offset is None:
            raise ValidationError("expires", "is a naive datetime; give it a timezone")
        if offset % timedelta(minutes=1):
            raise ValidationError("expires", "has an offset with seconds, which RFC 3339 lacks")
        return value.isoformat()
    try:
        parse_rfc3339(value)
    except ValueError as exc:
        raise ValidationError("expires", str(exc)) from None
    return value


def _optional(field: str, value: str | None) -> str | None:
    """Return `value`, refusing an empty string (the gateway would take it as absent)."""
    if value is not None and not value:
        raise ValidationError(field, "is empty; pass None to leave it out")
    return value


class Gateway:
    """An async client for the gateway's send API, sharing its connections.

    `http` lets the caller supply an httpx.AsyncClient (a transport, proxies, limits); it
    is then the caller's to close, and sends every request. Without one, the gateway
    sends through `Connections` (see above), or its own httpx client where those may not.
    `timeout` applies to every request either way.
    """

    def __init__(
        self,
        *,
        url: str = DEFAULT_URL,
        application: str,
        password: str,
        version: int = 2,
        http: httpx.AsyncClient | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
    ) -> None:
        if not application:
            raise ValidationError("application", "is empty")
        if not password:
            raise ValidationError("password", "is empty")
        if version not in (1, 2):
            raise ValidationError("version", f"is {version!r}; the gateway knows 1 and 2")
        try:
            scheme = httpx.URL(url).scheme
        except httpx.InvalidURL as exc:
            raise ValidationError("url", str(exc)) from None
        if scheme not in ("http", "https"):
            raise ValidationError("url", f"{url!r} is not an http(s) URL")
        _protect(password)
        self.url = url
        self.application = application
        self.version = version
        self.timeout = timeout
        self._password = password
        self._own = own_connections(url) if http is None else None
        self._owns_http = http is None and self._own is None
        self._http = httpx.AsyncClient(timeout=timeout) if self._owns_http else http
        if self._own is not None:
            self._prepare(url, timeout)

    def _prepare(self, url: str, timeout: httpx.Timeout) -> None:
        """Build once what every request on our own connections shares: all of
        `client.get(url, params=...)`'s request but the query (see `_build`)."""
        client = httpx.AsyncClient(transport=httpx.AsyncBaseTransport())  # never sends
        request = client.build_request("GET", url, params={}, timeout=timeout)
        self._origin = (request.url.raw_scheme, request.url.raw_host, request.url.port)
        self._path = request.url.raw_path  # the URL's query and fragment left out
        self._headers = request.headers.raw
        self._extensions = request.extensions

    def __repr__(self) -> str:
        return (
            f"Gateway(url={redact(self.url)!r}, application={self.application!r}, "
            f"version={self.version})"
        )

    async def __aenter__(self) -> Gateway:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connections or the HTTP client, but only if this gateway made them."""
        if self._own is not None:
            await self._own.aclose()
        elif self._owns_http:
            await self._http.aclose()

    @property
    def reports_departures(self) -> bool:
        """Whether its requests run the `DEPARTING` hook as they leave (botkit/departures.py):
        only through its own sockets, not through an httpx client."""
        return self._own is not None

    async def send(
        self,
        destination: str,
        content: str,
        *,
        message_class: str | None = None,
        source: str | None = None,
        mask: str | None = None,
        reference: str | None = None,
        expires: str | datetime | None = None,
        message_id: int | None = None,
    ) -> int:
        """Send one MT message and return the gateway's id for it; raises GatewayError.
        `message_id`, our id for the MT, is a field of the request's log line."""
        params = self._params(
            destination,
            content,
            message_class=message_class,
            source=source,
            mask=mask,
            reference=reference,
            expires=expires,
        )
        started = time.perf_counter()
        try:
            gateway_id = await self._request(params)
        except GatewayError as exc:
            # The gateway's body could quote the request (content included): log its status only.
            detail = exc.text if exc.status_code is None else f"HTTP {exc.status_code}"
            outcome = f"{type(exc).__name__} ({detail})"
            self._log(logging.WARNING, params, outcome, started, message_id, error=outcome)
            raise
        # DEBUG: the sender logs each MT accepted (mt.accepted) with the same fields, and a
        # line a message is what logging costs the most in at high rates.
        self._log(
            logging.DEBUG, params, f"id {gateway_id}", started, message_id, gateway_id=gateway_id
        )
        return gateway_id

    def _params(
        self,
        destination: str,
        content: str,
        *,
        message_class: str | None,
        source: str | None,
        mask: str | None,
        reference: str | None,
        expires: str | datetime | None,
    ) -> dict[str, str]:
        """Validate one message and return its query parameters, password included."""
        number = international(destination, "destination")
        if not content:
            raise ValidationError("content", "is empty")
        _optional("message_class", message_class)
        _optional("source", source)
        _optional("mask", mask)
        _optional("reference", reference)
        if message_class is not None and source is not None:
            raise ValidationError("source", "cannot be combined with message_class")
        if mask is not None and message_class is None:
            raise ValidationError("mask", "requires message_class")
        if reference is not None and len(reference) > MAX_REFERENCE:
            raise ValidationError("reference", f"is {len(reference)} characters; at most 50")
        optional = {
            "class": message_class,
            "source": source,
            "mask": mask,
            "reference": reference,
            "expires": None if expires is None else rfc3339(expires),
        }
        params = {
            "application": self.application,
            "password": self._password,
            "content": content,
            "destination": number,
            **{name: value for name, value in optional.items() if value is not None},
            "version": str(self.version),
        }
        may_be_too_long = len(content) * _MOST_ESCAPED > MAX_QUERY
        if may_be_too_long and len(urllib.parse.urlencode(params)) > MAX_QUERY:
            raise ValidationError("content", "is too long for one request to the gateway")
        return params

    async def _request(self, params: dict[str, str]) -> int:
        """Do the GET and map its outcome; ours are raised outside `except` to drop httpx's."""
        try:
            status, text = await self._get(params)
        except httpx.RequestError as exc:
            error = map_network_error(exc, self.url)
        else:
            return check_response(status, _redactor.redact(text))
        raise error

    async def _get(self, params: dict[str, str]) -> tuple[int, str]:
        """GET the URL with `params` as its query; the answer's status and text."""
        if self._own is None:
            response = await self._http.get(self.url, params=params, timeout=self.timeout)
            return response.status_code, response.text
        status, headers, body = await self._own.get(self._build(params))
        return status, _text(status, headers, body)

    def _build(self, params: dict[str, str]) -> httpcore.Request:
        """The request `client.get(url, params=params)` sends, from parts built once: the
        same URL (the parameters in place of the URL's query), headers and timeouts."""
        query = urllib.parse.urlencode(params)
        target = self._path + b"?" + query.encode("ascii") if query else self._path
        scheme, host, port = self._origin
        url = httpcore.URL(scheme=scheme, host=host, port=port, target=target)
        return httpcore.Request(b"GET", url, headers=self._headers, extensions=self._extensions)

    def _log(
        self,
        level: int,
        params: dict[str, str],
        outcome: str,
        started: float,
        message_id: int | None,
        **fields: Any,
    ) -> None:
        """One line per request, with its fields; never the password or the content."""
        elapsed = elapsed_ms(started)
        logger.log(
            level,
            "MT to %s reference=%s: %s in %.0f ms",
            params["destination"],
            params.get("reference"),
            outcome,
            elapsed,
            extra={
                "event": "gateway.send",
                "message_id": message_id,
                "handset": params["destination"],
                "reference": params.get("reference"),
                "elapsed_ms": elapsed,
                **fields,
            },
        )
