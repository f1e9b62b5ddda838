"""bench/ack.py at a tiny size, so that the benchmark cannot rot: the closed loop reaches
the limit's bare endpoint and botkit, every callback answered 200 is stored, and both
rows and the ratio are printed. Timings are never asserted."""

from __future__ import annotations

import json

from benches import run_bench


def test_the_acknowledgement_benchmark_runs_closed_loop_at_a_tiny_size(tmp_path):
    results = tmp_path / "ack.json"
    options = ["--connections", "4", "--duration", "1", "--handsets", "7"]
    table = run_bench("ack.py", *options, "--results", str(results)).splitlines()
    for name in ("limit, 4 clients", "botkit, 4 clients"):
        assert any(line.startswith(name) for line in table), name
    limit, botkit = json.loads(results.read_text())["runs"]
    for run in (limit, botkit):
        assert run["closed_loop_clients"] == 4
        assert run["ok"] == run["sent"] == run["stored"] > 0
        assert run["errors"] == run["lost"] == 0
    assert botkit["x_limit"] > 0
