"""botkit lists: subscription lists: import members from a CSV, show lists and members."""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import re
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from ..clock import parse_stamp
from ..errors import ValidationError
from ..localtime import parse_local, shown
from ..messages import ConsentChange
from ..numbers import international
from ..settings import Settings
from .options import add_db, opened_store

if TYPE_CHECKING:
    from ..store import Store

NAME = "lists"
HELP = "import subscribers into a list from a CSV, or show the lists and their members"
DESCRIPTION = (
    "import LIST FILE.csv: subscribe every number of the CSV (a 'number' column in "
    "international format; optional 'source' and 'consented_at' columns, the latter in "
    "BOTKIT_TIMEZONE unless it has an offset) to LIST, "
    "creating it if need be. Each subscription goes into the consent ledger with its "
    "source (--source for rows without one) and time. Every number is checked: bad rows "
    "are reported on stderr with their line and left out, good rows are kept; numbers "
    "that opted out are not subscribed. Exits 1 if any row was bad. "
    "show [LIST]: every list with its member counts, or the members of LIST (since when, "
    "in BOTKIT_TIMEZONE)."
)
EXAMPLES = """\
  botkit lists import deals signups.csv --source web --address 4433
  botkit lists import deals legacy.csv --description "Weekly deals, every Friday"
  botkit lists show
  botkit lists show deals"""

BATCH = 500
SOURCE = re.compile(r"[a-z][a-z0-9_-]*")


@dataclass(frozen=True)
class Line:
    """A good row of the CSV: its line number and the subscription it asks for."""

    number: int
    change: ConsentChange


@dataclass(frozen=True)
class BadLine:
    """A row of the CSV that is left out: its line number and what is wrong with it."""

    number: int
    reason: str


