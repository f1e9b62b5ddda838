"""bench/pipeline.py (with the limit and the floor) at a tiny size, so that the benchmark
cannot rot: every MO answered 200 is stored and replied to, once, by botkit and by the
floor, and each row of the table is printed; bench/run.py merges the figures into one
table. The same on PostgreSQL with two app processes sharing the database. Timings are
never asserted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from benches import run_bench
from conftest import ROOT, rows
from postgres import binaries

RATE, SECONDS = 20, 1
MOS = RATE * SECONDS


def test_the_pipeline_and_the_limit_run_at_a_tiny_size(tmp_path):
    results = tmp_path / "pipeline.json"
    options = ["--rates", str(RATE), "--duration", str(SECONDS), "--handsets", "7"]
    options += ["--workdir", str(tmp_path), "--results", str(results)]
    table = run_bench("pipeline.py", *options).splitlines()
    for name in (f"limit at {RATE}/s", f"floor at {RATE}/s", f"botkit at {RATE}/s"):
        assert any(line.startswith(name) for line in table), name
    limit, floor, botkit = json.loads(results.read_text())["runs"]
    assert limit["sent"] == limit["ok"] == limit["stored"] == MOS
    for run in (floor, botkit):
        assert run["sent"] == run["ok"] == run["stored"] == run["replies"] == MOS
        assert run["lost"] == run["unanswered"] == run["gateway_duplicates"] == 0
        assert run["gateway_took"] == MOS
        assert run["drained"]
    # botkit's figures as ratios of the floor's, and whether a backlog built up.
    assert {"x_floor", "x_floor_p99", "mo_to_mt_first_p99_ms"} <= botkit.keys()
    assert any(line.startswith(f"botkit at {RATE}/s: MO>MT p99 over the first") for line in table)

    # The app's own database agrees: each MO handled, each one's reply accepted once.
    db = tmp_path / f"pipeline-{RATE}.db"
    mos = rows(db, "SELECT status, count(*) FROM messages WHERE direction = 'mo' GROUP BY 1")
    mts = rows(db, "SELECT status, count(*) FROM messages WHERE direction = 'mt' GROUP BY 1")
    assert [tuple(r) for r in mos] == [("handled", MOS)]
    assert [tuple(r) for r in mts] == [("accepted", MOS)]
    assert rows(tmp_path / f"limit-{RATE}.db", "SELECT count(*) FROM mo")[0][0] == MOS

    merged = merge_only(tmp_path)
    assert any(f"botkit at {RATE}/s" in line for line in merged.splitlines())
    latest = json.loads((tmp_path / "latest.json").read_text())
    assert latest["benchmarks"]["pipeline"]["runs"][2]["replies"] == MOS


@pytest.mark.skipif(
    binaries() is None and not os.environ.get("CI"),
    reason="PostgreSQL server binaries are not installed (apt-get install postgresql)",
)
def test_the_pipeline_runs_on_postgresql_with_two_processes(tmp_path):
    results = tmp_path / "pipeline_postgresql.json"
    command = [sys.executable, str(ROOT / "bench" / "pipeline.py"), "--backend", "postgresql"]
    command += ["--processes", "2", "--rates", str(RATE), "--duration", str(SECONDS)]
    command += ["--handsets", "7", "--results", str(results)]
    # A generous timeout: a handled MO whose commit keeps conflicting waits out its
    # lease (60 s) before another try.
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr

    assert any(line.startswith(f"postgresql x2 at {RATE}/s") for line in done.stdout.splitlines())
    figures = json.loads(results.read_text())
    assert "fsync on" in figures["database"]
    [run] = figures["runs"]
    assert run["processes"] == 2
    assert run["sent"] == run["ok"] == run["stored"] == run["replies"] == MOS
    assert run["lost"] == run["unanswered"] == run["gateway_duplicates"] == 0
    assert run["gateway_took"] == run["mts_stored"] == MOS
    assert run["drained"]
    assert set(run["cpu_pct"]) == {"botkit", "gateway", "postgresql", "generator"}

    # bench/run.py sets it beside SQLite's single process (none here) and says what the
    # limit was.
    merged = merge_only(tmp_path)
    beside = merged.split("MO pipeline: SQLite, one app process, beside PostgreSQL")[1]
    assert f"postgresql x2 at {RATE}/s" in beside
    assert "cores" in beside


def merge_only(results: Path) -> str:
    """What `bench/run.py --merge-only` prints for the figures in `results`."""
    merged = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--merge-only", "--results", results],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert merged.returncode == 0, merged.stdout + merged.stderr
    return merged.stdout
