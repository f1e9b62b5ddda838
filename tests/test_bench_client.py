"""bench/client.py at a tiny size, so that the benchmark cannot rot: it serves the
gateway's answer, sends through a bare httpx client and through Gateway.send on each
loop asked for, and names each measurement in its table (the figures themselves are
never asserted)."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import ROOT

MEASUREMENTS = ("bare httpx GET", "Gateway.send")


def test_the_client_benchmark_runs_at_a_tiny_size(tmp_path):
    command = [sys.executable, str(ROOT / "bench" / "client.py"), "--loops", "asyncio"]
    command += ["--messages", "40", "--warmup", "8", "--in-flight", "4", "--rounds", "2"]
    command += ["--results", str(tmp_path / "results.json")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr

    table = done.stdout.splitlines()
    for name in MEASUREMENTS:
        assert any(line.startswith("asyncio") and name in line for line in table), name
    results = json.loads((tmp_path / "results.json").read_text())
    assert [(run["loop"], run["name"]) for run in results["runs"]] == [
        ("asyncio", name) for name in MEASUREMENTS
    ]
    for run in results["runs"]:
        assert len(run["rounds"]) == 2
        assert run["cpu_us_per_mt"] > 0 and run["per_s"] > 0
    assert results["runs"][0]["x_bare"] == 1.0
    assert {"cpus", "python"} <= results["machine"].keys()