def configure(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(title="actions", required=True, metavar="ACTION")
    importer = actions.add_parser("import", help="subscribe the numbers of a CSV to a list")
    importer.add_argument("list", metavar="LIST", help="the list's name (created if need be)")
    importer.add_argument("file", metavar="FILE.csv", help="a CSV with a 'number' column")
    importer.add_argument(
        "--source", default="import", help="how the numbers consented: import, web, ..."
    )
    importer.add_argument(
        "--address",
        help="which of our numbers they subscribed to (default: the first of BOTKIT_NUMBERS)",
    )
    importer.add_argument("--description", help="what the list is, shown by `lists show`")
    importer.set_defaults(action=_import)
    shower = actions.add_parser("show", help="the lists and their counts, or one list's members")
    shower.add_argument("list", metavar="LIST", nargs="?", help="show this list's members")
    shower.set_defaults(action=_show)
    for sub in (importer, shower):
        add_db(sub)


def main(args: argparse.Namespace) -> int:
    return args.action(args)


def read_csv(path: Path) -> csv.DictReader[str]:
    """The rows of a CSV file that has a 'number' column, or ValidationError."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidationError(str(path), f"cannot be read ({exc})") from None
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None or "number" not in reader.fieldnames:
        raise ValidationError(str(path), "needs a header line with a 'number' column")
    return reader


def parse_rows(
    reader: csv.DictReader[str], name: str, address: str, source: str, zone: ZoneInfo
) -> Iterator[Line | BadLine]:
    """Each row, as the subscription it asks for or what is wrong with it (a time
    without an offset in `zone`)."""
    for record in reader:
        try:
            yield Line(reader.line_num, _change(record, name, address, source, zone))
        except ValidationError as exc:
            yield BadLine(reader.line_num, str(exc))


def _change(
    record: dict[str, str], name: str, address: str, source: str, zone: ZoneInfo
) -> ConsentChange:
    """The subscription a CSV row asks for; ValidationError naming the bad column."""
    return ConsentChange(
        handset=international(record.get("number") or "", "number"),
        address=address,
        action="opt-in",
        source=consent_source(record.get("source") or source, "source"),
        list=name,
        at=consented_at(record.get("consented_at") or "", zone),
    )


def consent_source(text: str, field: str) -> str:
    """How consent was given, as one lower-case word (web, import, sms, ...)."""
    source = text.strip().lower()
    if not SOURCE.fullmatch(source):
        raise ValidationError(field, f"{text!r} is not a source (one word: web, import, ...)")
    return source


def consented_at(text: str, zone: ZoneInfo) -> datetime | None:
    """An ISO date or time in the past (in `zone` unless it has an offset); None when
    blank."""
    if not text.strip():
        return None
    moment = parse_local(text, zone, "consented_at")
    if moment > datetime.now(UTC):
        raise ValidationError("consented_at", f"{text!r} is in the future")
    return moment


def _import(args: argparse.Namespace) -> int:
    from ..store.lists import ALREADY, OPTED_OUT, SUBSCRIBED, list_name

    settings = Settings.load(db=args.db)
    name = list_name(args.list)
    source = consent_source(args.source, "--source")
    numbers = settings.our_numbers()
    address = numbers.ours(args.address) if args.address else numbers.default
    rows = parse_rows(read_csv(Path(args.file)), name, address, source, settings.zone)
    done = asyncio.run(_subscribe(settings.db, name, args.description, rows, args.file))
    print(
        f"botkit lists import: {name}: {done[SUBSCRIBED]} subscribed, "
        f"{done[ALREADY]} already subscribed, {done[OPTED_OUT]} opted out (not subscribed), "
        f"{done['bad']} bad rows"
    )
    return 1 if done["bad"] else 0


async def _subscribe(
    database: str,
    name: str,
    description: str | None,
    rows: Iterable[Line | BadLine],
    file: str,
) -> Counter[str]:
    """Subscribe the good rows a batch at a time, reporting the bad ones on stderr; what
    each row did, counted ('bad' for those left out)."""
    from ..progress import progress_bar

    done: Counter[str] = Counter()
    batch: list[Line] = []
    async with opened_store(database) as store:
        await store.lists.create(name, description)
        with progress_bar(unit=" rows", desc="import") as bar:
            for row in rows:
                bar.update()
                if isinstance(row, BadLine):
                    print(f"{file}:{row.number}: {row.reason}", file=sys.stderr)
                    done["bad"] += 1
                    continue
                batch.append(row)
                if len(batch) == BATCH:
                    done += await _write(store, batch, file)
                    batch = []
            if batch:
                done += await _write(store, batch, file)
    return done


async def _write(store: Store, batch: list[Line], file: str) -> Counter[str]:
    """Subscribe one batch in one transaction; report the numbers that opted out."""
    from ..store.lists import OPTED_OUT

    outcomes = await store.lists.record([line.change for line in batch])
    for line, outcome in zip(batch, outcomes, strict=True):
        if outcome == OPTED_OUT:
            change = line.change
            print(
                f"{file}:{line.number}: {change.handset} opted out of {change.address}, "
                "not subscribed",
                file=sys.stderr,
            )
    return Counter(outcomes)


def _show(args: argparse.Namespace) -> int:
    from ..db import existing_database

    settings = Settings.load(db=args.db)
    database = existing_database(settings.db)
    for line in asyncio.run(_lines(database, args.list, settings.zone)):
        print(line)
    return 0


async def _lines(database: str, name: str | None, zone: ZoneInfo) -> list[str]:
    """What `lists show` prints: a line a list, or a line a member of list `name` (since
    when, in `zone`)."""
    async with opened_store(database) as store:
        if name is None:
            return [
                f"{row['name']:<16} {row['subscribed']:>6} subscribed "
                f"{row['unsubscribed']:>6} unsubscribed  {row['description']}".rstrip()
                for row in await store.lists.summary()
            ]
        return [
            f"{row['handset']:<16} {row['address']:<12} {row['source']:<8} "
            f"{shown(parse_stamp(row['since']), zone)}"
            for row in await store.lists.subscribers(name)
        ]
