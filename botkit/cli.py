"""The `botkit` command line: a parser built from the modules in botkit/commands."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .commands import COMMANDS
from .db import DatabaseError
from .errors import ValidationError
from .settings import describe


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    args = parser().parse_args(argv)
    try:
        return args.main(args)
    except ValidationError as exc:
        print(f"botkit: {exc}", file=sys.stderr)
        return 2
    except DatabaseError as exc:  # unreachable, refused the login, locked: said, not a trace
        print(f"botkit: {exc}", file=sys.stderr)
        return 1


def parser() -> argparse.ArgumentParser:
    """`botkit` and its subcommands, each with a description and examples."""
    settings = "\n".join(
        f"  {env:26} {text} (default {default})" for env, default, text in describe()
    )
    top = argparse.ArgumentParser(
        prog="botkit",
        description="Two-way SMS bots for the Mobile Gateway HTTPS API v2.",
        epilog=f"settings (environment, over botkit.toml):\n{settings}\n\n"
        "`botkit COMMAND --help` shows a command's options and examples.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    subparsers = top.add_subparsers(title="commands", required=True, metavar="COMMAND")
    for command in COMMANDS:
        sub = subparsers.add_parser(
            command.NAME,
            help=command.HELP,
            description=command.DESCRIPTION,
            epilog=f"examples:\n{command.EXAMPLES}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        command.configure(sub)
        sub.set_defaults(main=command.main)
    return top


if __name__ == "__main__":
    sys.exit(main())
