"""The gateway client against the simulator, and against real sockets for network faults."""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import logging
import socket
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone

import httpx
import pytest

from botkit.errors import (
    AuthenticationError,
    GatewayError,
    MissingParameterError,
    QueueError,
    TransientError,
    ValidationError,
)
from botkit.gateway import AUTH_TEXT, QUEUE_TEXT, Gateway, check_response, map_network_error
from botkit.simulator import Simulator

# Space, reserved and non-ASCII characters: the raw and every encoded form differ.
PASSWORD = "s3cr3t p@ss/wörd+&="
PASSWORD_FORMS = {
    PASSWORD,
    urllib.parse.quote(PASSWORD, safe=""),
    urllib.parse.quote_plus(PASSWORD),
    str(httpx.QueryParams({"p": PASSWORD})).removeprefix("p="),
}
HANDSET = "+61400000001"
SIM_URL = "http://gateway.test/message"
LEAVES = (AuthenticationError, MissingParameterError, QueueError, TransientError)

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    # An account with a second number and a mask, for the requests that name them.
    simulator = Simulator(
        password=PASSWORD, dlr_delay=0, numbers=("4433", "+61400999000"), masks=("ACME",)
    )
    yield simulator
    await simulator.aclose()


@pytest.fixture
async def sim_http(sim: Simulator) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=sim.app)) as http:
        yield http


def make_gateway(http: httpx.AsyncClient, *, version: int = 2, **kwargs: object) -> Gateway:
    options = {"application": "botkit", "password": PASSWORD, **kwargs}
    return Gateway(url=SIM_URL, version=version, http=http, **options)


@pytest.fixture
def gateway(sim_http: httpx.AsyncClient) -> Gateway:
    return make_gateway(sim_http)


# -- the spec's error table, row by row, v1 and v2 ------------------------------------------

GOOD = {"application": "botkit", "password": PASSWORD, "content": "hi", "destination": HANDSET}
TABLE = [
    # (row, changes to a good request, v1 status, v2 status, body, the one class it maps to)
    ("auth: wrong password", {"password": "nope"}, 500, 401, AUTH_TEXT, AuthenticationError),
    ("auth: no password", {"password": None}, 500, 401, AUTH_TEXT, AuthenticationError),
    ("auth: wrong application", {"application": "x"}, 500, 401, AUTH_TEXT, AuthenticationError),
    ("auth: no application", {"application": None}, 500, 401, AUTH_TEXT, AuthenticationError),
    (
        "missing content",
        {"content": None},
        500,
        400,
        "ERROR Missing content parameter",
        MissingParameterError,
    ),
    (
        "missing destination",
        {"destination": None},
        500,
        400,
        "ERROR Missing destination parameter",
        MissingParameterError,
    ),
    (
        "missing class (mask without it)",
        {"mask": "ACME"},
        500,
        400,
        "ERROR Missing class parameter",
        MissingParameterError,
    ),
    ("queue: bad destination", {"destination": "0400000000"}, 500, 400, QUEUE_TEXT, QueueError),
    (
        "queue: class and source",
        {"class": "mt_message", "source": "+61400999000"},
        500,
        400,
        QUEUE_TEXT,
        QueueError,
    ),
    ("message id", {}, 200, 200, None, None),
]


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize(("row", "changes", "v1", "v2", "body", "error"), TABLE, ids=lambda v: v)
async def test_error_table_row_maps_to_exactly_one_class(
    sim_http: httpx.AsyncClient,
    version: int,
    row: str,
    changes: dict[str, str | None],
    v1: int,
    v2: int,
    body: str | None,
    error: type[GatewayError] | None,
) -> None:
    params = {**GOOD, **changes, "version": str(version)}
    answer = await sim_http.get(SIM_URL, params={k: v for k, v in params.items() if v is not None})
    assert answer.status_code == (v1 if version == 1 else v2)
    assert answer.headers["content-type"].startswith("text/plain")
    if error is None:
        assert check_response(answer.status_code, answer.text) == int(answer.text)
        return
    assert answer.text == body
    with pytest.raises(GatewayError) as caught:
        check_response(answer.status_code, answer.text)
    assert [leaf for leaf in LEAVES if isinstance(caught.value, leaf)] == [error]
    assert caught.value.status_code == answer.status_code
    if error is MissingParameterError:
        assert caught.value.name == body.split()[2]


