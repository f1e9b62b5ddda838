"""The MO pipeline under load: callbacks in, replies out, against the limit and the floor.

    python bench/pipeline.py [--rates 100,500,1000] [--duration S] [--handsets N]
                             [--drain S] [--dlrs] [--workdir DIR] [--no-limit]
                             [--no-floor] [--profile DIR] [--backend sqlite|postgresql]
                             [--processes 1,2,3]

At each rate, on loopback: the fake gateway (bench/fakegateway.py) and `botkit run`
serving the hello bot against it, on a fresh database; bench/load.py sends MO callbacks
from many handsets, open loop, for `--duration` seconds, and waits until every stored MO
was handled and every reply sent. Then, from the app's database (which MO each reply
answers) and the gateway's record (when it accepted each reply): throughput, callback
latency, MO-to-MT latency (over the whole load, and over its first and last 10 s),
errors, the app's peak memory, the CPU each part used, and whether every MO answered 200
was stored and replied to. Before botkit at each rate the same load goes to
bench/limit.py's bare endpoint (the limit: accepting an MO) and to bench/floor.py (the
floor: the least a correct pipeline does, replies and all), and botkit's figures are
printed as ratios of theirs. `--dlrs` runs `botkit simulator` as the gateway instead,
with its delivery receipts. Prints a table and writes bench/results/pipeline.json.

`--backend postgresql` runs the same on a throwaway PostgreSQL (bench/backends.py)
with 1, 2 and 3 `botkit run` processes sharing each database, the MO callbacks spread
over them in turn; the limit and the floor (SQLite endpoints) are not measured then.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
import signal
import subprocess
import sys
import tempfile
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import cpu
import fakegateway
import floor
import httpx
import limit
from backends import Backend, Rows, backend_for, unavailable
from common import (
    BOTKIT,
    RESULTS,
    ROOT,
    free_port,
    gateway_env,
    load_options,
    peak_rss_mib,
    process,
    rated,
    save,
    simulator_command,
)
from load import generate, mo_paths
from pipeline_report import report
from replies import drain, outcome

APPLICATION = "bench"
BACKENDS = ("sqlite", "postgresql")
# What each backend measures unless told otherwise: SQLite serves one process.
DEFAULTS = {"sqlite": ([100, 500, 1000], [1]), "postgresql": ([100, 500], [1, 2, 3])}


@dataclass
class Stack:
    """The gateway and the app processes serving the hello bot, wired to each other."""

    app_ports: list[int]
    app_pids: list[int]
    gateway: str  # base URL
    gateway_pid: int
    token: str


def main(argv: list[str] | None = None) -> int:
    """Measure the limit and the pipeline at each rate; print and save the figures."""
    args = _arguments(argv)
    reason = unavailable(args.backend)
    if reason:
        print(f"{args.backend}: skipped, {reason}")
        return 0
    with _workdir(args.workdir) as workdir, backend_for(args.backend, workdir) as backend:
        runs = measure_all(args, backend, workdir)
        results = report(runs, args, backend)
    save(args.results, results)
    return 0


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    """The command line's options."""
    parser = load_options(
        __doc__,
        None,
        drain=True,
        results_help="bench/results/pipeline.json, for PostgreSQL pipeline_postgresql.json",
    )
    rated(parser, help="MOs per second (SQLite: 100,500,1000; PostgreSQL: 100,500)")
    parser.add_argument(
        "--dlrs",
        action="store_true",
        help="send to `botkit simulator`, which sends 3 delivery receipts per reply to the "
        "(first) app as a real gateway would; by default the gateway is bench/fakegateway.py, "
        "which sends none, and the figures are the MO path's",
    )
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default="sqlite",
        help="the app's database: a SQLite file, or a throwaway PostgreSQL cluster with "
        "fsync on (%(default)s)",
    )
    parser.add_argument(
        "--processes",
        type=_counts,
        help="how many `botkit run` processes share the database, one run for each count "
        "(SQLite: 1; PostgreSQL: 1,2,3)",
    )
    parser.add_argument(
        "--no-limit", action="store_true", help="skip the limit's runs (SQLite's only)"
    )
    parser.add_argument(
        "--no-floor", action="store_true", help="skip the floor's runs (SQLite's only)"
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="sample the app with py-spy while it works at each rate, into "
        "DIR/botkit-<rate>.txt (collapsed stacks, for flamegraph.pl or speedscope)",
    )
    parser.add_argument(
        "--workdir", type=Path, help="keep the SQLite databases here (default: a temporary folder)"
    )
    args = parser.parse_args(argv)
    rates, processes = DEFAULTS[args.backend]
    args.rates = args.rates or rates
    args.processes = args.processes or processes
    results = "pipeline.json" if args.backend == "sqlite" else "pipeline_postgresql.json"
    args.results = args.results or RESULTS / results
    if args.backend == "sqlite" and args.processes != [1]:
        parser.error("SQLite serves one app process: --processes takes PostgreSQL")
    return args


