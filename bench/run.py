"""Every benchmark, one after another, one table of all their figures, and the targets.

    python bench/run.py [--results DIR] [--only NAME,...] [--merge-only]

Runs bench/dashboard.py, bench/pipeline.py (with the limit and the floor), the pipeline
again on PostgreSQL with 1, 2 and 3 app processes, bench/outbound.py on both backends,
bench/ack.py, the pipeline at 500 MO/s for 60 s (the backlog) and bench/memory.py (10
minutes) at their full sizes, each writing DIR/<name>.json; then merges those into
DIR/latest.json, with the machine they ran on, and prints one table, the PostgreSQL
pipeline beside SQLite's under it, and last issue 15's targets (bench/targets.py): each
figure with its baseline from the same run, their ratio, and whether it is met.
`--only` runs the benchmarks named (the others' results already in DIR are merged as
they are); `--merge-only` merges and prints the results already in DIR without running
anything.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import targets
from common import ROOT, machine
from pipeline_report import beside

# Each benchmark's name (of its results): its module, and the options it runs with.
BENCHMARKS = {
    "dashboard": ("dashboard", []),
    "pipeline": ("pipeline", []),
    "pipeline_postgresql": ("pipeline", ["--backend", "postgresql"]),
    "outbound": ("outbound", []),
    "outbound_postgresql": ("outbound", ["--backend", "postgresql"]),
    "ack": ("ack", []),
    # No backlog: MO>MT over the first and last 10 s of a minute at 500 MO/s.
    "backlog": (
        "pipeline",
        ["--rates", "500", "--duration", "60", "--no-limit", "--no-floor", "--drain", "60"],
    ),
    "memory": ("memory", []),
}
HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks there are, merge their results, print the table."""
    args = _arguments(argv)
    failed = []
    if not args.merge_only:
        failed = [name for name in args.only if not run(name, args.results)]
    merged = merge(args.results)
    (args.results / "latest.json").write_text(json.dumps(merged, indent=2) + "\n")
    print("\n".join(table(merged["benchmarks"])))
    print("\n".join(backend_comparison(merged["benchmarks"])))
    print("\n" + "\n".join(targets.table(merged["benchmarks"])))
    print(f"\nall figures in {args.results / 'latest.json'}")
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


def run(name: str, results: Path) -> bool:
    """Run one benchmark into `results`/<name>.json; whether it succeeded (or was
    skipped, its module missing)."""
    module, options = BENCHMARKS[name]
    if not (HERE / f"{module}.py").exists():
        print(f"== {name}: bench/{module}.py is not there, skipped")
        return True
    print(f"== {name}", flush=True)
    started = time.perf_counter()
    try:
        code = importlib.import_module(module).main(
            [*options, "--results", str(results / f"{name}.json")]
        )
    except SystemExit as stopped:  # a server that would not start, ...
        print(stopped.code if isinstance(stopped.code, str) else "", flush=True)
        code = 1 if isinstance(stopped.code, str) else stopped.code
    except Exception:  # one broken benchmark does not cost the others' figures
        traceback.print_exc()
        code = 1
    print(f"== {name}: {time.perf_counter() - started:.0f} s, exit {code}\n", flush=True)
    return not code


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    """The command line's options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--results",
        type=Path,
        default=ROOT / "bench" / "results",
        help="where each benchmark's figures and latest.json go (%(default)s)",
    )
    parser.add_argument(
        "--only",
        type=_names,
        default=list(BENCHMARKS),
        metavar="NAME,...",
        help=f"run these benchmarks only, of: {', '.join(BENCHMARKS)}",
    )
    parser.add_argument(
        "--merge-only", action="store_true", help="merge the figures already there; run nothing"
    )
    return parser.parse_args(argv)


def _names(text: str) -> list[str]:
    """A comma-separated list of benchmarks' names, in BENCHMARKS' order."""
    names = {part.strip() for part in text.split(",") if part.strip()}
    if unknown := names - BENCHMARKS.keys():
        raise argparse.ArgumentTypeError(f"no benchmark {', '.join(sorted(unknown))}")
    return [name for name in BENCHMARKS if name in names]


def merge(results: Path) -> dict[str, Any]:
    """Every benchmark's figures found in `results`, under its name, with the machine."""
    found = {}
    for name in BENCHMARKS:
        path = results / f"{name}.json"
        if path.exists():
            found[name] = json.loads(path.read_text())
    return {
        "machine": machine(),
        "merged_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "benchmarks": found,
    }


