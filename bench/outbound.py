"""How fast the sender drains a broadcast to the gateway, and whether each MT goes once.

    python bench/outbound.py [--messages N] [--rate R] [--baseline-seconds S]
                             [--backend sqlite|postgresql]

Each run has its own `botkit simulator` process as the gateway and its own `botkit run`
process configured against it (BOTKIT_GATEWAY_URL, BOTKIT_APPLICATION, ...) with a fresh
database: a SQLite file, or with `--backend postgresql` a database on a throwaway
PostgreSQL server with fsync on (bench/backends.py). With the app running,
`botkit broadcast --csv ... --template ...` queues `--messages` MTs into its database,
as a user would; the benchmark polls that database for the MTs the gateway accepted. Two
drains: at BOTKIT_SEND_RATE=`--rate`, and with no rate limit; the first's steady rate is
printed as its deviation from the configured rate, in % (issue 15's target: within 1%).
The simulator's record (GET /api/messages) shows whether every MT arrived exactly once.
The baseline, from the same run: bare GET /message requests to a simulator (its DLRs
going to an idle app) from one httpx client, one at a time and 16 at a time. Prints a
table and writes bench/results/outbound.json (outbound_postgresql.json).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import csv
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import cpu
import httpx
from backends import Backend, backend_for, unavailable
from common import (
    BOTKIT,
    RESULTS,
    ROOT,
    free_port,
    gateway_env,
    machine,
    ms,
    peak_rss_mib,
    process,
    save,
    simulator_command,
)

APPLICATION, PASSWORD = "bench", "bench-password"
TEMPLATE = "bench/offer.txt"
TEXT = (
    "Hi {{ name }}, our spring sale starts today: 20% off everything with code SPRING. "
    "Reply STOP to opt out."
)
NO_LIMIT = 1_000_000.0  # BOTKIT_SEND_RATE for "no rate limit"
POLL_SECONDS = 0.05
STALL_SECONDS = 60.0  # no MT accepted for this long: the drain is stuck
IN_FLIGHT = 16  # the sender's own concurrency
REFERENCE = re.compile(r"t[0-9]+\.m[0-9]+")
# MTs the gateway accepted, and MTs still waiting in the outbox (queued or sending).
PROGRESS = """SELECT
    (SELECT count(*) FROM messages WHERE direction = 'mt' AND gateway_id IS NOT NULL),
    (SELECT count(*) FROM outbox)"""


@dataclass
class Stack:
    """A simulator and an app sending through it, with the app's database."""

    gateway: str
    simulator_pid: int
    app: subprocess.Popen[bytes]
    db: str  # a path or a URL
    cwd: Path  # the app's folder
    workdir: Path
    backend: Backend


@dataclass
class Drain:
    """One broadcast drained: the queueing, the accepted count over time, the checks."""

    name: str
    rate: float | None
    messages: int
    broadcast_seconds: float = 0.0
    samples: list[tuple[float, int]] = field(default_factory=list)
    sent_once: int = 0
    duplicates: int = 0
    missing: int = 0
    unexpected: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    app_peak_rss_mib: float | None = None
    cpu: dict[str, Any] = field(default_factory=dict)  # cpu.py's figures over the drain

    def at(self, count: float) -> float:
        """Seconds from the broadcast's start until `count` MTs were accepted
        (interpolated between polls)."""
        before = (0.0, 0)
        for moment, accepted in self.samples:
            if accepted >= count:
                t0, c0 = before
                return t0 + (moment - t0) * (count - c0) / max(1, accepted - c0)
            before = (moment, accepted)
        raise ValueError(f"never {count} accepted")

    def peak(self, window: float = 1.0) -> float:
        """The most MTs accepted in any `window` seconds, per second."""
        best, j = 0.0, 0
        for t0, c0 in self.samples:
            while j < len(self.samples) and self.samples[j][0] - t0 < window:
                j += 1
            if j == len(self.samples):
                break
            t1, c1 = self.samples[j]
            best = max(best, (c1 - c0) / (t1 - t0))
        return best

    def figures(self) -> dict[str, Any]:
        """Rates (overall from the broadcast's start, steady between 10% and 90%
        accepted, the best second), times and the once-only checks."""
        n = self.samples[-1][1]  # accepted in the end
        done, first = self.at(n), self.at(1)
        steady = 0.8 * n / (self.at(0.9 * n) - self.at(0.1 * n)) if n >= 10 else None
        return {
            "name": self.name,
            "configured_per_s": self.rate,
            "messages": n,
            "broadcast_seconds": round(self.broadcast_seconds, 2),
            "broadcast_per_s": round(n / self.broadcast_seconds, 1),
            "first_accepted_s": round(first, 2),
            "all_accepted_s": round(done, 2),
            "accepted": n,
            "overall_per_s": round(n / done, 1),
            "drain_per_s": round((n - 1) / (done - first), 1) if done > first else None,
            "steady_per_s": steady and round(steady, 1),
            # How far the steady rate is from the configured one, in % of it.
            "deviation_pct": (
                round(100 * (steady - self.rate) / self.rate, 2) if steady and self.rate else None
            ),
            "peak_1s_per_s": round(self.peak(), 1),
            "sent_once": self.sent_once,
            "duplicates": self.duplicates,
            "missing": self.missing,
            "unexpected": self.unexpected,
            "statuses": self.statuses,
            "app_peak_rss_mib": self.app_peak_rss_mib,
            **self.cpu,
        }


