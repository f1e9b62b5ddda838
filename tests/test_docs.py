"""The tutorial runs as written: docs/writing-bots.md, block by block, in an empty folder.

A block whose info string has `file=PATH` is written to PATH (a later block with the
same path replaces it, as the reader would); a `sh run` block's commands are run
there and must succeed.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT
from servers import BOTKIT

FENCE = re.compile(r"^```(?P<info>[^\n]*)\n(?P<body>.*?)^```$", re.MULTILINE | re.DOTALL)


def blocks(path: Path) -> list[tuple[str, str]]:
    """(info string, body) of every fenced block, in order."""
    return [(m["info"].strip(), m["body"]) for m in FENCE.finditer(path.read_text())]


def command(line: str) -> list[str]:
    """A tutorial command, run with this checkout's botkit and Python."""
    words = shlex.split(line)
    if words[0] == "botkit":
        return [BOTKIT, *words[1:]]
    if words[0] == "pytest":
        return [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *words[1:]]
    raise AssertionError(f"the tutorial runs {words[0]!r}; the test knows botkit and pytest")


@pytest.mark.parametrize(
    ("doc", "least_ran", "least_written"),
    [("writing-bots.md", 5, 10), ("opt-in.md", 5, 8), ("surveys.md", 3, 5)],
)
def test_tutorial_runs_as_written(tmp_path, doc, least_ran, least_written):
    ran = written = 0
    for info, body in blocks(ROOT / "docs" / doc):
        options = dict(word.split("=", 1) for word in info.split()[1:] if "=" in word)
        if "file" in options:
            target = tmp_path / options["file"]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(body)
            written += 1
        elif info.split()[1:2] == ["run"]:
            for line in filter(None, (line.strip() for line in body.splitlines())):
                done = subprocess.run(
                    command(line), cwd=tmp_path, capture_output=True, text=True, timeout=120
                )
                assert done.returncode == 0, f"$ {line}\n{done.stdout}\n{done.stderr}"
                ran += 1
    assert ran >= least_ran and written >= least_written
