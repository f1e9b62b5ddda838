"""bench/memory.py in a short run, so that the benchmark cannot rot: it samples the app's
RSS through the load, sets the end against the first seconds, and every MO gets its
reply. The memory figures themselves are never asserted."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import ROOT


def test_the_memory_benchmark_runs_short(tmp_path):
    results = tmp_path / "memory.json"
    command = [sys.executable, str(ROOT / "bench" / "memory.py"), "--rate", "20"]
    command += ["--duration", "3", "--first", "1", "--sample", "0.5", "--handsets", "7"]
    command += ["--results", str(results)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr

    assert "MiB at the end" in done.stdout
    [run] = json.loads(results.read_text())["runs"]
    assert run["sent"] == run["ok"] == run["replies"] == 60
    assert run["drained"] and run["lost"] == run["unanswered"] == 0
    assert len(run["rss_samples"]) >= 3  # through the load, and one at its end
    assert run["rss_first_at_s"] == 1
    assert run["rss_growth"] == round(run["rss_end_mib"] / run["rss_first_mib"], 3)