def _counts(text: str) -> list[int]:
    """A comma-separated list of process counts, each at least 1."""
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("give process counts, e.g. 1,2,3")
    return values


@contextlib.contextmanager
def _workdir(keep: Path | None) -> Iterator[Path]:
    """`keep`, made if need be, or a temporary folder removed afterwards."""
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        yield keep
        return
    with tempfile.TemporaryDirectory(prefix="botkit-pipeline-") as workdir:
        yield Path(workdir)


def measure_all(args: argparse.Namespace, backend: Backend, workdir: Path) -> list[dict[str, Any]]:
    """At each rate: the limit and the floor (on SQLite, unless told not to), then
    botkit with each number of processes."""
    runs: list[dict[str, Any]] = []
    for rate in args.rates:
        if backend.name == "sqlite" and not args.no_limit:
            runs.append(limit.measure(rate, args.duration, args.handsets, workdir))
        if backend.name == "sqlite" and not args.no_floor:
            runs.append(floor.measure(rate, args.duration, args.handsets, workdir, args.drain))
        runs += [measure(rate, count, args, backend, workdir) for count in args.processes]
    return runs


def label(backend: str, processes: int, rate: float) -> str:
    """A run's name in the table: `botkit at 500/s` for SQLite's single process,
    `postgresql x2 at 500/s` for two processes on PostgreSQL."""
    if backend == "sqlite" and processes == 1:
        return f"botkit at {rate:g}/s"
    return f"{backend} x{processes} at {rate:g}/s"


def measure(
    rate: float, processes: int, args: argparse.Namespace, backend: Backend, workdir: Path
) -> dict[str, Any]:
    """One rate on a fresh database and stack: send the load, wait for the replies,
    gather the figures, and say what limited the run."""
    name = label(backend.name, processes, rate)
    with backend.database(rate) as db, stack(db, processes, args.dlrs, workdir) as running:
        figures = observe(running, partial(backend.rows, db), rate, args, backend, name)
    run = {"name": name, "backend": backend.name, "processes": processes, **figures}
    run["cpu_verdict"] = cpu.verdict(run)
    return run


def observe(
    running: Stack, rows: Rows, rate: float, args: argparse.Namespace, backend: Backend, name: str
) -> dict[str, Any]:
    """Send the load to the running stack and wait until it is answered; the figures
    of the generator, the database, the gateway, the processes' CPU and memory."""
    paths = mo_paths(running.token, round(rate * args.duration), args.handsets)
    groups = {"botkit": running.app_pids, "gateway": [running.gateway_pid]}
    stem = f"botkit-{rate:g}" if name.startswith("botkit") else f"botkit-{name}"
    with profiling(running.app_pids, args.profile, stem):
        # The CPU while the load is offered: the same seconds in every run, where the
        # drain's would differ with what is left to send.
        with cpu.measuring({**groups, **backend.groups()}) as usage:
            load = asyncio.run(generate("127.0.0.1", running.app_ports, paths, rate))
        drained = drain(rows, args.drain)
    rss = _total(peak_rss_mib(pid) for pid in running.app_pids)
    db_mib = backend.memory_mib()
    took = httpx.get(f"{running.gateway}/api/messages", timeout=60).json()["messages"]
    [(mts,)] = rows("SELECT count(*) FROM messages WHERE direction = 'mt'")
    return {
        **load.figures(),
        **outcome(load, paths, replies(rows), took),
        "mts_stored": mts,
        "drained": drained,
        "peak_rss_mib": rss,
        "db_mib": db_mib,
        **usage.figures(),
    }


def _total(values: Iterable[float | None]) -> float | None:
    """The sum of figures, None if any is missing."""
    values = list(values)
    return None if None in values else round(sum(v for v in values if v is not None), 1)