@pytest.mark.parametrize(("version", "status"), [(1, 500), (2, 401)])
async def test_send_with_wrong_password_raises_authentication_error(
    sim_http: httpx.AsyncClient, version: int, status: int
) -> None:
    gateway = make_gateway(sim_http, version=version, password="wrong")
    with pytest.raises(AuthenticationError) as caught:
        await gateway.send(HANDSET, "hi")
    assert caught.value.status_code == status


@pytest.mark.parametrize(("version", "status"), [(1, 500), (2, 400)])
async def test_send_to_unroutable_number_raises_queue_error(
    sim: Simulator, sim_http: httpx.AsyncClient, version: int, status: int
) -> None:
    sim.set_unroutable("+61400000099")
    with pytest.raises(QueueError) as caught:
        await make_gateway(sim_http, version=version).send("+61400000099", "hi")
    assert caught.value.status_code == status
    assert caught.value.permanent


@pytest.mark.parametrize("version", [1, 2])
async def test_send_returns_the_simulators_64_bit_id(
    sim: Simulator, sim_http: httpx.AsyncClient, version: int
) -> None:
    message_id = await make_gateway(sim_http, version=version).send(HANDSET, "hi")
    assert message_id == sim.sent[-1].id
    assert message_id > 2**32


@pytest.mark.parametrize(
    ("status", "body", "error", "may_have_been_accepted"),
    [
        (502, "<html>Bad Gateway</html>", TransientError, True),
        (504, "Gateway Timeout", TransientError, True),
        (500, "Internal Server Error", TransientError, True),
        (503, "Service Unavailable", TransientError, False),
        (429, "Too Many Requests", TransientError, False),
        (200, "not a number", TransientError, True),
        (200, "", TransientError, True),
        (200, str(2**63), TransientError, True),
        (200, "1_000", TransientError, True),
        (401, "Unauthorized", AuthenticationError, None),
        (404, "Not Found", GatewayError, None),
        (403, "Forbidden", GatewayError, None),
        (301, "Moved", GatewayError, None),
    ],
)
def test_statuses_outside_the_table(
    status: int,
    body: str,
    error: type[GatewayError],
    may_have_been_accepted: bool | None,
) -> None:
    with pytest.raises(GatewayError) as caught:
        check_response(status, body)
    assert type(caught.value) is error
    if may_have_been_accepted is not None:
        assert caught.value.may_have_been_accepted is may_have_been_accepted
    assert caught.value.permanent is (error is not TransientError)


