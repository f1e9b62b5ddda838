"""Loading bot modules: every `*.py` in the bots folder that declares a `Bot`."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from .bot import Bot


def load_bots(directory: str | Path) -> list[Bot]:
    """Import each module in `directory` (not those starting with `_`), in name order,
    and return the Bot instances they declare."""
    folder = Path(directory)
    if not folder.is_dir():
        raise FileNotFoundError(f"bots folder {folder}/ does not exist")
    bots: list[Bot] = []
    for path in sorted(folder.glob("*.py")):
        if path.name.startswith("_"):
            continue
        module_name = f"botkit_bots.{path.stem}"
        spec = importlib.util.spec_from_file_location(module_name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[module_name]
            raise
        bots.extend(value for value in vars(module).values() if isinstance(value, Bot))
    return bots
