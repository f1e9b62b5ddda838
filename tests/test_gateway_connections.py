"""The connections of the client a Gateway makes for itself (issue 15), on real sockets.

Its requests skip httpx's client, pool, Request and Response for httpcore's connections
of its own: what the gateway receives must not change (every byte of the request), nor
how the answer reads, nor what a pool promises (connections kept and reused, one the
gateway closed never reused, at most 100 at once and then a PoolTimeout, every one kept
for the next burst, a slot given back whatever ends a request, a connection cut short
never used again), nor how its errors read. A proxy named in the
environment, or a password in the URL, leave the sending to httpx's own client.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import itertools
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import httpcore
import httpx
import pytest
from conftest import eventually
from httpx._transports.default import map_httpcore_exceptions
from hypothesis import given, settings
from hypothesis import strategies as st

from botkit.connections import httpx_errors
from botkit.errors import TransientError, ValidationError
from botkit.gateway import Gateway, _text

PASSWORD = "s3cr3t p@ss/wörd+&="
HANDSET = "+61400000001"
BUSY = httpx.Timeout(60.0, pool=0.05)  # a send waits 50 ms at most for a connection
# Sends held at the gateway wait for it this long at most: on a busy machine opening a
# hundred connections takes seconds, and a held send must not time out meanwhile.
PATIENT = httpx.Timeout(60.0)


@pytest.fixture(autouse=True)
def no_proxy_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A proxy named in the environment leaves the sending to httpx's client: these tests
    are of our own connections (but the one that names a proxy)."""
    for name in list(os.environ):
        if name.lower().endswith("_proxy"):
            monkeypatch.delenv(name)


@dataclass
class FakeGateway:
    """A loopback server that answers each GET as the gateway does on success, over
    keep-alive connections, and records what it saw: each request's head, the
    connections opened and closed. Clear `release` to hold the answers; set `hang_up`
    to close each connection after its first answer (without saying so); set `cut_short`
    to send only the start of each answer's body, then wait for the client to hang up."""

    url: str = ""
    heads: list[bytes] = field(default_factory=list)
    opened: int = 0
    closed: int = 0
    hang_up: bool = False
    cut_short: bool = False
    cut: int = 0  # answers cut short so far
    release: asyncio.Event = field(default_factory=asyncio.Event)
    ids: itertools.count = field(default_factory=lambda: itertools.count(2**40))

    def __post_init__(self) -> None:
        self.release.set()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.opened += 1
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                self.heads.append(head)
                await self.release.wait()
                body = str(next(self.ids)).encode()
                length = len(body) + 10 if self.cut_short else len(body)
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (length, body)
                )
                if self.cut_short:
                    await writer.drain()
                    self.cut += 1
                    await reader.read()  # until the client hangs up
                    return
                try:
                    await writer.drain()
                except ConnectionError:  # the client gave up on this request
                    return
                if self.hang_up:
                    return
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()  # the socket closed: the client can tell
            self.closed += 1


@contextlib.asynccontextmanager
async def fake_gateway(path: str = "/message") -> AsyncIterator[FakeGateway]:
    fake = FakeGateway()
    server = await asyncio.start_server(fake.handle, "127.0.0.1", 0)
    fake.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}{path}"
    async with server:
        yield fake
        fake.release.set()
        await eventually(lambda: fake.closed == fake.opened, timeout=60)  # the clients hung up


@contextlib.asynccontextmanager
async def own_gateway(url: str, timeout: httpx.Timeout | None = None) -> AsyncIterator[Gateway]:
    options = {} if timeout is None else {"timeout": timeout}
    async with Gateway(url=url, application="botkit", password=PASSWORD, **options) as gateway:
        yield gateway


def sent_params(content: str, reference: str) -> dict[str, str]:
    """The query parameters of `send(HANDSET, content, message_class=..., reference=...)`."""
    return {
        "application": "botkit",
        "password": PASSWORD,
        "content": content,
        "destination": HANDSET,
        "class": "mt_message",
        "reference": reference,
        "version": "2",
    }


