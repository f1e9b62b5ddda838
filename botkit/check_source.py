"""What `botkit check` reads in a bot module's source, and how it reports a problem.

A module is parsed with `ast`, and an expression is followed as far as constants go: a
literal, a module-level constant, both arms of `a if c else b`, each item of a list. What
depends on run time is None, and leaves the checks that need it unjudged rather than
wrong.
"""

from __future__ import annotations

import ast
import difflib
import os
import traceback
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, TypeGuard


@dataclass(frozen=True, order=True)
class Problem:
    """One thing `botkit check` found, where it is, and which kind of problem it is."""

    file: Path
    line: int
    kind: str
    message: str


class Location(NamedTuple):
    """A file and line, printed the way a compiler prints them."""

    file: Path
    line: int

    def __str__(self) -> str:
        return f"{display_path(self.file)}:{self.line}"


@dataclass(frozen=True)
class Source:
    """A bot module's syntax tree, and its module-level constants (to follow `ctx.state = ASK`)."""

    path: Path
    tree: ast.Module
    constants: dict[str, object]

    @classmethod
    def parse(cls, path: Path) -> Source:
        """Read and parse `path`; raises SyntaxError as an import would."""
        tree = ast.parse(path.read_bytes(), filename=str(path))
        return cls(path, tree, module_constants(tree))


def display_path(path: Path) -> str:
    """`path` relative to the working directory when it lies under it, else absolute."""
    absolute = Path(os.path.abspath(path))
    cwd = Path.cwd()
    return str(absolute.relative_to(cwd) if absolute.is_relative_to(cwd) else absolute)


def error_line(exc: BaseException, path: Path) -> int:
    """The line of `path` where `exc` is a syntax error, or that its traceback last passed
    through (Jinja puts template lines in tracebacks too); 1 if none."""
    target = os.path.abspath(path)
    if isinstance(exc, SyntaxError) and exc.filename and os.path.abspath(exc.filename) == target:
        return exc.lineno or 1
    lines = [
        frame.lineno
        for frame in traceback.extract_tb(exc.__traceback__)
        if os.path.abspath(frame.filename) == target and frame.lineno
    ]
    return lines[-1] if lines else 1


def calls(node: ast.AST, method: str) -> TypeGuard[ast.Call]:
    """True for a call of a method named `method`, like `bot.keyword(...)` for "keyword"."""
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == method
    )


def call_strings(call: ast.Call, constants: dict[str, object]) -> list[str]:
    """The constant strings a call passes, positional or by keyword, lists included."""
    arguments = [*call.args, *(keyword.value for keyword in call.keywords)]
    values = [v for node in arguments for v in known_values(node, constants) or ()]
    return [v for v in values if isinstance(v, str)]


def known_values(node: ast.expr, constants: dict[str, object]) -> list[object] | None:
    """The constant values an expression can have: both arms of `a if c else b`, each item
    of a list, a module constant's value; None when it depends on run time."""
    if isinstance(node, ast.Constant):
        return [node.value]
    if isinstance(node, ast.Name):
        return [constants[node.id]] if node.id in constants else None
    if isinstance(node, ast.IfExp):
        parts = [node.body, node.orelse]
    elif isinstance(node, ast.BoolOp):
        parts = node.values
    elif isinstance(node, ast.List | ast.Tuple | ast.Set):
        parts = node.elts
    else:
        return None
    found = [known_values(part, constants) for part in parts]
    if any(values is None for values in found):
        return None
    return [value for values in found for value in values or ()]


def module_constants(tree: ast.Module) -> dict[str, object]:
    """Module-level `NAME = <constant>` assignments, so `ctx.state = ASK` can be followed."""
    constants: dict[str, object] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign | ast.AnnAssign) and isinstance(node.value, ast.Constant):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Name):
                    constants[target.id] = node.value.value
    return constants


def assignment_line(tree: ast.Module, variable: str) -> int:
    """The line of the module-level assignment to `variable` (1 if there is none)."""
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else []
        if isinstance(node, ast.AnnAssign):
            targets = [node.target]
        if any(isinstance(t, ast.Name) and t.id == variable for t in targets):
            return node.lineno
    return 1


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """ "; did you mean 'x'?" for the known name closest to a misspelt `name`, else ""."""
    close = closest(name, known)
    return f"; did you mean {close!r}?" if close else ""


def closest(name: str, known: Iterable[str], cutoff: float = 0.8) -> str | None:
    """The one of `known` most like `name`, if any is like enough: the same but for case,
    two letters swapped ("tmie"), or close by difflib's measure."""
    by_lower = {each.lower(): each for each in known}
    wanted = name.lower()
    if wanted in by_lower:
        return by_lower[wanted]
    for lower, each in by_lower.items():
        if _swapped(wanted, lower):
            return each
    # Above difflib's 0.6 by default: template names share a folder and ".txt", which
    # alone came close.
    close = difflib.get_close_matches(wanted, list(by_lower), n=1, cutoff=cutoff)
    return by_lower[close[0]] if close else None


def _swapped(a: str, b: str) -> bool:
    """True if `a` is `b` with two neighbouring letters swapped."""
    if len(a) != len(b):
        return False
    differ = [i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y]
    if len(differ) != 2 or differ[1] != differ[0] + 1:
        return False
    i, j = differ
    return a[i] == b[j] and a[j] == b[i]
