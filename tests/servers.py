"""Real servers for tests: `botkit` processes on free loopback ports."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
BOTKIT = str(Path(sys.executable).parent / "botkit")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


def output(process: subprocess.Popen) -> str:
    """Everything the process printed so far."""
    log = process.log  # type: ignore[attr-defined]
    log.seek(0)
    return log.read()
