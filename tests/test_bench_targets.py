"""bench/targets.py, the targets table bench/run.py prints, from results made up here
(the benchmarks' own smoke tests run them; this one checks how their figures become
targets): each target's figure beside its baseline, their ratio, and whether it is met;
a missing benchmark leaves its targets unmeasured rather than missed."""

from __future__ import annotations

import importlib.util
import sys

from conftest import ROOT

# bench/ is not a package, and its modules' names are not for the tests' path.
_spec = importlib.util.spec_from_file_location("bench_targets", ROOT / "bench" / "targets.py")
assert _spec is not None and _spec.loader is not None
bench_targets = sys.modules[_spec.name] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_targets)


def run(name: str, rate: float, **figures: float) -> dict:
    return {"name": f"{name} at {rate:g}/s", "offered_per_s": rate, **figures}


RESULTS = {
    "pipeline": {
        "runs": [
            run("limit", 500, latency_p99_ms=6.0),
            run("floor", 500, replies_per_s=500.0, mo_to_mt_p99_ms=40.0),
            run(
                "botkit",
                500,
                replies_per_s=240.0,
                mo_to_mt_p99_ms=9000.0,
                latency_p99_ms=31.0,
                cpu_other_pct=14.0,
            ),
        ]
    },
    "ack": {
        "connections": 32,
        "runs": [
            {"name": "limit, 32 clients", "throughput_per_s": 1600.0},
            {"name": "botkit, 32 clients", "throughput_per_s": 900.0},
        ],
    },
    "backlog": {
        "duration_s": 60,
        "runs": [
            run("botkit", 500, window_s=10, mo_to_mt_first_p99_ms=800.0, mo_to_mt_last_p99_ms=None)
        ],
    },
    "memory": {
        "runs": [
            {"rss_first_mib": 50.0, "rss_first_at_s": 60, "rss_end_mib": 54.0, "rss_end_at_s": 600}
        ]
    },
    "outbound": {"drains": [{"configured_per_s": 200.0, "steady_per_s": 199.0}]},
}


def test_each_target_is_its_figure_over_a_baseline_from_the_same_run():
    table = bench_targets.table(RESULTS)
    assert table[-1] == (
        "4 of 8 measured targets met; 3 missed while other work took 10% of the cores or more"
    )
    # target: figure, baseline, ratio, goal..., met (the last column, other work's share
    # of the cores, apart)
    rows = {line[:52].strip(): line[52:].split()[:-1] for line in table[3:-1]}
    other = {line[:52].strip(): line.split()[-1] for line in table[3:-1]}
    assert other["replies/s at 500/s, x floor"] == "14"
    assert other["RSS at the end (10 min), x at 60 s"] == "-"

    assert rows["replies/s at 500/s, x floor"] == ["240/s", "500/s", "0.480", ">=", "0.5x", "NO"]
    assert rows["MO>MT p99 at 500/s, x floor"][-2:] == ["2x", "NO"]
    assert rows["callbacks/s, closed loop, 32 clients, x limit"][2:] == [
        "0.562", ">=", "0.5x", "yes"
    ]  # fmt: skip
    assert rows["callback p99 at 500/s (limit's beside)"] == [
        "31.0", "ms", "6.0", "ms", "5.17", "<", "20", "ms", "NO",
    ]  # fmt: skip
    assert rows["MO>MT p99, first 10 s at 500/s for 60 s"][-1] == "yes"
    # The last seconds' p99 fell on MOs that were never replied to.
    assert rows["MO>MT p99, last 10 s (x first)"][:2] == ["no", "reply"]
    assert rows["MO>MT p99, last 10 s (x first)"][-1] == "NO"
    assert rows["RSS at the end (10 min), x at 60 s"][-2:] == ["1.1x", "yes"]
    assert rows["steady send rate, BOTKIT_SEND_RATE=200, sqlite"][2:] == [
        "0.995", "within", "1%", "yes",
    ]  # fmt: skip
    # Benchmarks that did not run: their targets are neither met nor missed.
    assert rows["steady send rate, BOTKIT_SEND_RATE=200, postgresql"] == [
        "-", "-", "-", "within", "1%", "-",
    ]  # fmt: skip
    assert rows["postgresql x1 replies/s at 500/s, x sqlite"][-1] == "-"


def test_two_processes_keep_the_rate_of_one_within_what_a_rate_is_measured_to():
    pipeline = {"runs": [run("botkit", 500, replies_per_s=499.0, mo_to_mt_p99_ms=80.0)]}
    postgres = {
        "runs": [
            run("postgresql x1", 500, replies_per_s=496.4, mo_to_mt_p99_ms=100.0),
            run("postgresql x2", 500, replies_per_s=496.1, mo_to_mt_p99_ms=101.0),
        ]
    }
    found = {
        t.what: t
        for t in bench_targets.targets({"pipeline": pipeline, "pipeline_postgresql": postgres})
    }
    assert found["postgresql x2 replies/s at 500/s, x one process"].met
    assert found["postgresql x2 replies/s at 500/s, x one process"].goal == ">= 0.99x"
    assert not found["postgresql x2 MO>MT p99 at 500/s, x one process"].met  # slower
    assert found["postgresql x1 MO>MT p99 at 500/s, x sqlite"].goal == "<= 1.43x"