# -- what the gateway receives -----------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "content", "reference"),
    [
        ("/message", "Hello", "t1.m1"),
        ("/message", "a+b=c&d%20e/f?g#h ~ 'quoted' \"double\"", "t 1/m+2&x=y"),
        ("/message", "Grüße, 你好 👋\r\nsecond line\ttab", "réf.ü"),
        ("/v2/message?legacy=1#frag", "query and fragment replaced", "t2.m3"),
        ("/a path/mess%C3%A4ge", "an escaped and an unescaped path", "t3.m4"),
    ],
)
async def test_the_request_on_the_wire_is_the_one_httpx_sends(
    path: str, content: str, reference: str
) -> None:
    async with fake_gateway(path) as fake:
        async with httpx.AsyncClient() as http:
            response = await http.get(fake.url, params=sent_params(content, reference))
        assert response.status_code == 200
        async with own_gateway(fake.url) as gateway:
            await gateway.send(HANDSET, content, message_class="mt_message", reference=reference)
    bare, ours = fake.heads
    assert ours == bare


async def test_a_query_httpx_would_refuse_is_refused_before_sending() -> None:
    """httpx refuses a query over 65,536 characters: so do our connections, before any
    request leaves, as a ValidationError (the sender fails the MT, never uncertain)."""
    async with fake_gateway() as fake, own_gateway(fake.url) as gateway:
        with pytest.raises(ValidationError) as caught:
            await gateway.send(HANDSET, "👋" * 5_500)
        assert caught.value.field == "content"
        assert fake.heads == []
        longest = "x" * 64_000  # with the other parameters, under the limit
        await gateway.send(HANDSET, longest, message_class="mt_message", reference="t1.m1")
    (head,) = fake.heads
    assert longest.encode() in head


URLS = [
    "https://api.sms.optus.com.au/message",
    "http://127.0.0.1:8000/message",
    "https://gw.example:8443/v2/message?legacy=1&x=%20#part",
    "http://[::1]:8080/message",
    "https://bücher.example/send message/ä",
    "HTTPS://GW.Example/Message",
]


async def test_each_request_is_built_as_httpx_builds_it() -> None:
    """Any query parameters at all, any gateway URL: the URL, headers and timeouts of
    the request are those of httpx's `client.get(url, params=params)`."""
    gateways = [Gateway(url=url, application="botkit", password=PASSWORD) for url in URLS]
    http = httpx.AsyncClient()

    @settings(max_examples=200, deadline=None)
    @given(st.dictionaries(st.text(), st.text(), max_size=8))
    def check(params: dict[str, str]) -> None:
        for gateway in gateways:
            ours = gateway._build(params)
            theirs = http.build_request("GET", gateway.url, params=params, timeout=gateway.timeout)
            assert (ours.method, ours.url.scheme, ours.url.host, ours.url.port) == (
                theirs.method.encode(),
                theirs.url.raw_scheme,
                theirs.url.raw_host,
                theirs.url.port,
            )
            assert ours.url.target == theirs.url.raw_path
            assert ours.headers == theirs.headers.raw
            assert ours.extensions == theirs.extensions

    try:
        check()
    finally:
        await http.aclose()
        for gateway in gateways:
            await gateway.aclose()


# -- connections: kept, reused, limited ----------------------------------------------------


async def test_one_send_after_another_shares_one_connection() -> None:
    async with fake_gateway() as fake, own_gateway(fake.url) as gateway:
        ids = [await gateway.send(HANDSET, f"message {n}") for n in range(5)]
    assert len(set(ids)) == 5
    assert fake.opened == 1


async def test_sends_in_flight_together_each_take_a_connection_then_reuse_them() -> None:
    async with fake_gateway() as fake, own_gateway(fake.url, PATIENT) as gateway:
        fake.release.clear()
        first = [asyncio.create_task(gateway.send(HANDSET, f"first {n}")) for n in range(8)]
        await eventually(lambda: len(fake.heads) == 8)
        assert fake.opened == 8
        fake.release.set()
        await asyncio.gather(*first)
        await asyncio.gather(*(gateway.send(HANDSET, f"second {n}") for n in range(8)))
    assert len(fake.heads) == 16 and fake.opened == 8


