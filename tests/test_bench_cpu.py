"""bench/cpu.py, the CPU accounting behind each benchmark's verdict: a group counts its
processes' children (a PostgreSQL server's backends, the app's gateway client), while
"one app process is the limit" reads the app process alone, whose Python runs on one
core at a time."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

from conftest import ROOT

# bench/ is not a package, and its modules' names are not for the tests' path.
_spec = importlib.util.spec_from_file_location("bench_cpu", ROOT / "bench" / "cpu.py")
assert _spec is not None and _spec.loader is not None
bench_cpu = sys.modules[_spec.name] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_cpu)

BURN = 0.5  # CPU seconds the child spends
# A parent that starts a child, which burns BURN seconds of CPU, says so and waits to be
# ended: the parent itself only waits.
PARENT = f"""
import subprocess, sys
child = subprocess.Popen([sys.executable, "-c", '''
import sys, time
while time.process_time() < {BURN}:
    pass
print("burnt", flush=True)
sys.stdin.read()
'''], stdin=subprocess.PIPE, stdout=sys.stdout)
child.wait()
"""


def test_the_app_process_is_counted_without_its_children() -> None:
    with subprocess.Popen(
        [sys.executable, "-c", PARENT], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    ) as parent:
        try:
            with bench_cpu.measuring({"botkit": [parent.pid]}) as usage:
                assert parent.stdout is not None
                assert parent.stdout.readline() == b"burnt\n"
        finally:
            parent.kill()
    figures = usage.figures()
    assert usage.by_pid[parent.pid] >= BURN - 0.05  # the child, in the group's share
    assert usage.own_by_pid[parent.pid] < BURN / 2  # the parent alone only waited
    wall = figures["cpu_wall_s"]
    assert figures["app_process_max_pct"] < 100 * (BURN / 2) / wall
