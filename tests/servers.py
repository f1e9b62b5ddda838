"""Real servers for tests: `botkit` processes on free loopback ports, and a relay that
cuts one off or spreads connections over several, as a load balancer does."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from starlette.types import ASGIApp

ROOT = Path(__file__).resolve().parent.parent
BOTKIT = str(Path(sys.executable).parent / "botkit")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.asynccontextmanager
async def served(app: ASGIApp, port: int, **options: Any) -> AsyncIterator[None]:
    """Serve `app` with a real uvicorn on loopback `port`, in this event loop (with
    uvicorn's `options`, such as botkit run's)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", port))
    defaults = {"log_config": None, "access_log": False, "lifespan": "on"}
    config = uvicorn.Config(app, **{**defaults, **options})
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    deadline = time.monotonic() + 20
    while not (server.started or task.done()):
        assert time.monotonic() < deadline, "uvicorn did not start within 20 s"
        await asyncio.sleep(0.01)
    try:
        yield
    finally:
        server.should_exit = True
        await task
        sock.close()


def wait_for(url: str, process: subprocess.Popen, timeout: float = 20.0) -> None:
    """Wait until `url` answers, failing early if `process` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"{process.args} exited with {process.returncode}")
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not answer within {timeout}s")


def poll(check, timeout: float = 15.0):
    """Call `check` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"condition not met within {timeout}s (last value {value!r})")


def poll_down(left: Callable[[], int], stall: float = 30.0, every: float = 0.1) -> None:
    """Call `left` (the work still to do) every `every` seconds until it returns 0,
    however long that takes on a busy machine, as long as it keeps falling: fail only
    when it has not fallen below its lowest for `stall` seconds."""
    lowest, deadline = None, time.monotonic() + stall
    while value := left():
        if lowest is None or value < lowest:
            lowest, deadline = value, time.monotonic() + stall
        elif time.monotonic() > deadline:
            raise AssertionError(f"stuck at {value} left for {stall}s")
        time.sleep(every)


def running_processes() -> Iterator[list[subprocess.Popen]]:
    """Processes a test starts (`start`), interrupted, then killed, when it ends."""
    started: list[subprocess.Popen] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        process.log.close()  # type: ignore[attr-defined]


def start(processes, args, env=None, cwd=ROOT, within: Sequence[str] = ()) -> subprocess.Popen:
    """Start `botkit ARGS` in `cwd` (run by the command `within`, if given, such as
    `unshare ...`); the `processes` fixture stops it. Its output goes to a file
    (`output(process)` reads it): a pipe nobody drains would fill up and block the
    process at its next log line."""
    log = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115 (closed by the fixture)
    process = subprocess.Popen(
        [*within, BOTKIT, *args],
        env={**os.environ, **(env or {})},
        cwd=cwd,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    process.log = log  # type: ignore[attr-defined]
    processes.append(process)
    return process


def run_bot(
    processes, folder: Path, name: str, source: str, env: dict[str, str] | None = None
) -> str:
    """`botkit run` of one bot module (`source`, as bots/`name`.py in `folder`, with an
    empty templates/ and botkit.db there), started: its base URL."""
    (folder / "bots").mkdir()
    (folder / "bots" / f"{name}.py").write_text(source)
    (folder / "templates").mkdir()
    port = free_port()
    args = ["run", "--port", str(port), "--db", str(folder / "botkit.db")]
    args += ["--bots", str(folder / "bots"), "--templates", str(folder / "templates")]
    app = start(processes, args, env=env)
    base = f"http://127.0.0.1:{port}"
    wait_for(f"{base}/healthz", app)
    return base


def start_simulator(processes, app_port: int, password: str) -> int:
    """Start `botkit simulator` on a free port, calling back the app on `app_port` with
    the token `tok`, and wait until it answers; returns its port."""
    port = free_port()
    app_url = f"http://127.0.0.1:{app_port}"
    simulator = start(
        processes,
        ["simulator", "--port", str(port), "--password", password,
         "--mo-url", f"{app_url}/callbacks/tok/mo", "--dlr-url", f"{app_url}/callbacks/tok/dlr"],
    )  # fmt: skip
    wait_for(f"http://127.0.0.1:{port}/", simulator)
    return port


def gateway_env(port: int, password: str) -> dict[str, str]:
    """The settings of a `botkit run` whose gateway listens on `port` (the simulator's,
    or a relay's in front of it), with the callback token `tok`."""
    return {
        "BOTKIT_GATEWAY_URL": f"http://127.0.0.1:{port}/message",
        "BOTKIT_APPLICATION": "botkit",
        "BOTKIT_PASSWORD": password,
        "BOTKIT_CALLBACK_TOKEN": "tok",
        "BOTKIT_NUMBERS": "4433",
    }


def output(process: subprocess.Popen) -> str:
    """Everything the process printed so far."""
    log = process.log  # type: ignore[attr-defined]
    log.seek(0)
    return log.read()


class Relay:
    """A TCP relay on a free loopback port to `target_ports`, run in a thread of its own,
    that a test switches off (connections refused, open ones cut) and on again: the
    gateway unreachable for a while. With several targets it is a round-robin load
    balancer: each new connection goes to the next target that accepts it."""

    def __init__(self, *target_ports: int) -> None:
        self.target_ports = target_ports
        self.connections = dict.fromkeys(target_ports, 0)  # made to each target
        self._turn = 0
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()

    def __enter__(self) -> Relay:
        self._thread.start()
        self.on()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.off()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def on(self) -> None:
        """Listen again: connections reach the target."""
        self._run(self._listen())

    def off(self) -> None:
        """Stop listening and cut the connections open through the relay."""
        self._run(self._close())

    def _run(self, coroutine: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(10)

    async def _listen(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(
                self._pipe, "127.0.0.1", self.port, reuse_address=True
            )

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in self._open:
            writer.transport.abort()
        self._open.clear()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Copy bytes both ways between a client and a target until either side ends."""
        try:
            target_reader, target_writer = await self._connect()
        except OSError:
            writer.transport.abort()
            return
        self._open |= {writer, target_writer}
        await asyncio.gather(
            _copy(reader, target_writer), _copy(target_reader, writer), return_exceptions=True
        )
        for end in (writer, target_writer):
            self._open.discard(end)
            end.close()

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Connect to the next target in turn, passing over those that refuse."""
        for _ in self.target_ports:
            port = self.target_ports[self._turn % len(self.target_ports)]
            self._turn += 1
            try:
                connection = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                continue
            self.connections[port] += 1
            return connection
        raise ConnectionRefusedError("no target accepts connections")


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    if writer.can_write_eof():
        writer.write_eof()
