"""The gateway client in a process of its own: `botkit run`'s requests to the gateway
(HTTP/1.1 in Python, most of the CPU an MT costs) run on another core than the app.

`GatewayProcess.send` is `Gateway.send`, each call passed over a pipe to a child
process (this module's `main`) that runs a `Gateway`, one JSON line each way. Beside a
SQLite file the child also keeps the sender's departure log (botkit/departures.py): it
is told as each request's first byte leaves, in the process that writes it, so that it
says what it said when one process did both.

The child lives as long as the app. It has a session of its own and ignores SIGINT and
SIGTERM (the app's stop lets the sends under way finish, then closes the pipe), and it
dies with the app (Linux's parent-death signal, and the pipe's end). Should it die
first, its log tells which of its sends under way had left: those are uncertain, the
others surely never reached the gateway; the next send starts another child, whose log
lists again those of the first's that are not settled.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import itertools
import json
import logging
import os
import signal
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from . import heap
from .departures import DEPARTING, DepartureLog, Unlogged, log_path, read_log
from .errors import (
    AuthenticationError,
    GatewayError,
    MissingParameterError,
    QueueError,
    TransientError,
    ValidationError,
)
from .gateway import DEFAULT_TIMEOUT, DEFAULT_URL, Gateway, redacted, rfc3339

log = logging.getLogger("botkit.gateway")

# The gateway's errors by name, to raise in the app as the child's gateway raised them.
_ERRORS: dict[str, type[GatewayError]] = {
    kind.__name__: kind for kind in (AuthenticationError, GatewayError, QueueError)
}
START_TIMEOUT = 60.0  # seconds for a child to be ready (imports, on a busy machine)
EXIT_TIMEOUT = 10.0  # seconds for a child told to close to exit, once its pipe is shut
PR_SET_PDEATHSIG = 1


class GatewayProcess:
    """Sends through a `Gateway` in a child process: `start` it, then `send` as to a
    Gateway, and `aclose` it when done. Start it from the event loop's thread: the child
    is killed when the thread that started it ends."""

    def __init__(
        self,
        *,
        url: str = DEFAULT_URL,
        application: str,
        password: str,
        version: int = 2,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        log_format: str = "text",
        log_level: int = logging.INFO,
    ) -> None:
        # Checked here as a Gateway checks them (which also redacts the password from
        # this process's log records); the child's own Gateway sends.
        self._checked = Gateway(
            url=url, application=application, password=password, version=version
        )
        self.url = url
        self.reports_departures = self._checked.reports_departures
        self._repr = repr(self._checked).replace("Gateway(", "GatewayProcess(", 1)
        self._setup: dict[str, Any] = {
            "url": url,
            "application": application,
            "password": password,
            "version": version,
            "timeout": timeout.as_dict(),
            "log_format": log_format,
            "log_level": log_level,
        }
        self._log: Path | None = None  # the departure log's path, when there is one
        self._owner = ""
        self._unsettled: set[int] = set()  # sent with the log, outcome not committed
        self._child: _Child | None = None
        self._starting = asyncio.Lock()
        self.departures = ChildDepartures(self)

    def __repr__(self) -> str:
        return self._repr

    async def start(self, departures: tuple[Path, str] | None = None) -> None:
        """Start the child; with `departures` (a directory and the app process's owner
        name), it keeps that process's departure log there."""
        if departures is not None:
            directory, self._owner = departures
            self._log = log_path(directory, self._owner)
        async with self._starting:
            await self._running()

    async def _running(self) -> _Child:
        """The child, another one if it died (under `_starting`); TransientError when
        none starts."""
        dead = self._child
        if dead is not None and not dead.dead:
            return dead
        if dead is not None:
            await dead.gone()  # its log read, and its lock free for the next one's
        setup = {**self._setup, "parent": os.getpid()}
        if self._log is not None:
            # What the dead child's log lists and is not settled: the new log lists it.
            carried = self._unsettled if dead is None or dead.left is None else dead.left
            setup["departures"] = [
                str(self._log.parent),
                self._owner,
                sorted(carried & self._unsettled),
            ]
        self._child = await _Child.start(setup)
        if self._log is not None and not self._child.logging:
            # No log: none at all, rather than a dead child's that misses the sends to come.
            self._log.unlink(missing_ok=True)
        return self._child

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
        """Send one MT (as `Gateway.send`) and return the gateway's id for it; with a
        departure log, `message_id` is the MT's, logged as its request leaves."""
        child = self._child
        if child is None or child.dead:
            async with self._starting:
                child = await self._running()
        fields = {
            "destination": destination,
            "content": content,
            "message_class": message_class,
            "source": source,
            "mask": mask,
            "reference": reference,
            "expires": None if expires is None else rfc3339(expires),
        }
        if self._log is not None and message_id is not None:
            self._unsettled.add(message_id)
        return await child.send(fields, message_id)

    def settled(self, message_id: int) -> None:
        """An MT's outcome is committed: its departure log no longer needs it."""
        self._unsettled.discard(message_id)
        if self._child is not None and not self._child.dead:
            self._child.tell(["settled", message_id])

    async def aclose(self) -> None:
        """Stop the child once its sends under way are answered: it removes its
        departure log then, unless an MT that left was never settled."""
        if self._child is not None:
            await self._child.close()
        await self._checked.aclose()


