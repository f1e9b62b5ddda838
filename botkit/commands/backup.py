"""botkit backup: an online, checked copy of the SQLite database."""

from __future__ import annotations

import argparse
import sys

from ..settings import Settings

NAME = "backup"
HELP = "copy the database to a file while the app runs, and check the copy"
DESCRIPTION = (
    "Copy the SQLite database (BOTKIT_DB, or --db) to PATH with SQLite's online backup, "
    "while the app goes on receiving and sending: the copy is the database as it was "
    "when the backup began. It is written beside PATH, checked with PRAGMA "
    "integrity_check, then renamed to PATH. An existing PATH is kept unless --force."
)
EXAMPLES = """\
  botkit backup backups/botkit-$(date +%F).db
  botkit backup /var/backups/botkit/latest.db --db /var/lib/botkit/botkit.db --force"""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", metavar="PATH", help="the file to write the copy to")
    parser.add_argument("--db", help="SQLite database file (default: BOTKIT_DB or botkit.db)")
    parser.add_argument("--force", action="store_true", help="overwrite PATH if it exists")


def main(args: argparse.Namespace) -> int:
    from ..backup import backup
    from ..errors import BackupError
    from ..progress import progress_bar

    settings = Settings.load(db=args.db)
    with progress_bar(unit=" pages", desc="backup") as bar:

        def show(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        try:
            pages = backup(settings.db, args.path, force=args.force, progress=show)
        except BackupError as exc:
            print(f"botkit: backup failed: {exc}", file=sys.stderr)
            return 1
    print(f"backed up {settings.db} to {args.path} ({pages} pages, integrity ok)")
    return 0