async def test_a_connection_the_gateway_closed_is_not_used_again() -> None:
    async with fake_gateway() as fake, own_gateway(fake.url) as gateway:
        fake.hang_up = True  # after its answer, as a server whose keep-alive ran out
        await gateway.send(HANDSET, "first")
        await eventually(lambda: fake.closed == 1)
        await gateway.send(HANDSET, "second: a new connection, no error")
    assert fake.opened == 2


async def test_a_bursts_connections_are_all_kept_for_the_next_burst() -> None:
    """The sender's MTs leave a claim's worth at a time (up to 32): closing some after
    each burst would open them again (with TLS, a handshake each) for the next."""
    async with fake_gateway() as fake, own_gateway(fake.url, PATIENT) as gateway:
        for _ in range(3):
            await send_a_burst(fake, gateway, 40)
        assert len(fake.heads) == 120
        assert fake.opened == 40 and fake.closed == 0


async def send_a_burst(fake: FakeGateway, gateway: Gateway, size: int) -> None:
    """`size` sends in flight together (each on a connection of its own), then answered."""
    fake.release.clear()
    expected = len(fake.heads) + size
    sends = [asyncio.create_task(gateway.send(HANDSET, f"burst {n}")) for n in range(size)]
    await eventually(lambda: len(fake.heads) == expected, timeout=60)
    fake.release.set()
    await asyncio.gather(*sends)


async def hold_every_connection(fake: FakeGateway, gateway: Gateway) -> list[asyncio.Task]:
    """Sends that take all 100 connections, each held at the gateway until released."""
    fake.release.clear()
    held = [asyncio.create_task(gateway.send(HANDSET, f"held {n}")) for n in range(100)]
    await eventually(lambda: len(fake.heads) == 100, timeout=60)
    return held


async def test_with_every_connection_busy_a_send_times_out_in_the_pool_unsent() -> None:
    async with fake_gateway() as fake, own_gateway(fake.url, BUSY) as gateway:
        held = await hold_every_connection(fake, gateway)
        with pytest.raises(TransientError) as caught:
            await gateway.send(HANDSET, "101st")
        assert caught.value.may_have_been_accepted is False
        assert len(fake.heads) == 100  # it never reached the gateway
        fake.release.set()
        assert len(set(await asyncio.gather(*held))) == 100
        await gateway.send(HANDSET, "a connection is free again")
    assert len(fake.heads) == 101


async def test_cancelled_sends_give_their_connections_back() -> None:
    async with fake_gateway() as fake, own_gateway(fake.url, BUSY) as gateway:
        held = await hold_every_connection(fake, gateway)
        for task in held:
            task.cancel()
        await asyncio.gather(*held, return_exceptions=True)
        fake.release.set()
        await gateway.send(HANDSET, "sent: the cancelled ones freed their slots")
        await eventually(lambda: fake.closed == 100, timeout=60)  # half-done exchanges: closed


async def test_a_send_cancelled_mid_answer_gives_its_slot_back_and_its_connection_up() -> None:
    """A send cancelled while the answer's body is still coming (its task cancelled, as
    when the sender stops) frees its slot, and its connection, half read, is closed,
    never given to the next send."""
    async with fake_gateway() as fake, own_gateway(fake.url, BUSY) as gateway:
        await gateway.send(HANDSET, "a connection, kept")
        fake.cut_short = True
        held = [asyncio.create_task(gateway.send(HANDSET, f"cut {n}")) for n in range(100)]
        await eventually(lambda: fake.cut == 100, timeout=60)
        for task in held:
            task.cancel()
        await asyncio.gather(*held, return_exceptions=True)
        await eventually(lambda: fake.closed == 100, timeout=60)
        fake.cut_short = False
        await gateway.send(HANDSET, "sent: every slot free, on a new connection")
        assert fake.opened == 101


async def test_a_closed_gateway_refuses_to_send_as_httpx_does() -> None:
    async with fake_gateway() as fake:
        gateway = Gateway(url=fake.url, application="botkit", password=PASSWORD)
        await gateway.aclose()
        with pytest.raises(RuntimeError, match="client has been closed"):
            await gateway.send(HANDSET, "too late")
    assert fake.heads == []


