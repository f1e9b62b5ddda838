"""The gateway client in a process of its own (botkit/gateway_process.py), on real
sockets and a real child process: its sends and errors read as a Gateway's, the
password is in none of its arguments, it outlives the signals a terminal sends, it
logs each MT's departure as the request leaves, and a child that dies fails its sends
as uncertain and is replaced at the next send."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from conftest import eventually
from servers import free_port
from test_gateway_connections import (
    PASSWORD,
    PATIENT,
    fake_gateway,
    no_proxy_in_the_environment,
)

from botkit.connections import MAX_CONNECTIONS
from botkit.departures import read_departures
from botkit.errors import (
    AuthenticationError,
    QueueError,
    TransientError,
    ValidationError,
)
from botkit.gateway import DEFAULT_TIMEOUT
from botkit.gateway_process import GatewayProcess

__all__ = ["no_proxy_in_the_environment"]  # autouse: our own connections, not a proxy's

HANDSET = "+61400000001"
OWNER = "host:42:feed"


@contextlib.asynccontextmanager
async def child(
    url: str, departures: Path | None = None, timeout: httpx.Timeout = DEFAULT_TIMEOUT
) -> AsyncIterator[GatewayProcess]:
    gateway = GatewayProcess(url=url, application="botkit", password=PASSWORD, timeout=timeout)
    await gateway.start(None if departures is None else (departures, OWNER))
    try:
        yield gateway
    finally:
        await gateway.aclose()


def pid_of(gateway: GatewayProcess) -> int:
    assert gateway._child is not None
    return gateway._child.process.pid


async def answering(status: int, body: bytes) -> tuple[asyncio.Server, str]:
    """A loopback server answering every request with `status` and `body`; its URL."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 %d X\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
            % (status, len(body), body)
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/message"


async def test_sends_go_through_the_child_and_come_back_as_ids():
    async with fake_gateway() as fake, child(fake.url) as gateway:
        ids = await asyncio.gather(
            *(gateway.send(HANDSET, f"hello {n}", message_class="mt_message") for n in range(40))
        )
        assert sorted(ids) == list(range(2**40, 2**40 + 40))
        assert os.getpid() != pid_of(gateway)
    assert len(fake.heads) == 40
    assert all(b"password=" in head for head in fake.heads)


async def test_a_child_told_to_close_exits_cleanly():
    async with fake_gateway() as fake:
        async with child(fake.url) as gateway:
            assert await gateway.send(HANDSET, "hello", message_class="mt_message") == 2**40
            process = gateway._child.process
        # Its answers flushed and its pipe closed, it ends as it should: no traceback.
        assert await asyncio.wait_for(process.wait(), timeout=30) == 0


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (401, b"ERROR Invalid authentication information", AuthenticationError),
        (400, b"ERROR Failed to queue message", QueueError),
        (503, b"busy", TransientError),
    ],
)
async def test_the_gateways_errors_are_raised_as_a_gateway_raises_them(status, body, error):
    server, url = await answering(status, body)
    async with server, child(url) as gateway:
        with pytest.raises(error) as raised:
            await gateway.send(HANDSET, "hello", message_class="mt_message")
    assert raised.value.status_code == status
    assert type(raised.value) is error
    if error is TransientError:
        assert raised.value.may_have_been_accepted is False  # 503: not taken on


async def test_bad_input_and_an_unreachable_gateway_read_as_they_do_in_one_process():
    url = f"http://127.0.0.1:{free_port()}/message"  # nothing listens there
    async with child(url) as gateway:
        with pytest.raises(ValidationError) as invalid:
            await gateway.send("0400", "hello", message_class="mt_message")
        assert invalid.value.field == "destination"
        with pytest.raises(TransientError) as unreachable:
            await gateway.send(HANDSET, "hello", message_class="mt_message")
    assert unreachable.value.may_have_been_accepted is False  # never connected
    assert PASSWORD not in str(unreachable.value)


async def test_any_text_goes_through_the_pipe_as_it_is():
    texts = ["two\nlines\r\n", "sep\u2028ara\u0085tors", "nul\x00", "emoji \U0001f600 ü"]
    async with fake_gateway() as fake, child(fake.url) as gateway:
        for text in texts:
            await gateway.send(HANDSET, text, message_class="mt_message")
    assert [query["content"][0] for query in queries(fake)] == texts


async def test_the_password_is_in_no_argument_nor_environment_of_the_child():
    async with fake_gateway() as fake, child(fake.url) as gateway:
        proc = Path(f"/proc/{pid_of(gateway)}")
        assert PASSWORD.encode() not in (proc / "cmdline").read_bytes()
        assert PASSWORD.encode() not in (proc / "environ").read_bytes()
        assert PASSWORD not in repr(gateway)


