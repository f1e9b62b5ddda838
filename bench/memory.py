"""Whether botkit's memory stays flat under a steady load: its RSS through a long run.

    python bench/memory.py [--rate 100] [--duration 600] [--first 60] [--sample 10]
                           [--handsets 1000]

`botkit run` (the hello bot, a fresh SQLite file, replies to the fake gateway) gets MO
callbacks open loop at `--rate` a second for `--duration` seconds (bench/load.py), a rate
it keeps up with; a thread reads the app's resident memory (VmRSS) every `--sample`
seconds. The figure: the RSS at the end of the load over the RSS at `--first` seconds
(minute one, once start-up and the first allocations are behind it); issue 15's target
is 1.10 or less. Beside it, the peak, the series, and the run's replies and MO-to-MT
latency over its first and last 10 s: a flat memory is only healthy if the app kept up.
A short run (`--duration 5 --first 1 --sample 0.5`) checks that the script works.
Writes bench/results/memory.json.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import threading
import time
from functools import partial
from pathlib import Path
from typing import Any

import cpu
import httpx
import pipeline
from backends import Sqlite
from common import load_options, machine, peak_rss_mib, rss_mib, save
from load import generate, mo_paths
from replies import drain, outcome

LINES = 10  # rows of the printed series, at most


class Sampler(threading.Thread):
    """Reads a process's RSS every `every` seconds, from its start until stopped."""

    def __init__(self, pid: int, every: float) -> None:
        super().__init__(daemon=True)
        self.pid, self.every = pid, every
        self.samples: list[tuple[float, float]] = []  # (seconds since the start, MiB)
        self._halt = threading.Event()
        self.started = time.monotonic()

    def run(self) -> None:
        while True:
            self.sample()
            if self._halt.wait(self.every):
                return

    def sample(self) -> None:
        rss = rss_mib(self.pid)
        if rss is not None:
            self.samples.append((round(time.monotonic() - self.started, 2), rss))

    def stop(self) -> None:
        """Stop sampling, with a last sample now."""
        self._halt.set()
        self.join()
        self.sample()

    def at(self, seconds: float) -> float:
        """The RSS sampled nearest to `seconds` after the start."""
        return min(self.samples, key=lambda sample: abs(sample[0] - seconds))[1]


def measure(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Run the load against a fresh app while sampling its RSS; the figures."""
    database = Sqlite(workdir)
    with (
        database.database(args.rate, "memory") as db,
        pipeline.stack(db, 1, False, workdir) as running,
    ):
        paths = mo_paths(running.token, round(args.rate * args.duration), args.handsets)
        pid = running.app_pids[0]
        sampler = Sampler(pid, args.sample)
        sampler.start()
        groups = {"botkit": running.app_pids, "gateway": [running.gateway_pid]}
        try:
            with cpu.measuring(groups) as usage:
                load = asyncio.run(generate("127.0.0.1", running.app_ports, paths, args.rate))
        finally:
            sampler.stop()
        rows = partial(database.rows, db)
        drained = drain(rows, args.drain)
        took = httpx.get(f"{running.gateway}/api/messages", timeout=60).json()["messages"]
        peak = peak_rss_mib(pid)
        figures = outcome(load, paths, pipeline.replies(rows), took)
    first, end = sampler.at(args.first), sampler.samples[-1][1]
    return {
        "name": f"botkit at {args.rate:g}/s for {args.duration:g} s",
        **load.figures(),
        **figures,
        "drained": drained,
        "rss_first_mib": first,
        "rss_first_at_s": args.first,
        "rss_end_mib": end,
        "rss_end_at_s": sampler.samples[-1][0],
        "rss_growth": round(end / first, 3),
        "peak_rss_mib": peak,
        "rss_samples": sampler.samples,
        **usage.figures(),
    }


def report(run: dict[str, Any]) -> None:
    """Print the RSS at minute one and at the end, the series, and the replies."""
    print(
        f"\n{run['name']}: {run['ok']}/{run['sent']} MO callbacks answered 200, "
        f"{run['replies']} replies ({run['replies_per_s']}/s), MO>MT p99 "
        f"{run['mo_to_mt_p99_ms']} ms (first {run['window_s']:g} s: "
        f"{run['mo_to_mt_first_p99_ms']} ms, last: {run['mo_to_mt_last_p99_ms']} ms)"
    )
    print(
        f"RSS {run['rss_first_mib']} MiB at {run['rss_first_at_s']:g} s, "
        f"{run['rss_end_mib']} MiB at the end ({run['rss_end_at_s']:g} s): "
        f"{run['rss_growth']:.3f}x; peak {run['peak_rss_mib']} MiB\n"
    )
    samples = run["rss_samples"]
    step = max(1, len(samples) // LINES)
    shown = samples[::step] + ([samples[-1]] if (len(samples) - 1) % step else [])
    print(f"{'seconds':>8} {'RSS MiB':>8}")
    for seconds, mib in shown:
        print(f"{seconds:>8g} {mib:>8}")
    print(cpu.described(run))
    if run["unanswered"] or not run["drained"]:
        print(f"{run['unanswered']} MOs without a reply (drained: {run['drained']})")


def main(argv: list[str] | None = None) -> int:
    """Measure, print and save the figures."""
    args = _arguments(argv)
    with tempfile.TemporaryDirectory(prefix="botkit-memory-") as workdir:
        run = measure(args, Path(workdir))
    report(run)
    save(args.results, {"machine": machine(), "handsets": args.handsets, "runs": [run]})
    return 0


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    """The command line's options."""
    parser = load_options(__doc__, "memory.json", drain=True)
    parser.add_argument("--rate", type=float, default=100.0, help="MOs per second (%(default)s)")
    parser.add_argument(
        "--duration", type=float, default=600.0, help="seconds of load (%(default)s)"
    )
    parser.add_argument(
        "--first",
        type=float,
        default=60.0,
        help="the RSS at this many seconds is the baseline (%(default)s)",
    )
    parser.add_argument(
        "--sample", type=float, default=10.0, help="seconds between RSS samples (%(default)s)"
    )
    args = parser.parse_args(argv)
    if not 0 < args.first < args.duration:
        parser.error("--first must fall within --duration")
    return args


if __name__ == "__main__":
    sys.exit(main())
