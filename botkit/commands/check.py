"""botkit check: report problems in the bots and templates, like a compiler."""

from __future__ import annotations

import argparse
import sys

from ..check import DEFAULT_MAX_SEGMENTS, STAND_IN_LENGTH, Problem, check, display_path
from ..settings import Settings

NAME = "check"
HELP = "report conflicts and mistakes in the bots and templates"
DESCRIPTION = (
    "Load every bot module and SMS template (*.txt) and report, one line each as "
    "path:line: kind: message, a module that does not import, two bots claiming one "
    "name or keyword, a keyword that is also a compliance word, a state handler nothing "
    "routes to or a state with no handler, a timer scheduled with no handler or a timer "
    "handler nothing schedules, a template that does not exist or does not compile, a "
    "variable a template uses that its reply does not pass, a template lacking a language "
    "version (x.es.txt) that others of its folder have or a version with no default, a "
    "mask that a conversation on "
    "another of BOTKIT_NUMBERS than the default could not carry, and a reply longer than "
    f"--max-segments segments (templates measured with each variable as {STAND_IN_LENGTH} "
    "characters). Exits 0 when clean, 1 when problems are found. Needs no database."
)
EXAMPLES = """\
  botkit check
  botkit check --bots bots --templates templates --max-segments 2"""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bots", help="folder of bot modules (default: bots)")
    parser.add_argument("--templates", help="folder of templates (default: templates)")
    parser.add_argument(
        "--max-segments",
        type=_positive,
        default=DEFAULT_MAX_SEGMENTS,
        metavar="N",
        help=f"longest reply allowed, in SMS segments (default: {DEFAULT_MAX_SEGMENTS})",
    )


def main(args: argparse.Namespace) -> int:
    settings = Settings.load(bots=args.bots, templates=args.templates)
    try:
        problems = check(
            settings.bots, settings.templates, max_segments=args.max_segments, settings=settings
        )
    except FileNotFoundError as exc:
        print(f"botkit: {exc}", file=sys.stderr)
        return 2
    for problem in problems:
        print(f"{display_path(problem.file)}:{problem.line}: {problem.kind}: {problem.message}")
    print(summary(problems))
    return 1 if problems else 0


def summary(problems: list[Problem]) -> str:
    """The last line: how many problems in how many files."""
    if not problems:
        return "botkit check: no problems found"
    files = len({problem.file for problem in problems})
    return f"botkit check: {_count(len(problems), 'problem')} in {_count(files, 'file')}"


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _positive(text: str) -> int:
    """argparse type: a whole number of at least 1."""
    try:
        number = int(text)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return number
