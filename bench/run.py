"""Every benchmark, one after another, and one table of all their figures.

    python bench/run.py [--results DIR] [--merge-only]

Runs bench/dashboard.py, bench/pipeline.py (with the limit), the pipeline again on
PostgreSQL with 1, 2 and 3 app processes, and bench/outbound.py (when it is there) at
their full sizes, each writing DIR/<name>.json; then merges those into DIR/latest.json,
with the machine they ran on, and prints one table, the PostgreSQL pipeline beside
SQLite's under it. `--merge-only` merges and prints the results already in DIR without
running anything.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from common import ROOT, machine
from pipeline_report import beside

# Each benchmark's name (of its results): its module, and the options it runs with.
BENCHMARKS = {
    "dashboard": ("dashboard", []),
    "pipeline": ("pipeline", []),
    "pipeline_postgresql": ("pipeline", ["--backend", "postgresql"]),
    "outbound": ("outbound", []),
}
HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks there are, merge their results, print the table."""
    args = _arguments(argv)
    failed = []
    if not args.merge_only:
        failed = [name for name in BENCHMARKS if not run(name, args.results)]
    merged = merge(args.results)
    (args.results / "latest.json").write_text(json.dumps(merged, indent=2) + "\n")
    print("\n".join(table(merged["benchmarks"])))
    print("\n".join(backend_comparison(merged["benchmarks"])))
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
        "--merge-only", action="store_true", help="merge the figures already there; run nothing"
    )
    return parser.parse_args(argv)


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
                f"; {run['replies']} replies, MO>MT p50 {run['mo_to_mt_p50_ms']} ms, "
                f"p99 {run['mo_to_mt_p99_ms']} ms"
            )
        text += f"; {run['peak_rss_mib']} MiB"
        if "cpu_busy_pct" in run:
            text += f", CPU {run['cpu_busy_pct']}%"
        rows.append((run["name"], text))
    return rows


def _x(ratio: float | None) -> str:
    return "" if ratio is None else f" ({ratio}x limit)"


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


SUMMARIES = {"dashboard": _dashboard, "pipeline": _pipeline, "pipeline_postgresql": _pipeline}


if __name__ == "__main__":
    sys.exit(main())
