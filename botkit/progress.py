"""Progress bars for long-running commands: on stderr, and only when it is a terminal."""

from __future__ import annotations

import sys
from typing import Any

from tqdm import tqdm


def progress_bar(*, hidden: bool = False, **options: Any) -> tqdm:
    """A tqdm bar on stderr, shown only to a person at a terminal: pipes, log files and
    tests see nothing of it, and stdout stays the command's output alone. `hidden` hides
    it anyway (when the output itself goes to the terminal, say)."""
    return tqdm(file=sys.stderr, disable=hidden or not sys.stderr.isatty(), **options)
