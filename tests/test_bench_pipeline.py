"""bench/pipeline.py (with the limit) at a tiny size, so that the benchmark cannot rot: every
MO answered 200 is stored and replied to, once, and each row of the table is printed;
bench/run.py merges the figures into one table. Timings are never asserted."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import ROOT, rows

RATE, SECONDS = 20, 1
MOS = RATE * SECONDS


def test_the_pipeline_and_the_limit_run_at_a_tiny_size(tmp_path):
    results = tmp_path / "pipeline.json"
    command = [sys.executable, str(ROOT / "bench" / "pipeline.py")]
    command += ["--rates", str(RATE), "--duration", str(SECONDS), "--handsets", "7"]
    command += ["--workdir", str(tmp_path), "--results", str(results)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr

    table = done.stdout.splitlines()
    for name in (f"limit at {RATE}/s", f"botkit at {RATE}/s"):
        assert any(line.startswith(name) for line in table), name
    limit, botkit = json.loads(results.read_text())["runs"]
    assert limit["sent"] == limit["ok"] == limit["stored"] == MOS
    assert botkit["sent"] == botkit["ok"] == botkit["stored"] == botkit["replies"] == MOS
    assert botkit["lost"] == botkit["unanswered"] == botkit["simulator_duplicates"] == 0
    assert botkit["simulator_took"] == MOS
    assert botkit["drained"]

    # The app's own database agrees: each MO handled, each one's reply accepted once.
    db = tmp_path / f"pipeline-{RATE}.db"
    mos = rows(db, "SELECT status, count(*) FROM messages WHERE direction = 'mo' GROUP BY 1")
    mts = rows(db, "SELECT status, count(*) FROM messages WHERE direction = 'mt' GROUP BY 1")
    assert [tuple(r) for r in mos] == [("handled", MOS)]
    assert [tuple(r) for r in mts] == [("accepted", MOS)]
    assert rows(tmp_path / f"limit-{RATE}.db", "SELECT count(*) FROM mo")[0][0] == MOS

    merged = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--merge-only", "--results", tmp_path],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert merged.returncode == 0, merged.stdout + merged.stderr
    assert any(f"botkit at {RATE}/s" in line for line in merged.stdout.splitlines())
    latest = json.loads((tmp_path / "latest.json").read_text())
    assert latest["benchmarks"]["pipeline"]["runs"][1]["replies"] == MOS