def main(argv: list[str] | None = None) -> int:
    """Measure the baselines and both drains, print and save the figures."""
    args = _arguments(argv)
    if reason := unavailable(args.backend):
        print(f"{args.backend}: skipped, {reason}")
        return 0
    with (
        tempfile.TemporaryDirectory(prefix="bench-outbound-") as tmp,
        backend_for(args.backend, Path(tmp)) as backend,
    ):
        workdir = Path(tmp)
        recipients = write_inputs(workdir, args.messages)
        baselines = measure_baselines(workdir, backend, args.baseline_seconds)
        drains = [
            drain(workdir, backend, recipients, args.rate),
            drain(workdir, backend, write_inputs(workdir, args.unlimited_messages, "few"), None),
        ]
        results = report(baselines, [d.figures() for d in drains], args, backend.describe())
    save(args.results, results)
    return 0 if all(d.sent_once == d.messages and not d.duplicates for d in drains) else 1


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    """The command line's options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--messages", type=int, metavar="N", default=10_000, help="MTs queued (%(default)s)"
    )
    parser.add_argument(
        "--unlimited-messages",
        type=int,
        metavar="N",
        default=1_000,
        help="MTs queued for the drain with no rate limit (%(default)s)",
    )
    parser.add_argument(
        "--rate", type=float, metavar="R", default=200.0, help="BOTKIT_SEND_RATE (%(default)s)"
    )
    parser.add_argument(
        "--baseline-seconds",
        type=float,
        metavar="S",
        default=5.0,
        help="how long each bare-request baseline runs (%(default)s)",
    )
    parser.add_argument(
        "--backend",
        choices=("sqlite", "postgresql"),
        default="sqlite",
        help="the app's database: a SQLite file, or a throwaway PostgreSQL cluster with "
        "fsync on (%(default)s)",
    )
    parser.add_argument(
        "--results",
        type=Path,
        metavar="PATH",
        help="where the figures go (bench/results/outbound.json, for PostgreSQL "
        "outbound_postgresql.json)",
    )
    args = parser.parse_args(argv)
    name = "outbound.json" if args.backend == "sqlite" else "outbound_postgresql.json"
    args.results = args.results or RESULTS / name
    return args


def write_inputs(workdir: Path, messages: int, name: str = "many") -> Path:
    """The broadcast's template (under workdir/templates) and a CSV `name` of `messages`
    distinct Australian mobiles; the CSV's path."""
    template = workdir / "templates" / TEMPLATE
    template.parent.mkdir(parents=True, exist_ok=True)
    template.write_text(TEXT + "\n", encoding="utf-8")
    path = workdir / f"{name}.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["number", "name"])
        writer.writerows((number(i), f"Customer {i}") for i in range(messages))
    return path


def number(i: int) -> str:
    """The `i`th handset of the benchmark."""
    return f"+6140{i:07d}"


@contextlib.contextmanager
def stack(workdir: Path, backend: Backend, name: str, rate: float) -> Iterator[Stack]:
    """A `botkit simulator` and a `botkit run` configured against it at `rate`, with a
    fresh database, each on a free loopback port; both stopped afterwards."""
    run = workdir / name
    run.mkdir()
    with backend.database(rate, name) as db, _stack(workdir, run, db, rate) as running:
        yield Stack(*running, backend)


@contextlib.contextmanager
def _stack(
    workdir: Path, run: Path, db: str, rate: float
) -> Iterator[tuple[str, int, subprocess.Popen[bytes], str, Path, Path]]:
    """The simulator and the app on the database `db`, from the folder `run`."""
    token = secrets.token_urlsafe(16)
    sim_port, app_port = free_port(), free_port()
    gateway, app = f"http://127.0.0.1:{sim_port}", f"http://127.0.0.1:{app_port}"
    simulator = simulator_command(sim_port, app, token, APPLICATION, PASSWORD)
    serve = [BOTKIT, "run", "--db", db, "--host", "127.0.0.1", "--port", str(app_port)]
    serve += ["--bots", str(ROOT / "bots"), "--templates", str(workdir / "templates")]
    env = gateway_env(gateway, APPLICATION, PASSWORD, token, rate)
    # cwd: no botkit.toml of this checkout is read.
    with (
        process(simulator, f"{gateway}/api/messages", cwd=run) as simulated,
        process(serve, f"{app}/healthz", env=env, cwd=run) as served,
    ):
        yield gateway, simulated.pid, served, db, run, workdir