class ChildDepartures:
    """The child's departure log as the sender sees it (botkit/departures.py)."""

    def __init__(self, gateway: GatewayProcess) -> None:
        self._gateway = gateway

    @property
    def active(self) -> bool:
        """Whether the child logs departures (not after a failed write, nor without one)."""
        child = self._gateway._child
        return child is not None and child.logging

    def settled(self, message_id: int) -> None:
        self._gateway.settled(message_id)


class _Child:
    """One child process, and the sends it has not answered yet."""

    def __init__(self, process: asyncio.subprocess.Process, log: Path | None) -> None:
        self.process = process
        self.log = log
        self.dead = False
        self.logging = False
        self.left: set[int] | None = None  # once dead: what its log says left
        self._answers: dict[int, tuple[asyncio.Future[list[Any]], int | None]] = {}
        self._numbers = itertools.count()
        self._reader: asyncio.Task[None] | None = None
        self._closing = False  # stopped on purpose: its sends were all answered

    @classmethod
    async def start(cls, setup: dict[str, Any]) -> _Child:
        """A child made ready with `setup`; TransientError (nothing was sent) when none
        starts in time, and then no process is left behind."""
        departures = setup.get("departures")
        log_file = None if departures is None else log_path(Path(departures[0]), departures[1])
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                "from botkit.gateway_process import main; main()",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                start_new_session=True,  # a terminal's Ctrl-C is the app's to handle
                limit=1 << 20,
            )
        except OSError as exc:
            raise _not_started(exc) from None
        child = cls(process, log_file)
        try:
            assert process.stdin is not None and process.stdout is not None
            process.stdin.write(_line(setup))  # the password: in no argument or environment
            async with asyncio.timeout(START_TIMEOUT):
                ready = await process.stdout.readline()
                if not ready:
                    code = await process.wait()
                    raise RuntimeError(f"it exited at its start (code {code})")
            child.logging = json.loads(ready)["logging"]
        except (Exception, asyncio.CancelledError) as exc:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
            if isinstance(exc, asyncio.CancelledError):
                raise
            raise _not_started(exc) from None
        child._reader = asyncio.create_task(child._read(), name="gateway process answers")
        log.info(
            "gateway process %d started%s",
            process.pid,
            ", logging departures" if child.logging else "",
            extra={"event": "gateway.process", "pid": process.pid},
        )
        return child

    def tell(self, message: list[Any]) -> None:
        """Write a line to the child; one that died meanwhile is for `_read` to tell."""
        assert self.process.stdin is not None
        with contextlib.suppress(Exception):  # ConnectionError, or uvloop's RuntimeError
            self.process.stdin.write(_line(message))

    async def send(self, fields: dict[str, Any], message_id: int | None) -> int:
        number = next(self._numbers)
        answer: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._answers[number] = answer, message_id
        try:
            self.tell(["send", number, message_id, fields])
            kind, value, self.logging = await answer
        finally:
            self._answers.pop(number, None)
        if kind == "id":
            return value
        raise _error(kind, value)

    async def _read(self) -> None:
        """Hand each answer to its send; when the child is gone, settle those left."""
        assert self.process.stdout is not None
        try:
            while line := await self.process.stdout.readline():
                number, *answer = json.loads(line)
                waiting = self._answers.get(number)
                if waiting is not None and not waiting[0].done():
                    waiting[0].set_result(answer)
        except Exception:
            log.exception("the gateway process's answers make no sense: it is stopped")
        finally:
            self.dead = True
            if self._closing:  # told to close, it shuts its pipe, then exits
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(EXIT_TIMEOUT):
                        await self.process.wait()
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()  # gone already, unless its answers made no sense
            await self._lost(await self.process.wait())

    async def _lost(self, code: int) -> None:
        """Fail the sends the dead child did not answer: uncertain if its log says their
        request left (or cannot say), else surely never sent."""
        left = [(f, message_id) for f, message_id in self._answers.values() if not f.done()]
        self.left = None if self.log is None else read_log(self.log)
        if left and not self._closing:
            log.error(
                "the gateway process stopped (code %s) with %d sends under way",
                code,
                len(left),
                extra={"event": "gateway.process_lost", "pid": self.process.pid},
            )
        for future, message_id in left:
            sent = self.left is None or message_id is None or message_id in self.left
            text = "the gateway process stopped" + ("" if sent else " before the request left")
            future.set_result(["TransientError", [text, sent, None], False])

    async def gone(self) -> None:
        """Wait until the dead child's sends under way are settled."""
        if self._reader is not None:
            await self._reader

    async def close(self) -> None:
        self._closing = True
        if not self.dead:
            self.tell(["close"])
            assert self.process.stdin is not None
            self.process.stdin.close()
        await self.gone()