# -- errors --------------------------------------------------------------------------------

HTTPCORE_ERRORS = [
    getattr(httpcore, name)
    for name in httpcore.__all__
    if isinstance(getattr(httpcore, name), type) and issubclass(getattr(httpcore, name), Exception)
]


@pytest.mark.parametrize("error", HTTPCORE_ERRORS, ids=lambda error: error.__name__)
def test_httpcore_errors_become_the_httpx_errors_httpx_makes_of_them(
    error: type[Exception],
) -> None:
    def mapped(context: contextlib.AbstractContextManager[None]) -> tuple[type, str]:
        try:
            with context:
                raise error("boom")
        except Exception as exc:
            return type(exc), str(exc)
        raise AssertionError("nothing raised")

    assert mapped(httpx_errors()) == mapped(map_httpcore_exceptions())


# -- where httpx's own client sends --------------------------------------------------------


async def test_a_proxy_named_in_the_environment_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    async with fake_gateway() as proxy:
        for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "http_proxy"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HTTP_PROXY", proxy.url.removesuffix("/message"))
        async with own_gateway("http://gateway.invalid/message") as gateway:
            await gateway.send(HANDSET, "through the proxy")
    (head,) = proxy.heads
    assert head.startswith(b"GET http://gateway.invalid/message?application=botkit&")


async def test_a_password_in_the_url_goes_as_basic_auth() -> None:
    async with fake_gateway() as fake:
        url = fake.url.replace("http://", "http://user:pa55@")
        async with own_gateway(url) as gateway:
            await gateway.send(HANDSET, "with basic auth")
    (head,) = fake.heads
    assert b"\r\nAuthorization: Basic dXNlcjpwYTU1\r\n" in head


# -- the answer's text ---------------------------------------------------------------------

CONTENT_TYPES = [
    None,
    b"text/plain",
    b"text/plain; charset=utf-8",
    b'text/plain; Charset="UTF-8"',
    b"text/plain;charset=us-ascii",
    b"text/html; charset=ISO-8859-1",
    b"text/plain; charset=latin-1",
    b"text/plain; charset=utf-16",
    b"text/plain; charset=cp500",
    b"text/plain; charset=no-such-charset",
    b"text/plain; format=flowed; charset=shift_jis",
    b"text/plain; charset*=''utf-16",
    b"text/plain; charset = utf-8",
]


@settings(max_examples=300, deadline=None)
@given(
    content_type=st.sampled_from(CONTENT_TYPES),
    second_type=st.sampled_from(CONTENT_TYPES),
    encoding=st.sampled_from([None, b"gzip", b"identity"]),
    body=st.one_of(
        st.binary(max_size=40),
        st.from_regex(r"-?[0-9]{1,19}|ERROR [A-Za-z ]{0,30}", fullmatch=True).map(str.encode),
        st.text(max_size=20).map(lambda text: text.encode("utf-8")),
    ),
)
def test_an_answer_reads_as_httpx_reads_it(
    content_type: bytes | None, second_type: bytes | None, encoding: bytes | None, body: bytes
) -> None:
    """Whatever the charset and Content-Encoding: the fast path for the gateway's plain
    ASCII answers must not read any answer otherwise than httpx's `response.text`."""
    headers = [(b"Content-Length", str(len(body)).encode())]
    for value in (content_type, second_type):  # none, one, or two (httpx joins them)
        if value is not None:
            headers.append((b"Content-Type", value))
    if encoding is not None:
        headers.append((b"Content-Encoding", encoding))
        body = gzip.compress(body) if encoding == b"gzip" else body
    assert read(lambda: _text(200, headers, body)) == read(
        lambda: httpx.Response(200, headers=headers, content=body).text
    )


def read(text: Callable[[], str]) -> str | type[Exception]:
    """The text, or the kind of error reading it raised (a body its charset cannot read)."""
    try:
        return text()
    except (UnicodeError, httpx.DecodingError) as exc:
        return type(exc)
