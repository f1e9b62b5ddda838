"""What the benchmarks share: servers on free loopback ports, their peak memory,
percentiles, and a description of the machine the figures come from."""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
BOTKIT = str(Path(sys.executable).parent / "botkit")
RESULTS = ROOT / "bench" / "results"


def free_port() -> int:
    """A loopback port nobody listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def process(
    command: Sequence[str], url: str, *, env: dict[str, str] | None = None, cwd: Path = ROOT
) -> Iterator[subprocess.Popen[bytes]]:
    """Run `command` until the block ends (SIGINT, then SIGKILL after 30 s), once `url`
    answers. None of the caller's BOTKIT_* settings reach it unless `env` gives them."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BOTKIT_")}
    with tempfile.TemporaryFile("w+", encoding="utf-8") as log:
        started = subprocess.Popen(
            list(command), env={**clean, **(env or {})}, cwd=cwd, stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            wait_for(url, started, log)
            yield started
        finally:
            started.send_signal(signal.SIGINT)
            try:
                started.wait(30)
            except subprocess.TimeoutExpired:
                started.kill()
                started.wait()


def wait_for(url: str, process: subprocess.Popen[bytes], log: IO[str], timeout: float = 60) -> None:
    """Wait until `url` answers; if the server exits first, fail with what it printed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log.seek(0)
            raise SystemExit(f"{process.args} exited with {process.returncode}:\n{log.read()}")
        with contextlib.suppress(httpx.TransportError):
            httpx.get(url, timeout=1.0)
            # Ours, not a server of another run that took the port free_port() gave
            # us before we bound it (two test suites side by side).
            if _listens(process.pid, httpx.URL(url).port):
                return
        time.sleep(0.1)
    raise SystemExit(f"{url} did not answer within {timeout} s")


def _listens(pid: int, port: int | None) -> bool:
    """True if process `pid` holds the socket listening on loopback `port` (Linux's
    /proc; True elsewhere, where this cannot be told)."""
    tables = [Path("/proc/net/tcp"), Path("/proc/net/tcp6")]
    if port is None or not all(table.exists() for table in tables):
        return True
    listening = {
        fields[9]
        for table in tables
        for fields in (line.split() for line in table.read_text().splitlines()[1:])
        if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port
    }
    try:
        held = {os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
    except OSError:
        return False
    return any(f"socket:[{inode}]" in held for inode in listening)


def fresh_sqlite(db: Path) -> Path:
    """`db`, with whatever an earlier run left of it (the file, its WAL) removed."""
    for leftover in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
        leftover.unlink(missing_ok=True)
    return db


def peak_rss_mib(pid: int) -> float | None:
    """The most memory the process has held so far (VmHWM), in MiB; None off Linux."""
    return _status_mib(pid, "VmHWM")


def rss_mib(pid: int) -> float | None:
    """The memory the process holds now (VmRSS), in MiB; None off Linux or once it is gone."""
    return _status_mib(pid, "VmRSS")


def _status_mib(pid: int, field: str) -> float | None:
    """A memory field of /proc/<pid>/status, in MiB."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    found = re.search(rf"^{field}:\s+(\d+) kB", status, re.MULTILINE)
    return round(int(found.group(1)) / 1024, 1) if found else None


def pss_mib(pids: Sequence[int]) -> float | None:
    """The memory the processes hold now, each shared page divided among the processes
    that map it (PSS, from /proc/<pid>/smaps_rollup), summed, in MiB; None off Linux."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
            found = re.search(r"^Pss:\s+(\d+) kB", rollup, re.MULTILINE)
            total += int(found.group(1)) if found else 0
    return round(total / 1024, 1) if total else None


def percentile(values: Sequence[float], p: float) -> float:
    """The `p`th percentile (0-100) by nearest rank."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def ms(seconds: float) -> float:
    """Seconds as milliseconds, to two places."""
    return round(seconds * 1000, 2)


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    cpuinfo = Path("/proc/cpuinfo")
    models = re.findall(r"model name\s*:\s*(.+)", cpuinfo.read_text()) if cpuinfo.exists() else []
    return {
        "cpus": os.cpu_count(),
        "cpu": models[0] if models else platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(),
    }


def simulator_command(
    port: int, app: str, token: str, application: str, password: str
) -> list[str]:
    """`botkit simulator` on `port`, its callbacks to the app at `app` with `token`."""
    return [
        BOTKIT, "simulator", "--host", "127.0.0.1", "--port", str(port),
        "--mo-url", f"{app}/callbacks/{token}/mo", "--dlr-url", f"{app}/callbacks/{token}/dlr",
        "--application", application, f"--password={password}",
    ]  # fmt: skip


def gateway_env(
    gateway: str, application: str, password: str, token: str, rate: float
) -> dict[str, str]:
    """The settings of a `botkit run` that sends through the simulator at `gateway`."""
    return {
        "BOTKIT_GATEWAY_URL": f"{gateway}/message",
        "BOTKIT_APPLICATION": application,
        "BOTKIT_PASSWORD": password,
        "BOTKIT_CALLBACK_TOKEN": token,
        "BOTKIT_SEND_RATE": str(rate),
        "BOTKIT_NUMBERS": "4433",
    }


def load_options(
    doc: str, results: str | None, *, drain: bool = False, results_help: str = ""
) -> argparse.ArgumentParser:
    """A command line described by `doc`'s first paragraph, with the options of the
    benchmarks that send MO callbacks: --handsets, --drain (if `drain`) and --results
    (RESULTS/`results`; None: the script sets it, as `results_help` says)."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--handsets", type=int, default=1000, help="handsets texting (%(default)s)")
    if drain:
        parser.add_argument(
            "--drain",
            type=float,
            default=120.0,
            help="seconds the app may take, after the load, to handle and answer it (%(default)s)",
        )
    parser.add_argument(
        "--results",
        type=Path,
        default=results and RESULTS / results,
        help=f"where the figures go ({results_help or '%(default)s'})",
    )
    return parser


def rated(
    parser: argparse.ArgumentParser, default: list[float] | None = None, help: str = ""
) -> None:
    """Add --rates (`default`, or 100,500,1000) and --duration (10 s at each) to `parser`."""
    default = [100.0, 500.0, 1000.0] if default is None and not help else default
    parser.add_argument(
        "--rates", type=rates, default=default, help=help or "MOs per second (100,500,1000)"
    )
    parser.add_argument(
        "--duration", type=float, default=10.0, help="seconds at each rate (%(default)s)"
    )


def rates(text: str) -> list[float]:
    """A comma-separated list of positive rates."""
    values = [float(part) for part in text.split(",") if part.strip()]
    if not values or min(values) <= 0:
        raise argparse.ArgumentTypeError("give positive rates, e.g. 100,500,1000")
    return values


def save(path: Path, figures: dict[str, Any]) -> None:
    """Write a benchmark's figures to `path` as JSON, and say where."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"figures written to {path}")


def alone(
    name: str,
    measure: Callable[[float, float, int, Path], dict[str, Any]],
    args: argparse.Namespace,
    line: Callable[[dict[str, Any]], str],
) -> int:
    """Run `measure` (rate, duration, handsets, work folder) at each of `args.rates`,
    print a `line` for each run and save them: what limit.py and floor.py do alone."""
    with tempfile.TemporaryDirectory(prefix=f"botkit-{name}-") as workdir:
        runs = [measure(rate, args.duration, args.handsets, Path(workdir)) for rate in args.rates]
    for run in runs:
        print(line(run))
    save(args.results, {"machine": machine(), "runs": runs})
    return 0
