"""bench/outbound.py at a tiny size, so that the benchmark cannot rot: it queues the
broadcasts, drains them through the simulator, finds every MT there exactly once, and
names each measurement in its table (the timings themselves are never asserted). The
same on PostgreSQL."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from benches import run_bench
from postgres import binaries

MEASUREMENTS = (
    "bare GET /message, 1 at a time",
    "bare GET /message, 16 at a time",
    "botkit broadcast, 200 MTs",
    "drain, BOTKIT_SEND_RATE=100",
    "botkit broadcast, 100 MTs",
    "drain, no rate limit",
)


def test_the_outbound_benchmark_runs_at_a_tiny_size(tmp_path):
    results = drained(tmp_path)
    assert results["backend"] == "sqlite"
    assert {"cpus", "python", "sqlite"} <= results["machine"].keys()


@pytest.mark.skipif(
    binaries() is None and not os.environ.get("CI"),
    reason="PostgreSQL server binaries are not installed (apt-get install postgresql)",
)
def test_the_outbound_benchmark_runs_on_postgresql(tmp_path):
    results = drained(tmp_path, "--backend", "postgresql")
    assert results["backend"] == "postgresql"
    assert "fsync on" in results["database"]


def drained(tmp_path: Path, *options: str) -> dict:
    """Run the benchmark at a tiny size; check its table and that every MT went once;
    its figures."""
    options += ("--messages", "200", "--unlimited-messages", "100", "--rate", "100")
    options += ("--baseline-seconds", "0.5", "--results", str(tmp_path / "results.json"))
    table = run_bench("outbound.py", *options, timeout=180).splitlines()
    for name in MEASUREMENTS:
        assert any(line.startswith(name) for line in table), name
    results = json.loads((tmp_path / "results.json").read_text())
    limited, unlimited = results["drains"]
    for drain, size in ((limited, 200), (unlimited, 100)):
        assert drain["sent_once"] == drain["accepted"] == size
        assert drain["duplicates"] == drain["missing"] == drain["unexpected"] == 0
        assert drain["statuses"] == {"accepted": size}
    # The limited drain's steady rate, off the configured one in %; none without a limit.
    assert isinstance(limited["deviation_pct"], float)
    assert unlimited["deviation_pct"] is None
    assert [b["name"] for b in results["baselines"]] == list(MEASUREMENTS[:2])
    return results
