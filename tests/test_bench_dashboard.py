"""bench/dashboard.py at a tiny size, so that the benchmark cannot rot: it fills the
database asked for, serves it, times every page and names each in its table (the
timings themselves are never asserted)."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import ROOT, rows

MEASUREMENTS = (
    "GET /healthz (floor)",
    "next pages 2-2, one each",
    "first page",
    "deep page (page 2)",
    "bot=survey",
    "q=number (a handset)",
    "q=refund (text)",
    "q=zebra (text, no match)",
    "state=survey:satisfaction",
    "address=+61400000300",
    "since/until (a week, 45 days back)",
    "long transcript (200 messages, latest page)",
    "normal transcript",
)


def test_the_dashboard_benchmark_runs_at_a_tiny_size(tmp_path):
    command = [sys.executable, str(ROOT / "bench" / "dashboard.py")]
    command += ["--messages", "2000", "--threads", "100", "--repeat", "1"]
    command += ["--cache", str(tmp_path), "--results", str(tmp_path / "results.json")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr

    (db,) = tmp_path.glob("*.db")
    assert rows(db, "SELECT count(*) FROM messages")[0][0] == 2000
    assert rows(db, "SELECT count(*) FROM threads")[0][0] == 100
    longest = rows(db, "SELECT count(*) FROM messages GROUP BY thread_id ORDER BY 1 DESC")[0][0]
    assert longest == 200
    assert rows(db, "SELECT count(*) FROM deliveries")[0][0] > 0
    # Every message is in the full-text index, which agrees with the messages.
    assert rows(db, "INSERT INTO messages_fts (messages_fts) VALUES ('integrity-check')") == []
    indexed = "SELECT count(*) FROM messages_fts WHERE messages_fts MATCH 'refund'"
    held = "SELECT count(*) FROM messages WHERE content LIKE '%refund%'"
    assert rows(db, indexed)[0][0] == rows(db, held)[0][0] > 0

    table = done.stdout.splitlines()
    for name in MEASUREMENTS:
        assert any(line.startswith(name) for line in table), name
    results = json.loads((tmp_path / "results.json").read_text())
    assert [m["name"] for m in results["measurements"]][:3] == list(MEASUREMENTS[:3])
    assert {"cpus", "python", "sqlite"} <= results["machine"].keys()
