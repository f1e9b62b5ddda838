"""Following a page of the docs as its reader would: in a folder, each `file=PATH` block
is written to PATH (a later block with the same path replaces it) and each `sh run`
block's commands are run there, with a given environment's botkit and pytest."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

FENCE = re.compile(r"^```(?P<info>[^\n]*)\n(?P<body>.*?)^```$", re.MULTILINE | re.DOTALL)
# This checkout's environment: the one the tests run in.
OWN_BIN = Path(sys.executable).parent


def blocks(path: Path) -> list[tuple[str, str]]:
    """(info string, body) of every fenced block, in order."""
    return [(m["info"].strip(), m["body"]) for m in FENCE.finditer(path.read_text())]


def options(info: str) -> dict[str, str]:
    """The `key=value` words of a block's info string: ```python file=bots/pizza.py."""
    return dict(word.split("=", 1) for word in info.split()[1:] if "=" in word)


def command(line: str, bin_dir: Path) -> list[str]:
    """A tutorial command, run with the botkit and Python of `bin_dir`."""
    words = shlex.split(line)
    if words[0] == "botkit":
        return [str(bin_dir / "botkit"), *words[1:]]
    if words[0] == "pytest":
        return [str(bin_dir / "python"), "-m", "pytest", "-p", "no:cacheprovider", *words[1:]]
    raise AssertionError(f"the tutorial runs {words[0]!r}; the test knows botkit and pytest")


def follow(
    doc: Path,
    folder: Path,
    *,
    bin_dir: Path = OWN_BIN,
    env: Mapping[str, str] | None = None,
    most: int | None = None,
) -> tuple[int, int]:
    """Do in `folder` what `doc` says, up to its `most`-th command (None: all), failing on
    the first command that fails; returns (commands run, files written)."""
    ran = written = 0
    for info, body in blocks(doc):
        if ran == most:
            break
        if "file" in options(info):
            target = folder / options(info)["file"]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(body)
            written += 1
        elif info.split()[1:2] == ["run"]:
            for line in filter(None, (line.strip() for line in body.splitlines())):
                if ran == most:
                    return ran, written
                run(line, folder, bin_dir, env)
                ran += 1
    return ran, written


def run(line: str, folder: Path, bin_dir: Path, env: Mapping[str, str] | None) -> None:
    """Run one command of a tutorial in `folder`; it must succeed."""
    done = subprocess.run(
        command(line, bin_dir), cwd=folder, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, f"$ {line}\n{done.stdout}\n{done.stderr}"