async def test_the_child_ignores_the_signals_a_service_manager_sends_to_the_group():
    async with fake_gateway() as fake, child(fake.url) as gateway:
        status = Path(f"/proc/{pid_of(gateway)}/status").read_text()
        ignored = int(re.search(r"^SigIgn:\s*([0-9a-f]+)$", status, re.M)[1], 16)
        assert ignored & (1 << (signal.SIGINT - 1)) and ignored & (1 << (signal.SIGTERM - 1))
        assert os.getsid(pid_of(gateway)) != os.getsid(0)  # nor a terminal's Ctrl-C
        assert await gateway.send(HANDSET, "still here", message_class="mt_message") >= 2**40


async def test_the_child_logs_each_departure_and_removes_its_log_when_all_settled(tmp_path):
    async with fake_gateway() as fake, child(fake.url, tmp_path) as gateway:
        await gateway.send(HANDSET, "one", message_class="mt_message", message_id=7)
        await gateway.send(HANDSET, "two", message_class="mt_message", message_id=8)
        (log,) = tmp_path.glob("*.log")
        assert log.read_text().splitlines()[1:] == ["7", "8"]
        assert gateway.departures.active
        gateway.departures.settled(7)
        gateway.departures.settled(8)
    assert not list(tmp_path.glob("*.log"))


async def test_a_log_with_an_mt_left_unsettled_is_kept_at_the_stop(tmp_path):
    async with fake_gateway() as fake, child(fake.url, tmp_path) as gateway:
        await gateway.send(HANDSET, "one", message_class="mt_message", message_id=7)
        gateway.departures.settled(7)
        await gateway.send(HANDSET, "two", message_class="mt_message", message_id=8)
    assert read_departures(tmp_path) == {OWNER: {7, 8}}


async def test_a_child_that_dies_fails_its_sends_and_is_replaced(tmp_path):
    """Killed with every connection's request at the gateway and two more sends waiting
    for a connection: the first are uncertain, the two surely never sent. The next send
    starts another child, whose log lists again the uncertain ones, until settled."""
    async with fake_gateway() as fake, child(fake.url, tmp_path, PATIENT) as gateway:
        fake.release.clear()  # the gateway holds its answers
        held = {
            n: asyncio.ensure_future(
                gateway.send(HANDSET, f"held {n}", message_class="mt_message", message_id=n)
            )
            for n in range(1, MAX_CONNECTIONS + 3)
        }
        await eventually(lambda: len(fake.heads) == MAX_CONNECTIONS, timeout=60)
        at_the_gateway = {int(query["content"][0].split()[1]) for query in queries(fake)}
        first = pid_of(gateway)
        os.kill(first, signal.SIGKILL)
        for n, send in held.items():
            with pytest.raises(TransientError) as lost:
                await send
            assert lost.value.may_have_been_accepted is (n in at_the_gateway), n
        fake.release.set()
        assert await gateway.send(HANDSET, "again", message_class="mt_message", message_id=900)
        assert pid_of(gateway) != first
        (log,) = tmp_path.glob("*.log")
        assert set(map(int, log.read_text().splitlines()[1:])) == at_the_gateway | {900}
        kept = min(at_the_gateway)
        for n in at_the_gateway - {kept}:
            gateway.departures.settled(n)
        gateway.departures.settled(900)
    # The one never settled keeps the log at the stop, for the next start.
    assert read_departures(tmp_path) == {OWNER: at_the_gateway | {900}}
    assert len(at_the_gateway) == MAX_CONNECTIONS


def queries(fake) -> list[dict[str, list[str]]]:
    """The query parameters of the requests the fake gateway received."""
    return [parse_qs(urlsplit(head.split(b" ")[1].decode()).query) for head in fake.heads]


async def test_the_child_dies_with_the_app(tmp_path):
    """The app killed, its child goes too (Linux's parent-death signal): its departure
    log is then free to be read by the next start."""
    script = tmp_path / "app.py"
    script.write_text(
        "import asyncio, pathlib, sys\n"
        "from botkit.gateway_process import GatewayProcess\n"
        "async def main():\n"
        "    gateway = GatewayProcess(url=sys.argv[1], application='a', password='p')\n"
        f"    await gateway.start((pathlib.Path({str(tmp_path)!r}), 'owner'))\n"
        "    print(gateway._child.process.pid, flush=True)\n"
        "    await asyncio.sleep(3600)\n"
        "asyncio.run(main())\n"
    )
    async with fake_gateway() as fake:
        app = await asyncio.create_subprocess_exec(
            sys.executable, str(script), fake.url, stdout=asyncio.subprocess.PIPE
        )
        try:
            assert app.stdout is not None
            pid = int(await asyncio.wait_for(app.stdout.readline(), 60))
        finally:
            app.kill()
            await app.wait()
        await eventually(lambda: not Path(f"/proc/{pid}").exists() or zombie(pid), timeout=60)
    assert read_departures(tmp_path) == {"owner": set()}


def zombie(pid: int) -> bool:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")
    return True
