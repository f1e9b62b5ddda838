"""botkit db copy: copy a whole database, SQLite to PostgreSQL or back, checked."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..copy import Copied

NAME = "db"
HELP = "copy a whole database: SQLite to PostgreSQL, or back"
DESCRIPTION = (
    "copy SOURCE DEST: copy every row of SOURCE into DEST, each a SQLite file or a "
    "postgresql:// URL. SOURCE is read, never changed, and must have this botkit's "
    "schema (`botkit migrate --db SOURCE` first); DEST gets the schema, then the rows, "
    "ids and all, and the row counts of every table are compared at the end (exit 1 if "
    "any differ). A DEST that holds rows is refused unless --replace, which deletes "
    "them first. Stop the app first: what it writes during the copy may be left out."
)
EXAMPLES = """\
  botkit db copy botkit.db "$BOTKIT_DB"
  botkit db copy botkit.db postgresql://botkit@db.internal/botkit --replace
  botkit db copy postgresql://botkit@db.internal/botkit back-to-sqlite.db"""


def configure(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(title="actions", required=True, metavar="ACTION")
    copier = actions.add_parser("copy", help="copy every row of SOURCE into DEST, then check")
    copier.add_argument("source", metavar="SOURCE", help="SQLite file or postgresql:// URL")
    copier.add_argument("dest", metavar="DEST", help="SQLite file or postgresql:// URL")
    copier.add_argument(
        "--replace", action="store_true", help="delete the rows DEST holds before the copy"
    )
    copier.set_defaults(action=_copy)


def main(args: argparse.Namespace) -> int:
    return args.action(args)


def _copy(args: argparse.Namespace) -> int:
    from ..copy import copy_database
    from ..db import DatabaseError
    from ..progress import progress_bar

    with progress_bar(unit=" rows", desc="copy") as bar:

        def show(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        try:
            copied = asyncio.run(
                copy_database(args.source, args.dest, replace=args.replace, progress=show)
            )
        except DatabaseError as exc:
            print(f"botkit: db copy failed: {exc}", file=sys.stderr)
            return 1
    return report(copied, args.source, args.dest)


def report(copied: Copied, source: str, dest: str) -> int:
    """Print each table's row counts and a summary, or which counts differ; the exit
    status."""
    from ..db import redact

    print(f"{'table':<24} {'source':>10} {'destination':>12}")
    for count in copied.counts:
        print(f"{count.table:<24} {count.source:>10} {count.destination:>12}")
    if copied.differing:
        tables = ", ".join(
            f"{count.table} ({count.source} in the source, {count.destination} in the destination)"
            for count in copied.differing
        )
        print(f"botkit: db copy: row counts differ: {tables}", file=sys.stderr)
        return 1
    print(
        f"copied {copied.rows} rows of {len(copied.counts)} tables from {redact(source)} "
        f"to {redact(dest)} in {copied.seconds:.1f} s"
    )
    return 0