# -- validation before sending ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "kwargs", "field"),
    [
        (("0400000000", "hi"), {}, "destination"),
        (("", "hi"), {}, "destination"),
        ((HANDSET, ""), {}, "content"),
        ((HANDSET, "hi"), {"message_class": "mt_message", "source": "+61400999000"}, "source"),
        ((HANDSET, "hi"), {"mask": "ACME"}, "mask"),
        ((HANDSET, "hi"), {"source": "+61400999000", "mask": "ACME"}, "mask"),
        ((HANDSET, "hi"), {"reference": "r" * 51}, "reference"),
        ((HANDSET, "👋" * 5_500), {}, "content"),  # 66,000 characters of query: httpx refuses
        ((HANDSET, "hi"), {"reference": ""}, "reference"),
        ((HANDSET, "hi"), {"message_class": ""}, "message_class"),
        ((HANDSET, "hi"), {"expires": "2030-01-01T10:00:00"}, "expires"),
        ((HANDSET, "hi"), {"expires": "2030-01-01"}, "expires"),
        ((HANDSET, "hi"), {"expires": "2030-13-01T10:00:00Z"}, "expires"),
        ((HANDSET, "hi"), {"expires": "tomorrow"}, "expires"),
        ((HANDSET, "hi"), {"expires": datetime(2030, 1, 1, 10)}, "expires"),
    ],
)
async def test_send_validates_before_sending(
    sim: Simulator, gateway: Gateway, args: tuple[str, str], kwargs: dict, field: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        await gateway.send(*args, **kwargs)
    assert caught.value.field == field
    assert sim.sent == []


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"application": "", "password": PASSWORD}, "application"),
        ({"application": "botkit", "password": ""}, "password"),
        ({"application": "botkit", "password": PASSWORD, "version": 3}, "version"),
        ({"application": "botkit", "password": PASSWORD, "url": "ftp://x/message"}, "url"),
    ],
)
def test_construction_validates(kwargs: dict, field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Gateway(**kwargs)
    assert caught.value.field == field
    assert PASSWORD not in str(caught.value)


async def test_send_passes_every_parameter(sim: Simulator, gateway: Gateway) -> None:
    await gateway.send(
        "+61 400 000 001",
        "Hello & welcome",
        message_class="mt_message",
        mask="ACME",
        reference="t1.m1",
        expires="2030-01-01T10:00:00+10:00",
    )
    message = sim.sent[-1]
    assert (message.destination, message.content) == (HANDSET, "Hello & welcome")
    assert (message.message_class, message.mask, message.sender) == ("mt_message", "ACME", "ACME")
    assert (message.reference, message.expires) == ("t1.m1", "2030-01-01T10:00:00+10:00")


async def test_source_instead_of_class(sim: Simulator, gateway: Gateway) -> None:
    await gateway.send(HANDSET, "hi", source="+61400999000")
    assert (sim.sent[-1].source, sim.sent[-1].message_class) == ("+61400999000", None)


@pytest.mark.parametrize(
    ("expires", "sent"),
    [
        (datetime(2030, 1, 1, 10, tzinfo=UTC), "2030-01-01T10:00:00+00:00"),
        (
            datetime(2030, 1, 1, 10, tzinfo=timezone(timedelta(hours=12))),
            "2030-01-01T10:00:00+12:00",
        ),
        ("2030-01-01T10:00:00Z", "2030-01-01T10:00:00Z"),
        ("2030-01-01T10:00:00.5-05:30", "2030-01-01T10:00:00.5-05:30"),
    ],
)
async def test_expires_is_sent_as_rfc3339(
    sim: Simulator, gateway: Gateway, expires: str | datetime, sent: str
) -> None:
    await gateway.send(HANDSET, "hi", expires=expires)
    assert sim.sent[-1].expires == sent


async def test_aclose_closes_only_a_client_it_created(sim_http: httpx.AsyncClient) -> None:
    async with make_gateway(sim_http):
        pass
    assert not sim_http.is_closed
    own = Gateway(application="botkit", password=PASSWORD)
    async with own:
        pass
    with pytest.raises(RuntimeError, match="client has been closed"):
        await own.send(HANDSET, "too late")


# -- ids -----------------------------------------------------------------------------------


@pytest.mark.parametrize("message_id", [2**31, 2**32 + 1, 2**63 - 1, -1, -(2**31) - 1, -(2**63), 0])
async def test_64_bit_signed_ids_parse(message_id: int) -> None:
    async with answering(200, f"{message_id}\n") as url, gateway_at(url) as gateway:
        assert await gateway.send(HANDSET, "hi") == message_id


# -- network faults, on real sockets ---------------------------------------------------------


@contextlib.asynccontextmanager
async def tcp_server(handler: Handler) -> AsyncIterator[str]:
    """A loopback server running `handler` per connection; yields the gateway URL on it."""
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield f"http://127.0.0.1:{port}/message"


async def read_request(reader: asyncio.StreamReader) -> bytes:
    return await reader.readuntil(b"\r\n\r\n")


@contextlib.asynccontextmanager
async def answering(status: int, body: str) -> AsyncIterator[str]:
    """A server (a proxy, say) that reads the request and answers `status` with `body`."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        data = body.encode()
        head = f"HTTP/1.1 {status} X\r\nContent-Length: {len(data)}\r\nConnection: close\r\n\r\n"
        writer.write(head.encode() + data)
        await writer.drain()
        writer.close()

    async with tcp_server(handler) as url:
        yield url


@contextlib.asynccontextmanager
async def silent() -> AsyncIterator[tuple[str, asyncio.Event]]:
    """A server that reads the request and never answers; the event is set on arrival."""
    arrived, release = asyncio.Event(), asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        arrived.set()
        await release.wait()
        writer.close()

    async with tcp_server(handler) as url:
        try:
            yield url, arrived
        finally:
            release.set()


@contextlib.asynccontextmanager
async def gateway_at(url: str, timeout: httpx.Timeout | None = None) -> AsyncIterator[Gateway]:
    options = {} if timeout is None else {"timeout": timeout}
    async with Gateway(url=url, application="botkit", password=PASSWORD, **options) as gateway:
        yield gateway


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/message"


async def test_connection_refused_was_surely_not_accepted() -> None:
    async with gateway_at(closed_port_url()) as gateway:
        with pytest.raises(TransientError) as caught:
            await gateway.send(HANDSET, "hi")
    assert caught.value.may_have_been_accepted is False


async def test_read_timeout_after_sending_may_have_been_accepted() -> None:
    async with silent() as (url, _), gateway_at(url, httpx.Timeout(5.0, read=0.05)) as gateway:
        with pytest.raises(TransientError) as caught:
            await gateway.send(HANDSET, "hi")
    assert caught.value.may_have_been_accepted is True
    assert "ReadTimeout" in caught.value.text


async def test_connection_closed_without_answer_may_have_been_accepted() -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.close()

    async with tcp_server(hang_up) as url, gateway_at(url) as gateway:
        with pytest.raises(TransientError) as caught:
            await gateway.send(HANDSET, "hi")
    assert caught.value.may_have_been_accepted is True


@pytest.mark.parametrize("status", [502, 504])
async def test_proxy_error_may_have_been_accepted(status: int) -> None:
    async with answering(status, "<html>upstream lost</html>") as url, gateway_at(url) as gateway:
        with pytest.raises(TransientError) as caught:
            await gateway.send(HANDSET, "hi")
    assert caught.value.may_have_been_accepted is True
    assert caught.value.status_code == status


async def test_pool_timeout_was_surely_not_accepted() -> None:
    timeout = httpx.Timeout(5.0, pool=0.05)
    limits = httpx.Limits(max_connections=1)
    async with silent() as (url, arrived), httpx.AsyncClient(limits=limits) as http:
        options = {"application": "botkit", "password": PASSWORD, "timeout": timeout}
        gateway = Gateway(url=url, http=http, **options)
        first = asyncio.create_task(gateway.send(HANDSET, "holds the only connection"))
        await arrived.wait()
        with pytest.raises(TransientError) as caught:
            await gateway.send(HANDSET, "waits for a connection")
        first.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await first
    assert caught.value.may_have_been_accepted is False


@pytest.mark.parametrize(
    ("error", "may_have_been_accepted"),
    [
        (httpx.ConnectError, False),
        (httpx.ConnectTimeout, False),
        (httpx.PoolTimeout, False),
        (httpx.ReadTimeout, True),
        (httpx.WriteTimeout, True),
        (httpx.ReadError, True),
        (httpx.WriteError, True),
        (httpx.RemoteProtocolError, True),
        (httpx.LocalProtocolError, True),
        (httpx.ProxyError, True),
        (httpx.CloseError, True),
    ],
)
def test_network_errors_map_in_one_place(
    error: type[httpx.RequestError], may_have_been_accepted: bool
) -> None:
    mapped = map_network_error(error("boom"), "https://gateway.example/message")
    assert mapped.may_have_been_accepted is may_have_been_accepted
    assert error.__name__ in mapped.text


# -- the password stays secret ---------------------------------------------------------------


def chain(exc: BaseException | None) -> Iterator[BaseException]:
    seen: set[int] = set()
    stack = [exc]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        stack += [current.__cause__, current.__context__]


def assert_secret(text: str) -> None:
    for form in PASSWORD_FORMS:
        assert form not in text


@contextlib.asynccontextmanager
async def echoing_proxy() -> AsyncIterator[str]:
    """A proxy whose 502 page quotes the request line, password and all."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request_line = (await read_request(reader)).split(b"\r\n")[0]
        body = b"Bad gateway for " + request_line
        head = f"HTTP/1.1 502 Bad Gateway\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        writer.write(head + body)
        await writer.drain()
        writer.close()

    async with tcp_server(handler) as url:
        yield url


async def fault_scenarios(sim_http: httpx.AsyncClient) -> list[BaseException | None]:
    outcomes: list[BaseException | None] = []

    async def attempt(gateway: Gateway) -> None:
        try:
            await gateway.send(HANDSET, "the content", reference="t1.m1")
        except GatewayError as exc:
            outcomes.append(exc)
        else:
            outcomes.append(None)

    await attempt(make_gateway(sim_http))
    await attempt(make_gateway(sim_http, application="wrong"))
    async with gateway_at(closed_port_url()) as gateway:
        await attempt(gateway)
    async with silent() as (url, _), gateway_at(url, httpx.Timeout(5.0, read=0.05)) as gateway:
        await attempt(gateway)
    async with echoing_proxy() as url, gateway_at(url) as gateway:
        await attempt(gateway)
    return outcomes


async def test_password_never_leaks(
    sim_http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    outcomes = await fault_scenarios(sim_http)
    errors = [outcome for outcome in outcomes if outcome is not None]
    assert len(errors) == 4
    for error in errors:
        for exc in chain(error):
            assert_secret(str(exc))
            assert_secret(repr(exc))
            assert_secret(repr(vars(exc)))
    assert "[redacted]" in errors[-1].text  # the echoing proxy quoted it
    assert_secret(repr(make_gateway(sim_http)))
    httpx_lines = [r for r in caplog.records if r.name == "httpx"]
    assert httpx_lines and all("[redacted]" in r.getMessage() for r in httpx_lines)
    assert any(r.name.startswith("httpcore") for r in caplog.records)
    for record in caplog.records:
        assert_secret(record.getMessage())
        assert_secret(f"{record.msg!r} {record.args!r} {record.exc_text!r}")


async def test_one_log_line_per_request_without_content(
    sim_http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="botkit.gateway")
    gateway = make_gateway(sim_http)
    await gateway.send(HANDSET, "the content", reference="t1.m1")
    with pytest.raises(AuthenticationError):
        await make_gateway(sim_http, password="wrong").send(HANDSET, "the content")
    async with echoing_proxy() as url, gateway_at(url) as proxied:
        with pytest.raises(TransientError):
            await proxied.send(HANDSET, "the content")
    lines = [r for r in caplog.records if r.name == "botkit.gateway"]
    assert len(lines) == 3
    assert HANDSET in lines[0].getMessage() and "t1.m1" in lines[0].getMessage()
    assert "AuthenticationError (HTTP 401)" in lines[1].getMessage()
    assert "TransientError (HTTP 502)" in lines[2].getMessage()
    # An accepted MT's line is DEBUG: the sender logs it (mt.accepted) at INFO.
    assert [r.levelno for r in lines] == [logging.DEBUG, logging.WARNING, logging.WARNING]
    assert all("the content" not in r.getMessage() for r in lines)


def echoes(password: str) -> list[str]:
    """How a proxy's or a WAF's error page may quote the password it saw in the URL."""
    encoded = urllib.parse.quote_plus(password)
    return [
        html.escape(password),  # an HTML page quoting the raw URL
        encoded.lower(),  # %2b for %2B
        html.escape(urllib.parse.quote(password, safe="")),
        password.encode().decode("latin-1"),  # UTF-8 shown as Latin-1
        password.upper(),
        json.dumps(password)[1:-1],  # a JSON error body, ASCII-only
        json.dumps(password, ensure_ascii=False)[1:-1].replace("/", "\\/"),  # PHP's
        json.dumps(password, ensure_ascii=False)[1:-1].replace("&", "\\u0026"),  # Go's
    ]


@pytest.mark.parametrize("status", [200, 400, 502])
async def test_a_password_echoed_in_any_spelling_is_redacted(status: int) -> None:
    body = " | ".join(f"saw {form}" for form in echoes(PASSWORD))
    async with answering(status, body) as url, gateway_at(url) as gateway:
        with pytest.raises(GatewayError) as caught:
            await gateway.send(HANDSET, "hi")
    text = f"{caught.value.text} {caught.value}"
    assert "[redacted]" in text
    for form in [*PASSWORD_FORMS, *echoes(PASSWORD)]:
        assert form.lower() not in text.lower()


def test_a_gateway_url_with_a_password_in_it_is_shown_without() -> None:
    gateway = Gateway(
        url="https://acme:Userinfo-Pw@gw.example/message", application="a", password="p"
    )
    assert "Userinfo-Pw" not in repr(gateway) and "acme:***@gw.example" in repr(gateway)