def measure_baselines(workdir: Path, backend: Backend, seconds: float) -> list[dict[str, Any]]:
    """The simulator's throughput for bare GET /message requests from one httpx client,
    one at a time and IN_FLIGHT at a time, its DLRs going to an app with nothing to send."""
    with stack(workdir, backend, "baseline", NO_LIMIT) as running:
        url = f"{running.gateway}/message"
        return [
            _sequential(url, seconds),
            asyncio.run(_concurrent(url, seconds, IN_FLIGHT)),
        ]


def _params(i: int) -> dict[str, str]:
    """A send request as the app's gateway client makes it (reference not ours)."""
    return {
        "application": APPLICATION,
        "password": PASSWORD,
        "content": TEXT.replace("{{ name }}", f"Customer {i}"),
        "destination": number(i),
        "class": "mt_message",
        "reference": f"baseline.{i}",
        "version": "2",
    }


def _sequential(url: str, seconds: float) -> dict[str, Any]:
    """Requests one after another over one keep-alive connection, for `seconds`."""
    times: list[float] = []
    with httpx.Client(timeout=30) as client:
        for i in range(20):  # warm-up
            client.get(url, params=_params(i)).raise_for_status()
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            sent = time.perf_counter()
            client.get(url, params=_params(len(times))).raise_for_status()
            times.append(time.perf_counter() - sent)
        elapsed = time.perf_counter() - started
    return _baseline("bare GET /message, 1 at a time", len(times), elapsed, times)


async def _concurrent(url: str, seconds: float, in_flight: int) -> dict[str, Any]:
    """Requests from one AsyncClient, `in_flight` at a time, for `seconds`."""
    times: list[float] = []
    async with httpx.AsyncClient(timeout=30) as client:
        await asyncio.gather(*(client.get(url, params=_params(i)) for i in range(in_flight)))
        started = time.perf_counter()

        async def worker(k: int) -> None:
            i = k
            while time.perf_counter() - started < seconds:
                sent = time.perf_counter()
                (await client.get(url, params=_params(i))).raise_for_status()
                times.append(time.perf_counter() - sent)
                i += in_flight

        await asyncio.gather(*(worker(k) for k in range(in_flight)))
        elapsed = time.perf_counter() - started
    return _baseline(f"bare GET /message, {in_flight} at a time", len(times), elapsed, times)


def _baseline(name: str, requests: int, elapsed: float, times: list[float]) -> dict[str, Any]:
    """A baseline's figures."""
    return {
        "name": name,
        "requests": requests,
        "seconds": round(elapsed, 2),
        "per_s": round(requests / elapsed, 1),
        "median_ms": ms(statistics.median(times)),
    }


def drain(workdir: Path, backend: Backend, recipients: Path, rate: float | None) -> Drain:
    """Queue the broadcast into a running app at `rate` (None: no limit), wait until the
    gateway accepted every MT, then check the simulator's record against the database."""
    label = f"BOTKIT_SEND_RATE={rate:g}" if rate else "no rate limit"
    messages = len(recipients.read_text().splitlines()) - 1
    result = Drain(f"drain, {label}", rate, messages)
    name = "limited" if rate else "unlimited"
    with stack(workdir, backend, name, rate or NO_LIMIT) as running:
        groups = {"botkit": [running.app.pid], "simulator": [running.simulator_pid]}
        watcher = Watcher(running)
        watcher.start()
        try:
            with cpu.measuring({**groups, **backend.groups()}) as usage:
                result.broadcast_seconds = broadcast(running, recipients)
                watcher.settled()
        finally:
            watcher.stop()
        result.cpu = usage.figures()
        result.samples = watcher.samples
        result.app_peak_rss_mib = peak_rss_mib(running.app.pid)
        check(running, result)
    return result


def broadcast(running: Stack, recipients: Path) -> float:
    """`botkit broadcast` of the template to the CSV into the app's database; seconds."""
    command = [BOTKIT, "broadcast", "--csv", str(recipients), "--template", TEMPLATE]
    command += ["--db", running.db, "--templates", str(running.workdir / "templates")]
    command += ["--address", "4433"]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=running.cwd)
    if done.returncode != 0:
        raise SystemExit(f"botkit broadcast failed:\n{done.stdout}{done.stderr}")
    return time.perf_counter() - started


