"""botkit contacts: import contacts from a CSV (upsert by number), export them as one."""

from __future__ import annotations

import argparse
import asyncio
import csv
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from ..contacts import ATTRIBUTES
from ..errors import ValidationError
from ..export import inert, revived
from ..fields import FieldError, Fields, Value, dump
from ..numbers import international
from ..settings import Settings
from .lists import read_csv
from .options import add_db, opened_store

if TYPE_CHECKING:
    from ..contacts import Contact
    from ..db import Tx
    from ..router import Router
    from ..store import Store

NAME = "contacts"
HELP = "import contacts from a CSV (upsert by number), or export them as one"
DESCRIPTION = (
    "import FILE.csv: a 'number' column (international format), and any of 'name', "
    "'language', 'timezone' and the fields the bots declare (Bot(fields=...), read from "
    "--bots). A number that is not a contact yet becomes one; one that is is left as it "
    "is unless --update, which sets the columns given (an empty cell changes nothing). "
    "Values are read as their field's kind: dates as 2026-12-10, times as 2026-12-10 14:30 "
    "(in the contact's time zone unless they give an offset), yes/no for a bool. Every "
    "row is checked: bad rows are reported on stderr with their line and left out, good "
    "rows are kept; every change goes into the contacts' ledger. Exits 1 if any row was "
    "bad. export: every contact as CSV on stdout (or --output), in the columns import reads."
)
EXAMPLES = """\
  botkit contacts import patients.csv
  botkit contacts import appointments.csv --update
  botkit contacts export --output contacts.csv"""

BATCH = 500


@dataclass(frozen=True)
class Row:
    """A row of the CSV: its line, its number (E.164) and its other cells."""

    line: int
    number: str
    cells: dict[str, str]


