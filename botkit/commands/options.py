"""Options several commands share."""

from __future__ import annotations

import argparse


def add_db(parser: argparse.ArgumentParser) -> None:
    """The --db option of a command that opens the database."""
    parser.add_argument(
        "--db", help="SQLite file or postgresql:// URL (default: BOTKIT_DB, else botkit.db)"
    )
