"""bench/memory.py in a short run, so that the benchmark cannot rot: it samples the app's
RSS through the load, sets the end against the first seconds, and every MO gets its
reply. The memory figures themselves are never asserted."""

from __future__ import annotations

import json

from benches import run_bench


def test_the_memory_benchmark_runs_short(tmp_path):
    results = tmp_path / "memory.json"
    options = ["--rate", "20", "--duration", "3", "--first", "1", "--sample", "0.5"]
    printed = run_bench("memory.py", *options, "--handsets", "7", "--results", str(results))

    assert "MiB at the end" in printed
    [run] = json.loads(results.read_text())["runs"]
    assert run["sent"] == run["ok"] == run["replies"] == 60
    assert run["drained"] and run["lost"] == run["unanswered"] == 0
    assert len(run["rss_samples"]) >= 3  # through the load, and one at its end
    assert run["rss_first_at_s"] == 1
    assert run["rss_growth"] == round(run["rss_end_mib"] / run["rss_first_mib"], 3)