class Watcher(threading.Thread):
    """Polls the database for how many MTs the gateway accepted, from its start."""

    def __init__(self, running: Stack) -> None:
        super().__init__(daemon=True)
        self.running = running
        self.samples: list[tuple[float, int]] = []
        self.waiting = 0
        self._halt = threading.Event()
        self.started = time.perf_counter()

    def run(self) -> None:
        with self.running.backend.poller(self.running.db) as rows:
            while not self._halt.is_set():
                [(accepted, self.waiting)] = rows(PROGRESS)
                self.samples.append((time.perf_counter() - self.started, accepted))
                time.sleep(POLL_SECONDS)

    def settled(self) -> None:
        """Wait until the outbox is empty (every MT accepted, failed or uncertain), or
        until nothing moved for STALL_SECONDS (then the checks tell what is missing)."""
        since, seen, moved = time.perf_counter() - self.started, None, time.perf_counter()
        while not self.samples or self.samples[-1][0] <= since or self.waiting:
            now = self.samples[-1][1] if self.samples else 0, self.waiting
            if now != seen:
                seen, moved = now, time.perf_counter()
            elif time.perf_counter() - moved > STALL_SECONDS:
                print(f"stalled: {now[0]} accepted, {now[1]} in the outbox", file=sys.stderr)
                return
            time.sleep(POLL_SECONDS)

    def stop(self) -> None:
        """Stop polling."""
        self._halt.set()
        self.join()


def check(running: Stack, result: Drain) -> None:
    """Count, by reference, how often the simulator took each MT of the database."""
    record = httpx.get(f"{running.gateway}/api/messages", timeout=60).json()["messages"]
    taken = collections.Counter(
        m["reference"] for m in record if REFERENCE.fullmatch(m["reference"] or "")
    )
    rows = partial(running.backend.rows, running.db)
    ours = [r for (r,) in rows("SELECT reference FROM messages WHERE direction = 'mt'")]
    statuses = rows("SELECT status, count(*) FROM messages WHERE direction = 'mt' GROUP BY 1")
    result.statuses = dict(statuses)
    result.sent_once = sum(taken[r] == 1 for r in ours)
    result.missing = sum(taken[r] == 0 for r in ours)
    result.duplicates = sum(max(0, taken[r] - 1) for r in ours)
    result.unexpected = sum(taken.values()) - sum(taken[r] for r in ours)


def report(
    baselines: list[dict[str, Any]],
    drains: list[dict[str, Any]],
    args: argparse.Namespace,
    database: str,
) -> dict[str, Any]:
    """Print the table; return every figure with the machine's and database's
    description."""
    print(
        f"\n{database}.\nMTs queued by `botkit broadcast` into a running app, each drain "
        "with its own simulator\nand fresh database; rates per second, times in seconds; "
        "overall counts from the broadcast's start; dev %: steady/s off config/s\n"
    )
    header = ("measurement", "config/s", "overall/s", "steady/s", "dev %", "best 1s/s", "s")
    header += ("once", "MiB")
    print(f"{header[0]:<36}" + "".join(f"{h:>11}" for h in header[1:]))
    for b in baselines:
        cells = ("-", b["per_s"], "-", "-", "-", b["seconds"], "-", "-")
        print(f"{b['name']:<36}" + "".join(f"{c:>11}" for c in cells))
    for d in drains:
        queueing = f"botkit broadcast, {d['messages']:,} MTs"
        cells = ("-", d["broadcast_per_s"], "-", "-", "-", d["broadcast_seconds"], "-", "-")
        print(f"{queueing:<36}" + "".join(f"{c:>11}" for c in cells))
        cells = (
            d["configured_per_s"] or "-",
            d["overall_per_s"],
            d["steady_per_s"] or "-",
            "-" if d["deviation_pct"] is None else f"{d['deviation_pct']:+.2f}",
            d["peak_1s_per_s"],
            d["all_accepted_s"],
            f"{d['sent_once']}/{d['messages']}",
            d["app_peak_rss_mib"] or "-",
        )
        print(f"{d['name']:<36}" + "".join(f"{c!s:>11}" for c in cells))
    for d in drains:
        print(f"{d['name']}: {cpu.described(d)}")
        if d["duplicates"] or d["missing"] or d["unexpected"]:
            print(
                f"{d['name']}: {d['duplicates']} duplicates, {d['missing']} missing, "
                f"{d['unexpected']} unexpected; statuses {d['statuses']}"
            )
    return {
        "machine": machine(),
        "backend": args.backend,
        "database": database,
        "messages": args.messages,
        "unlimited_messages": args.unlimited_messages,
        "rate": args.rate,
        "baselines": baselines,
        "drains": drains,
    }


if __name__ == "__main__":
    sys.exit(main())
