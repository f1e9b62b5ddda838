"""botkit export: conversations out of the database, as CSV or JSON."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sqlite3
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from ..errors import ValidationError
from ..numbers import international
from ..settings import Settings

NAME = "export"
HELP = "export conversations or the consent ledger as CSV or JSON"
DESCRIPTION = (
    "transcripts: every MO and MT in thread order, with its thread, bot, direction, "
    "handset, our address, content, template, status, delivery status, gateway id and "
    "time. consent: every opt-in and opt-out (handset, our address, keyword or source, "
    "the MO that caused it, time), for an audit. To stdout or --output; rows are "
    "streamed, so exports of any size run in little memory."
)
EXAMPLES = """\
  botkit export transcripts --format csv --output transcripts.csv
  botkit export transcripts --format json --number +61400000001 --since 2026-03-01
  botkit export transcripts --format csv --since 2026-03-01T09:00:00+11:00 | gzip > march.csv.gz
  botkit export consent --format csv --output consent-audit.csv"""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("what", choices=("transcripts", "consent"), help="what to export")
    parser.add_argument(
        "--format", required=True, choices=("csv", "json"), dest="fmt", help="output format"
    )
    parser.add_argument("--number", help="only this handset, in international format")
    parser.add_argument(
        "--since", help="only messages from this ISO date or datetime on (UTC unless it says)"
    )
    parser.add_argument("--output", metavar="FILE", help="write here instead of stdout")
    parser.add_argument("--db", help="SQLite database file (default: BOTKIT_DB or botkit.db)")


def parse_since(text: str) -> datetime:
    """An ISO date (midnight) or datetime; one without an offset is taken as UTC."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValidationError(
            "--since",
            f"{text!r} is not an ISO date or datetime (2026-03-01, 2026-03-01T09:30:00+11:00)",
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def check_schema(database: str) -> None:
    """Refuse a file that is not a botkit database before writing any output."""
    uri = f"{Path(database).resolve().as_uri()}?mode=rw"
    try:
        with contextlib.closing(sqlite3.connect(uri, uri=True)) as conn:
            found = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'messages'").fetchone()
    except sqlite3.DatabaseError as exc:
        raise ValidationError("BOTKIT_DB", f"{database} is not a SQLite database ({exc})") from None
    if found is None:
        raise ValidationError("BOTKIT_DB", f"{database} holds no botkit messages table")


def main(args: argparse.Namespace) -> int:
    from ..db import existing_file

    handset = None if args.number is None else international(args.number, "--number")
    since = None if args.since is None else parse_since(args.since)
    database = str(existing_file(Settings.load(db=args.db).db))
    check_schema(database)
    if args.output is None:
        return _write(database, sys.stdout, args.what, args.fmt, handset, since)
    with open(args.output, "w", encoding="utf-8", newline="") as out:
        return _write(database, out, args.what, args.fmt, handset, since)


def _write(
    database: str,
    out: TextIO,
    what: str,
    fmt: str,
    handset: str | None,
    since: datetime | None,
) -> int:
    """Export to `out`; a reader that goes away early (`| head`) ends it quietly."""
    try:
        asyncio.run(_export(database, out, what, fmt, handset, since))
        out.flush()
    except BrokenPipeError:
        # As other command-line tools do; and Python must not complain again when it
        # flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return 0


async def _export(
    database: str,
    out: TextIO,
    what: str,
    fmt: str,
    handset: str | None,
    since: datetime | None,
) -> int:
    from ..db import Database
    from ..export import export_consent, export_transcripts
    from ..progress import progress_bar
    from ..store import Store

    db = await Database.open(database)
    try:
        # A bar would garble output that goes to the same terminal.
        export = export_consent if what == "consent" else export_transcripts
        with progress_bar(unit=" rows", desc="export", hidden=out.isatty()) as bar:
            return await export(
                Store(db), out, fmt, handset=handset, since=since, on_row=bar.update
            )
    finally:
        await db.close()
