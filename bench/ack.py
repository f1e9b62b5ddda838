"""Callback acknowledgement: how many MO callbacks a second botkit answers, closed loop.

    python bench/ack.py [--connections 32] [--duration 10] [--handsets 1000] [--profile DIR]

`--connections` clients (bench/load.py's closed loop), each sending its next MO callback
as soon as its last was answered, for `--duration` seconds: first to bench/limit.py's
bare endpoint (one INSERT and commit a request, botkit's uvicorn options and pragmas),
then to `botkit run` in its real configuration (the hello bot, handling each MO and
sending its reply to the fake gateway, bench/fakegateway.py, while the callbacks come).
Prints each one's callbacks answered 200 a second and latency, and botkit's rate as a
ratio of the limit's (issue 15's target: 0.5 or more). The replies are not waited for
(a closed loop outruns them: that is pipeline.py's business); every MO answered 200 must
be stored. Writes bench/results/ack.json.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path
from typing import Any

import cpu
import httpx
import limit
import pipeline
from backends import Sqlite
from common import load_options, machine, peak_rss_mib, save
from load import closed_loop, mo_paths

# Paths are made beforehand: enough for this many callbacks a second (the run ends early,
# and says so, if a server answers faster).
MOST_PER_S = 5000


def main(argv: list[str] | None = None) -> int:
    """Measure the limit and botkit closed loop; print and save the figures."""
    args = _arguments(argv)
    with tempfile.TemporaryDirectory(prefix="botkit-ack-") as workdir:
        runs = [measure_limit(args, Path(workdir)), measure_botkit(args, Path(workdir))]
    runs[1]["x_limit"] = round(runs[1]["throughput_per_s"] / runs[0]["throughput_per_s"], 2)
    report(runs, args)
    figures = {
        "machine": machine(),
        "connections": args.connections,
        "duration_s": args.duration,
        "handsets": args.handsets,
        "runs": runs,
    }
    save(args.results, figures)
    return 0 if all(run["lost"] == 0 for run in runs) else 1


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    """The command line's options."""
    parser = load_options(__doc__, "ack.json")
    parser.add_argument(
        "--connections", type=int, default=32, help="clients, each waiting for its answer "
        "before the next callback (%(default)s)",
    )  # fmt: skip
    parser.add_argument("--duration", type=float, default=10.0, help="seconds (%(default)s)")
    parser.add_argument(
        "--profile", type=Path, metavar="DIR", help="sample botkit with py-spy meanwhile, "
        "into DIR/ack.txt (flamegraph's collapsed stacks)",
    )  # fmt: skip
    return parser.parse_args(argv)


def drive(
    name: str, token: str, port: int, groups: dict[str, list[int]], args: argparse.Namespace
) -> dict[str, Any]:
    """The closed loop to the server on `port`: the generator's figures and the CPU
    `groups` used meanwhile."""
    paths = mo_paths(token, round(MOST_PER_S * args.duration), args.handsets)
    with cpu.measuring(groups) as usage:
        load = asyncio.run(closed_loop("127.0.0.1", [port], paths, args.connections, args.duration))
    return {
        "name": name,
        **load.figures(),
        "ran_out": len(load.due) == len(paths),
        **usage.figures(),
    }


def stored(run: dict[str, Any], count: int, rss: float | None) -> dict[str, Any]:
    """`run` with whether each MO answered 200 was stored (`count` were), and the
    server's peak memory."""
    return {**run, "stored": count, "lost": max(0, run["ok"] - count), "peak_rss_mib": rss}


def measure_limit(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """The bare endpoint, closed loop."""
    database = Sqlite(workdir)
    name = f"limit, {args.connections} clients"
    with database.database(0, "limit") as db, limit.serving(Path(db)) as (port, pid):
        run = drive(name, limit.TOKEN, port, {"limit": [pid]}, args)
        rss = peak_rss_mib(pid)
    [(count,)] = database.rows(db, "SELECT count(*) FROM mo")
    return stored(run, count, rss)


def measure_botkit(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """botkit with the hello bot, replying through the fake gateway, closed loop."""
    database = Sqlite(workdir)
    with database.database(0, "botkit") as db, pipeline.stack(db, 1, False, workdir) as running:
        groups = {"botkit": running.app_pids, "gateway": [running.gateway_pid]}
        name = f"botkit, {args.connections} clients"
        with pipeline.profiling(running.app_pids, args.profile, "ack"):
            run = drive(name, running.token, running.app_ports[0], groups, args)
        rss = peak_rss_mib(running.app_pids[0])
        replies = httpx.get(f"{running.gateway}/api/count", timeout=60).json()["accepted"]
    [(count,)] = database.rows(db, "SELECT count(*) FROM messages WHERE direction = 'mo'")
    return {**stored(run, count, rss), "replies_during": replies}


def report(runs: list[dict[str, Any]], args: argparse.Namespace) -> None:
    """Print the table."""
    print(
        f"\nMO callbacks, closed loop: {args.connections} clients, each sending its next "
        f"as soon as its last was answered, {args.duration:g} s; latency from each send; "
        "replies: those the gateway took meanwhile; CPU %: the machine's cores busy; "
        "other: the part of that not the benchmark's\n"
    )
    header = ("measurement", "200", "errors", "200/s", "x limit", "p50 ms", "p99 ms")
    header += ("replies", "MiB", "CPU %", "other")
    print(f"{header[0]:<24}" + "".join(f"{h:>9}" for h in header[1:]))
    for run in runs:
        cells = (
            run["ok"], run["errors"], run["throughput_per_s"], run.get("x_limit", "-"),
            run["latency_p50_ms"], run["latency_p99_ms"], run.get("replies_during", "-"),
            run["peak_rss_mib"], run["cpu_busy_pct"], run["cpu_other_pct"],
        )  # fmt: skip
        print(f"{run['name']:<24}" + "".join(f"{c!s:>9}" for c in cells))
    for run in runs:
        print(f"{run['name']}: {cpu.described(run)}")
        if run["lost"] or run["errors"]:
            print(f"{run['name']}: {run['lost']} answered 200 not stored, {run['errors']} errors")
        if run["ran_out"]:
            print(f"{run['name']}: answered every callback made ready; raise MOST_PER_S")


if __name__ == "__main__":
    sys.exit(main())
