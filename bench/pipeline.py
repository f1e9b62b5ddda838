"""The MO pipeline under load: callbacks in, replies out, against the stack's limit.

    python bench/pipeline.py [--rates 100,500,1000] [--duration S] [--handsets N]
                             [--drain S] [--dlrs] [--workdir DIR] [--no-limit]
                             [--profile DIR]

At each rate, on loopback: `botkit simulator` as the gateway and `botkit run` serving the
hello bot against it, on a fresh database; bench/load.py sends MO callbacks from many
handsets, open loop, for `--duration` seconds, and waits until every stored MO was
handled and every reply sent. Then, from the app's database (which MO each reply
answers) and the simulator's record (when it accepted each reply): throughput, callback
latency, MO-to-MT latency, errors, the app's peak memory, and whether every MO answered
200 was stored and replied to. Before each rate the same load goes to bench/limit.py's
bare endpoint, the limit, and botkit's figures are printed as a ratio of it. Prints a
table and writes bench/results/pipeline.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import secrets
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import limit
from common import (
    BOTKIT,
    ROOT,
    free_port,
    gateway_env,
    machine,
    ms,
    peak_rss_mib,
    percentile,
    process,
    simulator_command,
)
from load import Load, generate, mo_paths

POLL = 0.25  # seconds between looks at the app's queues while it drains
APPLICATION = "bench"


@dataclass
class Stack:
    """The simulator and the app serving the hello bot, wired to each other."""

    app_port: int
    app_pid: int
    simulator: str  # base URL
    token: str
    db: Path


def main(argv: list[str] | None = None) -> int:
    """Measure the limit and the pipeline at each rate; print and save the figures."""
    args = _arguments(argv)
    if args.simulator:
        serve_simulator(args.simulator, args.password)
        return 0
    runs: list[dict[str, Any]] = []
    with _workdir(args.workdir) as workdir:
        for rate in args.rates:
            if not args.no_limit:
                runs.append(limit.measure(rate, args.duration, args.handsets, workdir))
            runs.append(measure(rate, args, workdir))
    results = report(runs, args)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(results, indent=2) + "\n")
    print(f"figures written to {args.results}")
    return 0


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    """The command line's options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rates", type=limit.rates, default=[100, 500, 1000], help="MOs per second (100,500,1000)"
    )
    parser.add_argument(
        "--duration", type=float, default=10.0, help="seconds at each rate (%(default)s)"
    )
    parser.add_argument("--handsets", type=int, default=1000, help="handsets texting (%(default)s)")
    parser.add_argument(
        "--drain",
        type=float,
        default=120.0,
        help="seconds the app may take, after the load, to handle and answer it (%(default)s)",
    )
    parser.add_argument(
        "--dlrs",
        action="store_true",
        help="run `botkit simulator` itself, which sends 3 delivery receipts per reply to "
        "the app as a real gateway would; by default the simulator sends none, and the "
        "figures are the MO path's",
    )
    parser.add_argument("--no-limit", action="store_true", help="skip the limit's runs")
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="sample the app with py-spy while it works at each rate, into "
        "DIR/botkit-<rate>.txt (collapsed stacks, for flamegraph.pl or speedscope)",
    )
    parser.add_argument(
        "--workdir", type=Path, help="keep the databases here (default: a temporary folder)"
    )
    parser.add_argument(
        "--results",
        type=Path,
        default=ROOT / "bench" / "results" / "pipeline.json",
        help="where the figures go (%(default)s)",
    )
    parser.add_argument("--simulator", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--password", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def serve_simulator(port: int, password: str) -> None:
    """What `botkit simulator` runs (botkit/commands/simulator.py), but with no delivery
    receipts: at hundreds of MTs a second, its callback client's queue of receipts grows
    without bound and the simulator spends its time there, slowing the MTs it accepts
    until the app's sends time out."""
    import uvicorn

    from botkit.logs import setup_logging
    from botkit.simulator import Simulator

    setup_logging()
    simulator = Simulator(application=APPLICATION, password=password, fate=())
    uvicorn.run(simulator.app, host="127.0.0.1", port=port, access_log=False, log_config=None)


@contextlib.contextmanager
def _workdir(keep: Path | None) -> Iterator[Path]:
    """`keep`, made if need be, or a temporary folder removed afterwards."""
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        yield keep
        return
    with tempfile.TemporaryDirectory(prefix="botkit-pipeline-") as workdir:
        yield Path(workdir)


def measure(rate: float, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """One rate on a fresh stack: send the load, wait for the replies, gather figures."""
    db = workdir / f"pipeline-{rate:g}.db"
    for leftover in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
        leftover.unlink(missing_ok=True)
    with stack(db, args.dlrs) as running:
        paths = mo_paths(running.token, round(rate * args.duration), args.handsets)
        with profiling(running.app_pid, args.profile, f"botkit-{rate:g}.txt"):
            load = asyncio.run(generate("127.0.0.1", running.app_port, paths, rate))
            drained = drain(db, args.drain)
        rss = peak_rss_mib(running.app_pid)
        pairs = replies(db)
        accepted = accepted_at(running.simulator, {handset for handset, _, _ in pairs})
        took = httpx.get(f"{running.simulator}/api/messages", timeout=60).json()["messages"]
    return {
        "name": f"botkit at {rate:g}/s",
        **load.figures(),
        **outcome(load, paths, db, pairs, accepted, took),
        "drained": drained,
        "peak_rss_mib": rss,
    }


@contextlib.contextmanager
def stack(db: Path, dlrs: bool) -> Iterator[Stack]:
    """`botkit simulator` and `botkit run` (hello bot, database `db`) on free ports,
    each the other's gateway and callback target; stopped afterwards."""
    sim_port, app_port = free_port(), free_port()
    simulator, app = f"http://127.0.0.1:{sim_port}", f"http://127.0.0.1:{app_port}"
    token, password = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    if dlrs:
        sim = simulator_command(sim_port, app, token, APPLICATION, password)
    else:
        sim = [sys.executable, __file__, "--simulator", str(sim_port), f"--password={password}"]
    run = [BOTKIT, "run", "--db", str(db), "--host", "127.0.0.1", "--port", str(app_port)]
    run += ["--bots", str(ROOT / "bots"), "--templates", str(ROOT / "templates")]
    # The pipeline, not the rate limit, is measured.
    env = gateway_env(simulator, APPLICATION, password, token, 1_000_000)
    # cwd: no botkit.toml of this checkout is read.
    with (
        process(sim, f"{simulator}/api/messages", cwd=db.parent),
        process(run, f"{app}/healthz", env=env, cwd=db.parent) as served,
    ):
        yield Stack(app_port, served.pid, simulator, token, db)


@contextlib.contextmanager
def profiling(pid: int, directory: Path | None, name: str) -> Iterator[None]:
    """Sample process `pid` with py-spy (a dev dependency) for the block's duration, into
    `directory`/`name`; nothing when `directory` is None."""
    if directory is None:
        yield
        return
    directory.mkdir(parents=True, exist_ok=True)
    spy = str(Path(sys.executable).parent / "py-spy")
    command = [spy, "record", "--pid", str(pid), "--rate", "200", "--format", "raw"]
    sampler = subprocess.Popen([*command, "--output", str(directory / name)])
    try:
        yield
    finally:
        sampler.send_signal(signal.SIGINT)  # py-spy writes its file when interrupted
        sampler.wait(60)
        print(f"profile of the app written to {directory / name}")


def drain(db: Path, timeout: float) -> bool:
    """Wait until the app's inbox and outbox are empty (every MO handled, every reply
    sent), at most `timeout` seconds; whether they were."""
    deadline = time.monotonic() + timeout
    with contextlib.closing(sqlite3.connect(db, timeout=30)) as conn:
        while time.monotonic() < deadline:
            inbox, outbox = conn.execute(
                "SELECT (SELECT count(*) FROM inbox), (SELECT count(*) FROM outbox)"
            ).fetchone()
            if inbox == outbox == 0:
                return True
            time.sleep(POLL)
    return False


def replies(db: Path) -> list[tuple[str, int, int | None]]:
    """(handset, MO gateway id, gateway id of its reply or None) for each stored MO.

    A handset's MOs are handled one at a time in the order they were stored, and a
    handled MO's reply is stored in the same transaction: so the handset's handled MOs
    and its MTs, each in id order, pair up one to one."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        rows = conn.execute(
            "SELECT direction, handset, gateway_id, status FROM messages ORDER BY id"
        ).fetchall()
    mos: dict[str, list[tuple[int, bool]]] = defaultdict(list)
    mts: dict[str, list[int]] = defaultdict(list)
    for direction, handset, gateway_id, status in rows:
        if direction == "mt":
            mts[handset].append(gateway_id)
        else:
            mos[handset].append((gateway_id, status == "handled"))
    pairs = []
    for handset, stored in mos.items():
        answers = iter(mts[handset])
        pairs += [(handset, mo, next(answers, None) if handled else None) for mo, handled in stored]
    return pairs


def accepted_at(simulator: str, handsets: set[str]) -> dict[int, float]:
    """When the simulator accepted each MT to `handsets` (time.time()), by gateway id:
    from its phone API, one handset at a time."""
    accepted: dict[int, float] = {}
    with httpx.Client(base_url=simulator, timeout=60) as client:
        for handset in handsets:
            response = client.get(f"/api/handsets/{quote(handset)}")
            response.raise_for_status()
            for message in response.json()["messages"]:
                if message["direction"] == "mt":
                    accepted[int(message["id"])] = message["at"]
    return accepted


def outcome(
    load: Load,
    paths: list[str],
    db: Path,
    pairs: list[tuple[str, int, int | None]],
    accepted: dict[int, float],
    took: list[dict[str, Any]],
) -> dict[str, Any]:
    """Whether every MO answered 200 was stored and replied to, and the MO-to-MT latency
    (from the moment the MO was due to the simulator accepting its reply)."""
    sent_at = {_gateway_id(paths[i]): load.started_wall + load.due[i] for i in range(len(paths))}
    answered = {_gateway_id(paths[i]) for i in load.ok}
    stored = {mo for _, mo, _ in pairs}
    replied = {mo: mt for _, mo, mt in pairs if mt is not None}
    latency = [accepted[mt] - sent_at[mo] for mo, mt in replied.items() if mt in accepted]
    first = load.started_wall
    last = max(accepted.values(), default=None)
    with contextlib.closing(sqlite3.connect(db)) as conn:
        mts = conn.execute("SELECT count(*) FROM messages WHERE direction = 'mt'").fetchone()[0]
    return {
        "stored": len(stored),
        "replies": len(replied),
        "lost": len(answered - stored),
        "unanswered": len(answered - replied.keys()),
        "simulator_took": len(took),
        "simulator_duplicates": len(took) - len({m["reference"] for m in took}),
        "mts_stored": mts,
        "replies_per_s": round(len(accepted) / (last - first), 1) if last else 0.0,
        "mo_to_mt_p50_ms": ms(percentile(latency, 50)) if latency else None,
        "mo_to_mt_p99_ms": ms(percentile(latency, 99)) if latency else None,
    }


def _gateway_id(path: str) -> int:
    """The `id` of an MO callback's path (its first parameter)."""
    return int(path.split("?id=", 1)[1].split("&", 1)[0])


COLUMNS = (
    ("measurement", "name", 18, ""),
    ("sent", "sent", 7, "d"),
    ("200", "ok", 7, "d"),
    ("errors", "errors", 7, "d"),
    ("200/s", "throughput_per_s", 8, ".1f"),
    ("x limit", "x_limit", 8, ".2f"),
    ("p50 ms", "latency_p50_ms", 9, ".1f"),
    ("p99 ms", "latency_p99_ms", 9, ".1f"),
    ("p50 x", "x_limit_p50", 7, ".1f"),
    ("replies", "replies", 8, "d"),
    ("MT/s", "replies_per_s", 8, ".1f"),
    ("MO>MT p50", "mo_to_mt_p50_ms", 10, ".1f"),
    ("MO>MT p99", "mo_to_mt_p99_ms", 10, ".1f"),
    ("lag p99", "lag_p99_ms", 8, ".1f"),
    ("MiB", "peak_rss_mib", 7, ".0f"),
)


def report(runs: list[dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    """Print the table (botkit's throughput and p50 latency as ratios of the limit's at
    the same rate); return every figure with the machine's description."""
    limits = {run["offered_per_s"]: run for run in runs if run["name"].startswith("limit")}
    for run in runs:
        base = limits.get(run["offered_per_s"])
        if run["name"].startswith("botkit") and base:
            run["x_limit"] = _ratio(run["throughput_per_s"], base["throughput_per_s"])
            run["x_limit_p50"] = _ratio(run["latency_p50_ms"], base["latency_p50_ms"])
    print(
        f"\nMO callbacks from {args.handsets} handsets, open loop, {args.duration:g} s at each "
        "rate; latency from the moment each MO was due; MO>MT until the simulator accepted "
        "its reply; x limit: botkit over the bare endpoint at the same rate; lag: how late "
        "the generator sent; MiB: the server's peak RSS\n"
    )
    print("".join(_cell(title, width, fmt and "s") for title, _, width, fmt in COLUMNS))
    for run in runs:
        print("".join(_cell(run.get(key), width, fmt) for _, key, width, fmt in COLUMNS))
    for run in runs:
        if run["name"].startswith("botkit") and (run["lost"] or run["unanswered"]):
            print(
                f"{run['name']}: {run['lost']} MOs answered 200 but not stored, "
                f"{run['unanswered']} without a reply (drained: {run['drained']})"
            )
        if run["errors"]:
            print(f"{run['name']}: errors {run['error_kinds']}")
    return {
        "machine": machine(),
        "handsets": args.handsets,
        "duration_s": args.duration,
        "dlrs_to_app": args.dlrs,
        "runs": runs,
    }


def _ratio(value: float | None, base: float | None) -> float | None:
    return round(value / base, 2) if value is not None and base else None


def _cell(value: Any, width: int, fmt: str) -> str:
    """A table cell: text left-aligned, numbers right-aligned, '-' for no figure."""
    if not fmt:
        return f"{value:<{width}}"
    return f"{'-':>{width}}" if value is None else f"{value:>{width}{fmt}}"


if __name__ == "__main__":
    sys.exit(main())
