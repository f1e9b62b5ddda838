"""botkit init NAME: a new bot module, its templates and a test that passes as written."""

from __future__ import annotations

import argparse
import keyword
import re
import sys
from pathlib import Path
from string import Template

from ..errors import ValidationError

NAME = "init"
HELP = "write a new bot, its templates and its test"
DESCRIPTION = (
    "Write bots/NAME.py (a keyword, a state and a fallback), its SMS templates under "
    "templates/NAME/ and tests/test_NAME.py, which passes as written. Existing files "
    "are never overwritten."
)
EXAMPLES = """\
  botkit init pizza          then: pytest tests/test_pizza.py; botkit run --reload
  botkit init survey --dir myproject"""

SCAFFOLD = Path(__file__).resolve().parent.parent / "scaffold"
BOT_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")
# A project with none of these gets a pytest.ini that runs async tests.
PYTEST_CONFIGS = ("pytest.ini", "pyproject.toml", "setup.cfg", "tox.ini")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="the bot's name: lower-case letters, digits and _")
    parser.add_argument("--dir", default=".", help="the project folder (default: here)")


def main(args: argparse.Namespace) -> int:
    files = plan(args.name, Path(args.dir))
    existing = [path for path in files if path.exists()]
    if existing:
        print(f"botkit: not overwriting {', '.join(map(str, existing))}", file=sys.stderr)
        return 1
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"created {path}")
    keyword_text = args.name.upper().replace("_", "")
    print(
        "next:",
        f"  pytest tests/test_{args.name}.py    run its test",
        f"  botkit run --reload    then text {keyword_text} at http://127.0.0.1:8000/simulator/",
        sep="\n",
    )
    return 0


def plan(name: str, root: Path) -> dict[Path, str]:
    """The files `botkit init name` writes under `root`, with their text."""
    if not BOT_NAME.fullmatch(name) or keyword.iskeyword(name):
        raise ValidationError(
            "name", f"{name!r}: use a lower-case letter, then letters, digits or _"
        )
    values = {"name": name, "keyword": name.upper().replace("_", "")}
    files = {
        root / "bots" / f"{name}.py": "bots/bot.py.tmpl",
        root / "tests" / f"test_{name}.py": "tests/test_bot.py.tmpl",
    }
    if not any((root / name).exists() for name in PYTEST_CONFIGS):
        files[root / "pytest.ini"] = "pytest.ini.tmpl"
    for template in sorted((SCAFFOLD / "templates").glob("*.txt.tmpl")):
        text_name = template.name.removesuffix(".tmpl")
        files[root / "templates" / name / text_name] = f"templates/{template.name}"
    return {
        path: Template((SCAFFOLD / source).read_text()).substitute(values)
        for path, source in files.items()
    }
