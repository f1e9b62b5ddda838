"""bench/pipeline.py's table: each run's figures under the columns any run has, botkit's
as ratios of the limit's and the floor's at the same rate, and what limited each run.

bench/run.py prints the PostgreSQL runs beside SQLite's with `beside()`.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Any

import cpu
from backends import Backend
from common import machine

COLUMNS = (
    ("measurement", "name", 23, ""),
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
    ("x floor", "x_floor", 8, ".2f"),
    ("MO>MT p50", "mo_to_mt_p50_ms", 10, ".1f"),
    ("MO>MT p99", "mo_to_mt_p99_ms", 10, ".1f"),
    ("p99 x", "x_floor_p99", 7, ".1f"),
    ("MO>MT max", "mo_to_mt_max_ms", 10, ".0f"),
    ("x sqlite", "x_sqlite", 9, ".2f"),
    ("p99 x sq", "x_sqlite_p99", 9, ".2f"),
    ("x one", "x_one", 7, ".2f"),
    ("p99 x one", "x_one_p99", 10, ".2f"),
    ("lag p99", "lag_p99_ms", 8, ".1f"),
    ("MiB", "peak_rss_mib", 7, ".0f"),
    ("db MiB", "db_mib", 7, ".0f"),
    ("CPU %", "cpu_busy_pct", 6, ".0f"),
    ("other", "cpu_other_pct", 6, ".0f"),
)

# The columns of the table beside SQLite's (COLUMNS, by key).
BESIDE = (
    "name", "ok", "errors", "throughput_per_s", "latency_p50_ms", "latency_p99_ms",
    "replies", "replies_per_s", "mo_to_mt_p50_ms", "mo_to_mt_p99_ms", "mo_to_mt_max_ms",
    "x_sqlite", "x_sqlite_p99", "x_one", "x_one_p99", "peak_rss_mib",
    "db_mib", "cpu_busy_pct", "cpu_other_pct",
)  # fmt: skip


def report(
    runs: list[dict[str, Any]], args: argparse.Namespace, backend: Backend
) -> dict[str, Any]:
    """Print the table (botkit's callback throughput and p50 latency as ratios of the
    limit's at the same rate, its replies per second and MO-to-MT p99 as ratios of the
    floor's) and what limited each run; return every figure with the machine's
    description."""
    limits = {run["offered_per_s"]: run for run in runs if run["name"].startswith("limit")}
    floors = {run["offered_per_s"]: run for run in runs if run["name"].startswith("floor")}
    for run in runs:
        if run["name"].startswith(("limit", "floor")):
            continue
        if base := limits.get(run["offered_per_s"]):
            run["x_limit"] = _ratio(run["throughput_per_s"], base["throughput_per_s"])
            run["x_limit_p50"] = _ratio(run["latency_p50_ms"], base["latency_p50_ms"])
        if base := floors.get(run["offered_per_s"]):
            run["x_floor"] = _ratio(run["replies_per_s"], base["replies_per_s"])
            run["x_floor_p99"] = _ratio(run["mo_to_mt_p99_ms"], base["mo_to_mt_p99_ms"])
    if backend.name == "postgresql":  # more processes against one
        _against(runs, "x_one", lambda run: run["processes"] == 1)
    database = backend.describe()
    print(f"\n{database}.\n{legend(args, bool(limits), bool(floors))}\n")
    print("\n".join(table(runs)))
    print("\n".join(problems(runs)))
    print("\n".join(windows(runs)))
    print(cpu.summary(runs))
    return {
        "machine": machine(),
        "backend": backend.name,
        "database": database,
        "handsets": args.handsets,
        "duration_s": args.duration,
        "dlrs_to_app": args.dlrs,
        "runs": runs,
    }


def legend(args: argparse.Namespace, limited: bool, floored: bool = False) -> str:
    """What the table's columns mean."""
    gateway = "the simulator" if args.dlrs else "the fake gateway"
    parts = [
        f"MO callbacks from {args.handsets} handsets, open loop, {args.duration:g} s at each "
        "rate, spread over the app processes in turn",
        "latency from the moment each MO was due",
        f"MO>MT until {gateway} accepted its reply",
        *(["x limit: botkit over the bare endpoint at the same rate"] if limited else []),
        *(["x floor, p99 x: botkit's MT/s and MO>MT p99 over the floor's"] if floored else []),
        "lag: how late the generator sent",
        "MiB: the app processes' peak RSS, summed",
        *(["db MiB: the database server's (PSS, at the end)"] if args.backend != "sqlite" else []),
        "CPU %: the machine's cores busy while the load was offered",
        "other: the part of that not the benchmark's (other work on the machine)",
    ]
    return "; ".join(parts)


def table(runs: list[dict[str, Any]], keys: Sequence[str] | None = None) -> list[str]:
    """The runs' figures, a line each, under the columns (of `keys`, or all) that any
    run has a figure for."""
    chosen = [c for c in COLUMNS if keys is None or c[1] in keys]
    columns = [c for c in chosen if any(run.get(c[1]) is not None for run in runs)]
    lines = ["".join(_cell(title, width, fmt and "s") for title, _, width, fmt in columns)]
    for run in runs:
        lines.append("".join(_cell(run.get(key), width, fmt) for _, key, width, fmt in columns))
    return lines


def problems(runs: list[dict[str, Any]]) -> list[str]:
    """What limited each botkit run (its CPU verdict), and any MO lost, unanswered or
    failed."""
    lines = [""]
    for run in runs:
        if "cpu_verdict" in run:
            lines.append(f"{run['name']}: {run['cpu_verdict']}")
        if "lost" in run and (run["lost"] or run["unanswered"]):
            lines.append(
                f"{run['name']}: {run['lost']} MOs answered 200 but not stored, "
                f"{run['unanswered']} without a reply (drained: {run['drained']})"
            )
        if run["errors"]:
            lines.append(f"{run['name']}: errors {run['error_kinds']}")
    return lines


def windows(runs: list[dict[str, Any]]) -> list[str]:
    """MO-to-MT p99 over the load's first and last seconds, for each run that replies:
    the same in both means no backlog builds up."""
    lines = []
    for run in runs:
        if "mo_to_mt_first_p99_ms" not in run:
            continue
        first, last = run["mo_to_mt_first_p99_ms"], run["mo_to_mt_last_p99_ms"]
        early = _ms(first, run["mo_to_mt_first_unreplied"])
        late = _ms(last, run["mo_to_mt_last_unreplied"])
        lines.append(
            f"{run['name']}: MO>MT p99 over the first {run['window_s']:g} s {early}, over "
            f"the last {late}" + (f" ({last / first:.1f}x)" if first and last else "")
        )
    return lines


def _ms(value: float | None, unreplied: int = 0) -> str:
    """`123 ms`, or what stands for an unknown p99: its MOs not replied to."""
    return f"{value:.0f} ms" if value is not None else f"unknown ({unreplied} MOs without reply)"


def _against(runs: list[dict[str, Any]], key: str, is_base: Callable[[dict[str, Any]], bool]):
    """Set `key` (replies per second) and `key`_p99 (MO>MT p99) on each run as ratios of
    the base run's at the same rate (the first for which `is_base` holds)."""
    bases: dict[float, dict[str, Any]] = {}
    for run in runs:
        if is_base(run) and "replies_per_s" in run:
            bases.setdefault(run["offered_per_s"], run)
    for run in runs:
        base = bases.get(run["offered_per_s"])
        if base is None or base is run or "replies_per_s" not in run:
            continue
        run[key] = _ratio(run["replies_per_s"], base["replies_per_s"])
        run[f"{key}_p99"] = _ratio(run["mo_to_mt_p99_ms"], base["mo_to_mt_p99_ms"])


def _ratio(value: float | None, base: float | None) -> float | None:
    return round(value / base, 2) if value is not None and base else None


def _cell(value: Any, width: int, fmt: str) -> str:
    """A table cell: text left-aligned, numbers right-aligned, '-' for no figure."""
    if not fmt:
        return f"{value:<{width}}"
    return f"{'-':>{width}}" if value is None else f"{value:>{width}{fmt}}"


def beside(sqlite: dict[str, Any] | None, postgresql: dict[str, Any]) -> list[str]:
    """The PostgreSQL runs, rate by rate, under SQLite's single-process run at the same
    rate (when `sqlite`, its results, has one, named `sqlite x1 at R/s` here); then where
    the cores were the limit."""
    single = {
        run["offered_per_s"]: {**run, "name": run["name"].replace("botkit", "sqlite x1", 1)}
        for run in (sqlite or {}).get("runs", [])
        if run["name"].startswith("botkit at")
    }
    runs: list[dict[str, Any]] = []
    for run in postgresql["runs"]:
        rate = run["offered_per_s"]
        if rate in single and single[rate] not in runs:
            runs.append(single[rate])
        runs.append(run)
    _against(runs, "x_sqlite", lambda run: run.get("backend", "sqlite") == "sqlite")
    counts = sorted({run["processes"] for run in postgresql["runs"]})
    heading = [
        "MO pipeline: SQLite, one app process, beside PostgreSQL with "
        f"{', '.join(map(str, counts))} app processes sharing each database",
        postgresql.get("database", "PostgreSQL"),
        "MiB: the app processes' peak RSS, summed; db MiB: PostgreSQL's (PSS); CPU %: the "
        "machine's cores busy while the load was offered; other: the part of that not the "
        "benchmark's; x sqlite, p99 x sq: MT/s and MO>MT p99 over SQLite's at the rate; x one, "
        "p99 x one: over one PostgreSQL process's",
    ]
    return [*heading, "", *table(runs, BESIDE), "", cpu.summary(runs)]
