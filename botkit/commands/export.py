"""botkit export: conversations, the consent ledger or survey results, as CSV or JSON."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sqlite3
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from ..errors import ValidationError
from ..localtime import parse_local
from ..numbers import international
from ..settings import Settings
from .options import add_db

if TYPE_CHECKING:
    from ..store import Store

NAME = "export"
HELP = "export conversations, the consent ledger or a survey's results as CSV or JSON"
DESCRIPTION = (
    "transcripts: every MO and MT in thread order, with its thread, bot, direction, "
    "handset, our address, content, template, status, delivery status, gateway id and "
    "time. consent: every opt-in and opt-out (handset, our address, keyword or source, "
    "the MO that caused it, time), for an audit. survey NAME: one row per respondent "
    "(thread, handset, status: started, completed or incomplete; start and end time) "
    "and a column per question. To stdout or --output; rows are streamed, so exports "
    "of any size run in little memory."
)
EXAMPLES = """\
  botkit export transcripts --format csv --output transcripts.csv
  botkit export transcripts --format json --number +61400000001 --since 2026-03-01
  botkit export transcripts --format csv --since 2026-03-01T09:00:00+11:00 | gzip > march.csv.gz
  botkit export consent --format csv --output consent-audit.csv
  botkit export survey satisfaction --format csv --output satisfaction.csv"""


@dataclass(frozen=True)
class Export:
    """What to export, in which format, filtered how."""

    what: str
    fmt: str
    name: str | None
    handset: str | None
    since: datetime | None


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("what", choices=("transcripts", "consent", "survey"), help="what to export")
    parser.add_argument("name", nargs="?", help="the survey's name (survey only)")
    parser.add_argument(
        "--format", required=True, choices=("csv", "json"), dest="fmt", help="output format"
    )
    parser.add_argument("--number", help="only this handset, in international format")
    parser.add_argument(
        "--since",
        help="only messages (or respondents who started) from this ISO date or time on "
        "(in BOTKIT_TIMEZONE unless it has an offset)",
    )
    parser.add_argument("--output", metavar="FILE", help="write here instead of stdout")
    add_db(parser)


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
    from ..db import existing_database, is_url

    if (args.what == "survey") != (args.name is not None):
        raise ValidationError("NAME", "give a survey's name after survey, and only there")
    handset = None if args.number is None else international(args.number, "--number")
    settings = Settings.load(db=args.db)
    since = None if args.since is None else parse_local(args.since, settings.zone, "--since")
    database = existing_database(settings.db)
    if not is_url(database):
        check_schema(database)
    what = Export(args.what, args.fmt, args.name, handset, since)
    if args.output is None:
        return _write(database, sys.stdout, what)
    with open(args.output, "w", encoding="utf-8", newline="") as out:
        return _write(database, out, what)


def _write(database: str, out: TextIO, what: Export) -> int:
    """Export to `out`; a reader that goes away early (`| head`) ends it quietly."""
    try:
        asyncio.run(_export(database, out, what))
        out.flush()
    except BrokenPipeError:
        # As other command-line tools do; and Python must not complain again when it
        # flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return 0


async def _export(database: str, out: TextIO, what: Export) -> int:
    from ..db import Database, redact
    from ..export import export_consent, export_survey, export_transcripts
    from ..progress import progress_bar
    from ..store import Store

    db = await Database.open(database)
    filters = {"handset": what.handset, "since": what.since}
    try:
        await _check_contents(Store(db), what, redact(database))
        # A bar would garble output that goes to the same terminal.
        with progress_bar(unit=" rows", desc="export", hidden=out.isatty()) as bar:
            store = Store(db)
            if what.what == "survey":
                assert what.name is not None
                return await export_survey(
                    store, out, what.fmt, what.name, **filters, on_row=bar.update
                )
            export = export_consent if what.what == "consent" else export_transcripts
            return await export(store, out, what.fmt, **filters, on_row=bar.update)
    finally:
        await db.close()


async def _check_contents(store: Store, what: Export, database: str) -> None:
    """Refuse a database without botkit's tables, or a survey nobody has started in
    it, before writing any output."""
    try:
        await store.transcripts.latest_id()
    except Exception:
        raise ValidationError("BOTKIT_DB", f"{database} holds no botkit messages table") from None
    if what.name is not None and await store.surveys.questions(what.name) is None:
        raise ValidationError(
            "NAME", f"no survey named {what.name!r} has been started in {database}"
        )