def table(benchmarks: dict[str, Any]) -> list[str]:
    """One line per measurement: benchmark, measurement, its main figures."""
    lines = [f"{'benchmark':<21}{'measurement':<40}figures", "-" * 120]
    for name, results in benchmarks.items():
        summarise = SUMMARIES.get(name, _generic)
        lines += [f"{name:<21}{what:<40}{figures}" for what, figures in summarise(results)]
    return lines


def backend_comparison(benchmarks: dict[str, Any]) -> list[str]:
    """The PostgreSQL pipeline beside SQLite's, when it ran."""
    if "pipeline_postgresql" not in benchmarks:
        return []
    return ["", *beside(benchmarks.get("pipeline"), benchmarks["pipeline_postgresql"])]


def _dashboard(results: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (
            m["name"][:39],
            f"median {m['median_ms']} ms, p95 {m['p95_ms']} ms, {m['x_healthz']}x healthz",
        )
        for m in results["measurements"]
    ]


def _pipeline(results: dict[str, Any]) -> list[tuple[str, str]]:
    rows = []
    for run in results["runs"]:
        text = (
            f"{run['ok']}/{run['sent']} answered 200, {run['throughput_per_s']}/s"
            f"{_x(run.get('x_limit'))}, p50 {run['latency_p50_ms']} ms"
            f"{_x(run.get('x_limit_p50'))}, p99 {run['latency_p99_ms']} ms"
        )
        if "replies" in run:
            text += (
                f"; {run['replies']} replies, {run['replies_per_s']}/s"
                f"{_x(run.get('x_floor'), 'floor')}, MO>MT p50 {run['mo_to_mt_p50_ms']} ms, "
                f"p99 {run['mo_to_mt_p99_ms']} ms{_x(run.get('x_floor_p99'), 'floor')} "
                f"(first {run['window_s']:g} s {run['mo_to_mt_first_p99_ms']} ms, "
                f"last {run['mo_to_mt_last_p99_ms']} ms)"
            )
        text += f"; {run['peak_rss_mib']} MiB"
        if "cpu_busy_pct" in run:
            text += f", CPU {run['cpu_busy_pct']}%"
        rows.append((run["name"], text))
    return rows


def _x(ratio: float | None, of: str = "limit") -> str:
    return "" if ratio is None else f" ({ratio}x {of})"


def _outbound(results: dict[str, Any]) -> list[tuple[str, str]]:
    rows = [
        (b["name"], f"{b['per_s']}/s, median {b['median_ms']} ms") for b in results["baselines"]
    ]
    for d in results["drains"]:
        deviation = "" if d["deviation_pct"] is None else f" ({d['deviation_pct']:+}%)"
        rows.append(
            (
                d["name"],
                f"{d['messages']} MTs, overall {d['overall_per_s']}/s, steady "
                f"{d['steady_per_s']}/s{deviation}, {d['sent_once']} sent once; "
                f"{d['app_peak_rss_mib']} MiB",
            )
        )
    return rows


def _ack(results: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (
            run["name"],
            f"{run['ok']} answered 200, {run['throughput_per_s']}/s{_x(run.get('x_limit'))}, "
            f"p50 {run['latency_p50_ms']} ms, p99 {run['latency_p99_ms']} ms; "
            f"{run['peak_rss_mib']} MiB, CPU {run['cpu_busy_pct']}%",
        )
        for run in results["runs"]
    ]


def _memory(results: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (
            run["name"],
            f"RSS {run['rss_first_mib']} MiB at {run['rss_first_at_s']:g} s, "
            f"{run['rss_end_mib']} MiB at {run['rss_end_at_s']:g} s ({run['rss_growth']}x), "
            f"peak {run['peak_rss_mib']} MiB; {run['replies']} replies, MO>MT p99 "
            f"{run['mo_to_mt_p99_ms']} ms",
        )
        for run in results["runs"]
    ]


def _generic(results: dict[str, Any]) -> list[tuple[str, str]]:
    """Any list of named measurements in the results, with their numeric figures."""
    rows = []
    for value in results.values():
        if not isinstance(value, list):
            continue
        for item in value:
            if isinstance(item, dict) and "name" in item:
                numbers = [
                    f"{key} {figure}"
                    for key, figure in item.items()
                    if isinstance(figure, int | float) and not isinstance(figure, bool)
                ]
                rows.append((str(item["name"])[:39], ", ".join(numbers[:6])))
    return rows


SUMMARIES = {
    "dashboard": _dashboard,
    "pipeline": _pipeline,
    "pipeline_postgresql": _pipeline,
    "outbound": _outbound,
    "outbound_postgresql": _outbound,
    "ack": _ack,
    "backlog": _pipeline,
    "memory": _memory,
}


if __name__ == "__main__":
    sys.exit(main())