@contextlib.contextmanager
def stack(db: str, processes: int, dlrs: bool, cwd: Path) -> Iterator[Stack]:
    """A gateway and `processes` x `botkit run` (hello bot, database `db`) on free ports,
    sending to the gateway: the fake one, or with `dlrs` `botkit simulator`, the first
    app its callback target; stopped afterwards."""
    app_ports = _free_ports(processes)
    token, password = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    with contextlib.ExitStack() as running:
        url, pid = running.enter_context(_gateway(dlrs, app_ports[0], token, password, cwd))
        # The pipeline, not the rate limit, is measured.
        env = gateway_env(url, APPLICATION, password, token, 1_000_000)
        # cwd: no botkit.toml of this checkout is read.
        apps = [
            running.enter_context(process(_run_command(db, port), _health(port), env=env, cwd=cwd))
            for port in app_ports
        ]
        yield Stack(app_ports, [app.pid for app in apps], url, pid, token)


@contextlib.contextmanager
def _gateway(
    dlrs: bool, app_port: int, token: str, password: str, cwd: Path
) -> Iterator[tuple[str, int]]:
    """The fake gateway, or with `dlrs` a simulator whose callbacks go to the app on
    `app_port`; (base URL, pid)."""
    if not dlrs:
        with fakegateway.running(cwd=cwd) as fake:
            yield fake.url, fake.pid
        return
    port = free_port()
    url, app = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{app_port}"
    command = simulator_command(port, app, token, APPLICATION, password)
    with process(command, f"{url}/api/messages", cwd=cwd) as simulator:
        yield url, simulator.pid


def _health(port: int) -> str:
    """The app's health check on `port`: it answers once the app serves."""
    return f"http://127.0.0.1:{port}/healthz"


def _run_command(db: str, port: int) -> list[str]:
    """`botkit run` serving bots/ and templates/ of this checkout on `port`."""
    run = [BOTKIT, "run", "--db", db, "--host", "127.0.0.1", "--port", str(port)]
    return [*run, "--bots", str(ROOT / "bots"), "--templates", str(ROOT / "templates")]


def _free_ports(count: int) -> list[int]:
    """`count` different free loopback ports."""
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


@contextlib.contextmanager
def profiling(pids: Sequence[int], directory: Path | None, stem: str) -> Iterator[None]:
    """Sample each of `pids` with py-spy (a dev dependency) for the block's duration,
    into `directory`/`stem`.txt (one process) or `stem`-1.txt, -2.txt ...; nothing when
    `directory` is None."""
    if directory is None:
        yield
        return
    directory.mkdir(parents=True, exist_ok=True)
    stem = stem.removesuffix("/s").replace(" at ", "-").replace(" ", "-")  # no spaces
    with contextlib.ExitStack() as samplers:
        for i, pid in enumerate(pids, 1):
            path = directory / (f"{stem}.txt" if len(pids) == 1 else f"{stem}-{i}.txt")
            samplers.enter_context(_sampling(pid, path))
        yield


@contextlib.contextmanager
def _sampling(pid: int, path: Path) -> Iterator[None]:
    """py-spy sampling process `pid` until the block ends, written to `path`."""
    spy = str(Path(sys.executable).parent / "py-spy")
    command = [spy, "record", "--pid", str(pid), "--rate", "200", "--format", "raw"]
    sampler = subprocess.Popen([*command, "--output", str(path)])
    try:
        yield
    finally:
        sampler.send_signal(signal.SIGINT)  # py-spy writes its file when interrupted
        sampler.wait(60)
        print(f"profile of the app written to {path}")


def replies(rows: Rows) -> list[tuple[int, int | None]]:
    """(MO gateway id, gateway id of its reply or None) for each stored MO.

    A handset's MOs are handled one at a time in the order they were stored (by any of
    the processes), and a handled MO's reply is stored in the same transaction: so the
    handset's handled MOs and its MTs, each in id order, pair up one to one."""
    mos: dict[str, list[tuple[int, bool]]] = defaultdict(list)
    mts: dict[str, list[int]] = defaultdict(list)
    for direction, handset, gateway_id, status in rows(
        "SELECT direction, handset, gateway_id, status FROM messages ORDER BY id"
    ):
        if direction == "mt":
            mts[handset].append(gateway_id)
        else:
            mos[handset].append((gateway_id, status == "handled"))
    pairs = []
    for handset, stored in mos.items():
        answers = iter(mts[handset])
        pairs += [(mo, next(answers, None) if handled else None) for mo, handled in stored]
    return pairs


if __name__ == "__main__":
    sys.exit(main())
