"""Loading bot modules: every `*.py` in the bots folder that declares a `Bot`."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from .bot import Bot


def bot_modules(directory: str | Path) -> list[Path]:
    """The bot modules in `directory`, in name order; files starting with `_` are helpers."""
    folder = Path(directory)
    if not folder.is_dir():
        raise FileNotFoundError(f"bots folder {folder}/ does not exist")
    return [path for path in sorted(folder.glob("*.py")) if not path.name.startswith("_")]


def load_module(path: Path, package: str = "botkit_bots") -> ModuleType:
    """Import one module from its file as `package.<stem>`; raises what the module raises."""
    name = f"{package}.{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Registered while it runs (dataclasses look their module up there).
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def bots_in(module: ModuleType) -> list[Bot]:
    """The Bot instances a module declares."""
    return [value for value in vars(module).values() if isinstance(value, Bot)]


def load_bots(directory: str | Path) -> list[Bot]:
    """Import each bot module of `directory` and return the bots they declare."""
    return [bot for path in bot_modules(directory) for bot in bots_in(load_module(path))]
