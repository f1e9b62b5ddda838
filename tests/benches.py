"""Running a benchmark of bench/ from a smoke test: at a tiny size, in a process of its
own, as a user would."""

from __future__ import annotations

import subprocess
import sys

from conftest import ROOT


def run_bench(script: str, *options: str, timeout: float = 120) -> str:
    """`python bench/SCRIPT OPTIONS`, which must succeed; what it printed."""
    command = [sys.executable, str(ROOT / "bench" / script), *options]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout
