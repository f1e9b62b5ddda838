"""Issue 15's performance targets, read from the benchmarks' results: each target's
figure, the baseline from the same run, their ratio, and whether the target is met.

    lines = table(merged["benchmarks"])   # bench/run.py's "targets" table

Every figure is a ratio to a baseline measured in the same run of `make bench`, because
figures from different runs or machines do not compare; a before/after of a change is
two runs, each table read across. A target whose figures are missing (its benchmark did
not run, or failed) is printed with `-` and counts as neither met nor missed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

RATE = 500.0  # MOs a second: the load for its one-rate targets
FLOOR, ACK, P99_MS, BACKLOG_MS = 0.5, 0.5, 20.0, 1000.0
POSTGRESQL, MEMORY, PACING_PCT = 0.7, 1.10, 1.0
# Two processes' replies/s against one's, at one offered rate that caps both: "not
# slower" within the 1% that a rate is measured to here (the pacing target's margin).
SAME_RATE = 0.99
OTHER = 10.0  # % of the cores taken by other work that spoils a figure (as cpu.py says)

Results = dict[str, Any]


@dataclass
class Target:
    """One target: what is measured, its figure and baseline, and the goal."""

    what: str
    unit: str
    figure: float | None
    baseline: float | None
    goal: str
    meets: Callable[[float, float | None], bool]  # (figure, ratio) -> met
    # The share of the cores other work took while the figure was measured (its run's
    # cpu_other_pct), where the benchmark measures it.
    other: float | None = None

    @property
    def ratio(self) -> float | None:
        if self.figure is None or not self.baseline:
            return None
        return self.figure / self.baseline

    @property
    def met(self) -> bool | None:
        return None if self.figure is None else self.meets(self.figure, self.ratio)


def targets(benchmarks: dict[str, Results]) -> list[Target]:
    """Every target, in the issue's order, from the results found."""
    return [
        *floor(benchmarks.get("pipeline")),
        *acknowledgement(benchmarks.get("ack"), benchmarks.get("pipeline")),
        *backlog(benchmarks.get("backlog")),
        *postgresql(benchmarks.get("pipeline"), benchmarks.get("pipeline_postgresql")),
        *memory(benchmarks.get("memory")),
        *pacing(benchmarks),
    ]


def floor(pipeline: Results | None) -> Iterator[Target]:
    """1. botkit's replies/s and MO>MT p99 at each rate, against the floor's."""
    rates = sorted({run["offered_per_s"] for run in _runs(pipeline)}) or [RATE]
    for rate in rates:
        botkit, base = (
            _run(pipeline, f"botkit at {rate:g}/s"),
            _run(pipeline, f"floor at {rate:g}/s"),
        )
        other = _get(botkit, "cpu_other_pct")
        yield Target(
            f"replies/s at {rate:g}/s, x floor", "/s", _get(botkit, "replies_per_s"),
            _get(base, "replies_per_s"), f">= {FLOOR}x", lambda _, r: r is not None and r >= FLOOR,
            other,
        )  # fmt: skip
        yield Target(
            f"MO>MT p99 at {rate:g}/s, x floor", "ms", _get(botkit, "mo_to_mt_p99_ms"),
            _get(base, "mo_to_mt_p99_ms"), f"<= {1 / FLOOR:g}x",
            lambda _, r: r is not None and r <= 1 / FLOOR, other,
        )  # fmt: skip


def acknowledgement(ack: Results | None, pipeline: Results | None) -> Iterator[Target]:
    """3. Callbacks answered a second closed loop, against the limit's; callback p99
    at RATE open loop (the limit's beside it)."""
    clients = ack["connections"] if ack else 32
    botkit, limit = _run(ack, f"botkit, {clients} clients"), _run(ack, f"limit, {clients} clients")
    yield Target(
        f"callbacks/s, closed loop, {clients} clients, x limit", "/s",
        _get(botkit, "throughput_per_s"), _get(limit, "throughput_per_s"), f">= {ACK}x",
        lambda _, r: r is not None and r >= ACK, _get(botkit, "cpu_other_pct"),
    )  # fmt: skip
    open_loop = _run(pipeline, f"botkit at {RATE:g}/s")
    yield Target(
        f"callback p99 at {RATE:g}/s (limit's beside)", "ms", _get(open_loop, "latency_p99_ms"),
        _get(_run(pipeline, f"limit at {RATE:g}/s"), "latency_p99_ms"), f"< {P99_MS:g} ms",
        lambda figure, _: figure < P99_MS, _get(open_loop, "cpu_other_pct"),
    )  # fmt: skip


def backlog(results: Results | None) -> Iterator[Target]:
    """4. MO>MT p99 over the first and the last seconds of a long run: both under a
    second (the last against the first)."""
    run = (_runs(results) or [None])[0]
    window, duration = _get(run, "window_s") or 10, (results or {}).get("duration_s", 60)
    first = _get(run, "mo_to_mt_first_p99_ms")
    last = _get(run, "mo_to_mt_last_p99_ms")
    if run is not None and last is None:  # its p99 fell on an MO without a reply
        last = float("inf")
    where = f"at {_get(run, 'offered_per_s') or RATE:g}/s for {duration:g} s"
    under = f"< {BACKLOG_MS / 1000:g} s"
    other = _get(run, "cpu_other_pct")
    yield Target(
        f"MO>MT p99, first {window:g} s {where}", "ms", first, None, under,
        lambda figure, _: figure < BACKLOG_MS, other,
    )  # fmt: skip
    yield Target(
        f"MO>MT p99, last {window:g} s (x first)", "ms", last, first, under,
        lambda figure, _: figure < BACKLOG_MS, other,
    )  # fmt: skip