def configure(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(title="actions", required=True, metavar="ACTION")
    importer = actions.add_parser("import", help="add or update contacts from a CSV")
    importer.add_argument("file", metavar="FILE.csv", help="a CSV with a 'number' column")
    importer.add_argument(
        "--update", action="store_true", help="also set the columns of numbers already contacts"
    )
    importer.add_argument(
        "--bots", help="the folder of the bots that declare the fields (default: BOTKIT_BOTS)"
    )
    importer.set_defaults(action=_import)
    exporter = actions.add_parser("export", help="every contact as CSV")
    exporter.add_argument("--output", "-o", help="write to this file (default: stdout)")
    exporter.set_defaults(action=_export)
    for sub in (importer, exporter):
        add_db(sub)


def main(args: argparse.Namespace) -> int:
    return args.action(args)


def _import(args: argparse.Namespace) -> int:
    from ..loader import load_bots
    from ..router import Router

    settings = Settings.load(db=args.db, **({"bots": args.bots} if args.bots else {}))
    router = Router(load_bots(settings.bots))
    reader = read_csv(Path(args.file))
    check_columns(reader.fieldnames or [], router.fields)
    done, bad = asyncio.run(_upsert(settings, router, rows(reader), args))
    for row in sorted(bad, key=lambda row: row.line):
        print(f"{args.file}:{row.line}: {row.reason}", file=sys.stderr)
    print(
        f"botkit contacts import: {done['created']} created, {done['updated']} updated, "
        f"{done['unchanged']} unchanged, {done['existing']} already contacts (left as they "
        f"are{'' if args.update else '; --update changes them'}), {done['bad']} bad rows"
    )
    return 1 if done["bad"] else 0


def check_columns(columns: Iterable[str], fields: Fields) -> None:
    """Refuse a CSV with a column that is no attribute or declared field, before any row
    is read: a typo would otherwise drop a column's values silently."""
    known = {"number", *ATTRIBUTES, *fields}
    unknown = [column for column in columns if column not in known]
    if unknown:
        declared = ", ".join(sorted(fields)) or "none (Bot(fields=...) declares them)"
        raise ValidationError(
            "columns",
            f"{', '.join(map(repr, unknown))} unknown: a contact has number, name, "
            f"language, timezone and the fields the bots declare: {declared}",
        )


@dataclass(frozen=True)
class BadRow:
    """A row left out: its line, and why."""

    line: int
    reason: str


def rows(reader: csv.DictReader[str]) -> Iterator[Row | BadRow]:
    """Each row with its number checked, or why it is bad (a number that is not
    international, or one an earlier line has)."""
    seen: dict[str, int] = {}
    for record in reader:
        line = reader.line_num
        try:
            number = international(record.get("number") or "", "number")
        except ValidationError as exc:
            yield BadRow(line, str(exc))
            continue
        if number in seen:
            yield BadRow(line, f"{number} is on line {seen[number]} too")
            continue
        seen[number] = line
        cells = {k: v or "" for k, v in record.items() if k and k != "number"}
        yield Row(line, number, cells)


async def _upsert(
    settings: Settings, router: Router, lines: Iterable[Row | BadRow], args: argparse.Namespace
) -> tuple[Counter[str], list[BadRow]]:
    """Write the good rows a batch at a time (each contact's campaign events planned
    with it); what each row did, counted, and the bad rows left out."""
    from ..campaign import sending_from
    from ..progress import progress_bar

    done: Counter[str] = Counter()
    bad: list[BadRow] = []
    batch: list[Row] = []
    async with opened_store(settings.db) as store:
        store.contacts.fields = router.fields
        store.contacts.zone = settings.zone
        store.contacts.campaigns = sending_from(router.campaigns, settings.our_numbers())
        with progress_bar(unit=" rows", desc="import") as bar:
            for line in lines:
                bar.update()
                if isinstance(line, BadRow):
                    bad.append(line)
                    continue
                batch.append(line)
                if len(batch) == BATCH:
                    done += await _write(store, batch, args, bad)
                    batch = []
            if batch:
                done += await _write(store, batch, args, bad)
    done["bad"] = len(bad)
    return done, bad


async def _write(
    store: Store, batch: list[Row], args: argparse.Namespace, bad: list[BadRow]
) -> Counter[str]:
    """One batch in one transaction; the rows with a bad value are added to `bad`."""
    from ..store.contacts import Author

    author = Author("import", Path(args.file).name)

    async def write(tx: Tx) -> tuple[Counter[str], list[BadRow]]:
        done: Counter[str] = Counter()
        refused: list[BadRow] = []
        now = store.contacts.now()
        for row in batch:
            contact = await store.contacts.read(tx, row.number)
            if contact.stored and not args.update:
                done["existing"] += 1
                continue
            try:
                apply(contact, row.cells)
            except FieldError as exc:
                refused.append(BadRow(row.line, str(exc)))
                continue
            if await store.contacts.write(tx, contact, author, now):
                done["updated" if contact.stored else "created"] += 1
            else:
                done["unchanged"] += 1
        return done, refused

    done, refused = await store.db.write(write)
    bad.extend(refused)
    return done


def apply(contact: Contact, cells: dict[str, str]) -> None:
    """Set what a row's cells give; an empty cell changes nothing. A cell the export made
    inert (`'=HYPERLINK(...)`) is read as it was."""
    given = {column: revived(text) for column, text in cells.items() if text.strip()}
    fields = {column: text for column, text in given.items() if column not in ATTRIBUTES}
    contact.update({**{a: given[a] for a in ATTRIBUTES if a in given}, "fields": fields})


def _export(args: argparse.Namespace) -> int:
    from ..db import existing_database

    settings = Settings.load(db=args.db)
    database = existing_database(settings.db)
    if args.output is None:
        count = asyncio.run(export(database, settings, sys.stdout))
    else:
        with open(args.output, "w", newline="", encoding="utf-8") as out:
            count = asyncio.run(export(database, settings, out))
    print(f"botkit contacts export: {count} contacts", file=sys.stderr)
    return 0


async def export(database: str, settings: Settings, out: TextIO) -> int:
    """Write every contact to `out` as CSV, in number order; return how many. Text a
    spreadsheet would run as a formula gets a leading `'`, as other exports' does."""
    count = 0
    async with opened_store(database) as store:
        store.contacts.zone = settings.zone
        names = await store.contacts.stored_fields()
        writer = csv.writer(out)
        writer.writerow(["number", *ATTRIBUTES, *names])
        after = None
        while page := await store.contacts.page(after, BATCH):
            for contact in page:
                values = contact.fields
                cells = [getattr(contact, a) or "" for a in ATTRIBUTES] + [
                    shown(values[name]) if name in values else "" for name in names
                ]
                writer.writerow([contact.number, *map(inert, cells)])
            count += len(page)
            after = page[-1].number
    return count


def shown(value: Value) -> str:
    """A field's value as the import reads it back: a time in the contact's zone, with
    its offset."""
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds" if value.second else "minutes")
    return dump(value)