def _not_started(exc: BaseException) -> TransientError:
    return TransientError(
        f"the gateway process did not start: {type(exc).__name__}: {exc}",
        may_have_been_accepted=False,
    )


def _line(message: Any) -> bytes:
    """One JSON line (ASCII: any text, a lone surrogate too, reads back as it was)."""
    return json.dumps(message).encode("ascii") + b"\n"


def _error(kind: str, value: list[Any]) -> Exception:
    """The exception the child's gateway raised, from its name and fields."""
    if kind == "ValidationError":
        return ValidationError(*value)
    if kind == "Unlogged":
        return Unlogged(value[0])
    if kind == "TransientError":
        text, accepted, status = value
        return TransientError(text, may_have_been_accepted=accepted, status_code=status)
    if kind == "MissingParameterError":
        text, name, status = value
        return MissingParameterError(text, name=name, status_code=status)
    if kind in _ERRORS:
        text, status = value
        return _ERRORS[kind](text, status_code=status)
    return RuntimeError(f"{kind} in the gateway process: {value[0]}")


def _fields_of(exc: Exception) -> tuple[str, list[Any]]:
    """An exception as its name and the fields `_error` makes it again from."""
    if isinstance(exc, ValidationError):
        return "ValidationError", [exc.field, exc.reason]
    if isinstance(exc, Unlogged):
        return "Unlogged", [str(exc)]
    if isinstance(exc, TransientError):
        return "TransientError", [exc.text, exc.may_have_been_accepted, exc.status_code]
    if isinstance(exc, MissingParameterError):
        return "MissingParameterError", [exc.text, exc.name, exc.status_code]
    if isinstance(exc, GatewayError):
        return type(exc).__name__, [exc.text, exc.status_code]
    return type(exc).__name__, [redacted(str(exc))]


# The child.


async def _serve() -> None:
    """Read the setup, then send what the app asks until it closes the pipe."""
    loop = asyncio.get_running_loop()
    answers = os.fdopen(os.dup(1), "wb")  # the pipe to the app, only for answers:
    os.dup2(2, 1)  # a stray print goes to the log, not among them
    reader = asyncio.StreamReader(limit=1 << 24)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    transport, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, answers)
    writer = asyncio.StreamWriter(transport, protocol, None, loop)
    setup = json.loads(await reader.readline())
    _die_with(setup["parent"])
    from .logs import setup_logging

    setup_logging(setup["log_format"], setup["log_level"])
    gateway = Gateway(
        url=setup["url"],
        application=setup["application"],
        password=setup["password"],
        version=setup["version"],
        timeout=httpx.Timeout(**setup["timeout"]),
    )
    departures = None
    if "departures" in setup:
        directory, owner, carried = setup["departures"]
        departures = DepartureLog.open(Path(directory), owner, carried)
    heap.freeze()  # set up: what the child made so far lives as long as it does
    writer.write(_line({"logging": departures is not None and departures.active}))
    sends: set[asyncio.Task[None]] = set()

    async def send(number: int, message_id: int | None, fields: dict[str, Any]) -> None:
        if departures is not None and message_id is not None:
            DEPARTING.set(lambda: departures.left(message_id))  # this task's own
        try:
            answer: list[Any] = ["id", await gateway.send(**fields)]
        except Exception as exc:
            answer = list(_fields_of(exc))
        writer.write(_line([number, *answer, departures is not None and departures.active]))

    closed = False
    while line := await reader.readline():
        message = json.loads(line)
        if message[0] == "send":
            task = asyncio.create_task(send(*message[1:]))
            sends.add(task)
            task.add_done_callback(sends.discard)
        elif message[0] == "settled" and departures is not None:
            departures.settled(message[1])
        elif message[0] == "close":
            closed = True
    if not closed:
        return  # the app is gone: its log stays, for the next start to read
    await asyncio.gather(*sends)
    await gateway.aclose()
    if departures is not None:
        departures.close()
    # Every answer out before the pipe shuts. (wait_closed() would raise: this bare
    # protocol has no waiter for it.)
    transport.set_write_buffer_limits(high=0)
    await writer.drain()
    writer.close()


def _die_with(parent: int) -> None:
    """Be killed when the app's process ends, however it ends (Linux), and not by the
    signals a service manager sends to the app's whole group: the app stops its child
    itself, once its sends are answered."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # it ended before the signal was asked for
        os._exit(1)


def main() -> None:
    """The child: serve the app that started it, on uvloop where it is installed."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(_serve())
    else:
        uvloop.run(_serve())