def postgresql(sqlite: Results | None, postgres: Results | None) -> Iterator[Target]:
    """5. PostgreSQL, one process, against SQLite at RATE (or the highest rate both
    ran); two processes against one."""
    rates = {run["offered_per_s"] for run in _runs(postgres)}
    rate = RATE if RATE in rates or not rates else max(rates)
    one = _run(postgres, f"postgresql x1 at {rate:g}/s")
    two = _run(postgres, f"postgresql x2 at {rate:g}/s")
    base = _run(sqlite, f"botkit at {rate:g}/s")
    for what, run, against, least, most in (
        ("postgresql x1", one, base, POSTGRESQL, 1 / POSTGRESQL),
        ("postgresql x2", two, one, SAME_RATE, 1.0),
    ):
        name = "sqlite" if against is base else "one process"
        yield Target(
            f"{what} replies/s at {rate:g}/s, x {name}", "/s", _get(run, "replies_per_s"),
            _get(against, "replies_per_s"), f">= {least:g}x",
            lambda _, r, least=least: r is not None and r >= least, _get(run, "cpu_other_pct"),
        )  # fmt: skip
        yield Target(
            f"{what} MO>MT p99 at {rate:g}/s, x {name}", "ms", _get(run, "mo_to_mt_p99_ms"),
            _get(against, "mo_to_mt_p99_ms"), f"<= {most:.3g}x",
            lambda _, r, most=most: r is not None and r <= most, _get(run, "cpu_other_pct"),
        )  # fmt: skip


def memory(results: Results | None) -> Iterator[Target]:
    """6. The app's RSS at the end of a long run against minute one."""
    run = (_runs(results) or [None])[0]
    at, first = _get(run, "rss_end_at_s") or 600, _get(run, "rss_first_at_s") or 60
    yield Target(
        f"RSS at the end ({_seconds(at)}), x at {_seconds(first)}", "MiB",
        _get(run, "rss_end_mib"), _get(run, "rss_first_mib"), f"<= {MEMORY:g}x",
        lambda _, r: r is not None and r <= MEMORY, _get(run, "cpu_other_pct"),
    )  # fmt: skip


def pacing(benchmarks: dict[str, Results]) -> Iterator[Target]:
    """7. The steady send rate against BOTKIT_SEND_RATE, on each backend."""
    for name, backend in (("outbound", "sqlite"), ("outbound_postgresql", "postgresql")):
        results = benchmarks.get(name)
        drains = (results or {}).get("drains", [])
        limited = next((d for d in drains if d["configured_per_s"]), None)
        rate = _get(limited, "configured_per_s") or (results or {}).get("rate", 200)
        yield Target(
            f"steady send rate, BOTKIT_SEND_RATE={rate:g}, {backend}", "/s",
            _get(limited, "steady_per_s"), _get(limited, "configured_per_s"),
            f"within {PACING_PCT:g}%",
            lambda _, r: r is not None and abs(r - 1) * 100 <= PACING_PCT,
            _get(limited, "cpu_other_pct"),
        )  # fmt: skip


def table(benchmarks: dict[str, Results]) -> list[str]:
    """The targets table: target, figure, baseline, ratio, goal, met."""
    found = targets(benchmarks)
    lines = [
        "targets (issue 15): each figure with its baseline from the same run; other: the "
        "% of the cores other work took meanwhile (10 or more: measure again, quieter)",
        f"{'target':<52}{'figure':>12}{'baseline':>12}{'ratio':>8}  {'goal':<12}{'met':<5}other",
        "-" * 110,
    ]
    for target in found:
        met = {True: "yes", False: "NO", None: "-"}[target.met]
        other = "-" if target.other is None else f"{target.other:.0f}"
        lines.append(
            f"{target.what:<52}{_figure(target.figure, target.unit):>12}"
            f"{_figure(target.baseline, target.unit):>12}{_number(target.ratio):>8}  "
            f"{target.goal:<12}{met:<5}{other:>5}"
        )
    counted = [target.met for target in found if target.met is not None]
    spoiled = [t for t in found if t.met is False and t.other is not None and t.other >= OTHER]
    lines.append(
        f"{sum(counted)} of {len(counted)} measured targets met"
        + (f"; {len(spoiled)} missed while other work took {OTHER:g}% of the cores or more"
           if spoiled else "")
    )  # fmt: skip
    return lines


def _figure(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if value == float("inf"):
        return "no reply"
    space = "" if unit.startswith("/") else " "
    return f"{value:.0f}{space}{unit}" if value >= 100 else f"{value:.1f}{space}{unit}"


def _seconds(seconds: float) -> str:
    """`10 min`, `60 s`."""
    return f"{seconds / 60:.0f} min" if seconds >= 120 else f"{seconds:.0f} s"


def _number(value: float | None) -> str:
    """A ratio to three figures: 0.482, 1.17, 17.3, 225."""
    if value is None:
        return "-"
    return f"{value:.0f}" if value >= 100 else f"{value:#.3g}"


def _runs(results: Results | None) -> list[dict[str, Any]]:
    return (results or {}).get("runs", [])


def _run(results: Results | None, name: str) -> dict[str, Any] | None:
    return next((run for run in _runs(results) if run["name"] == name), None)


def _get(run: dict[str, Any] | None, key: str) -> Any:
    return None if run is None else run.get(key)
