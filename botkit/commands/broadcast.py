"""botkit broadcast: a template, or a conversation, for every member of a list or CSV."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from ..addresses import OurNumbers
from ..broadcast import QuietHours, Report, Row, broadcast, read_csv
from ..db import Database
from ..errors import ValidationError
from ..loader import load_bots
from ..localtime import parse_local, shown
from ..migrations import migrate
from ..progress import progress_bar
from ..settings import Settings
from ..store import Store
from ..store.broadcasts import Plan
from ..templates import SMSTemplates
from .options import add_db

NAME = "broadcast"
HELP = "send a template or start a conversation for every member of a list or a CSV"
DESCRIPTION = (
    "Queue one message (a template, rendered with the CSV's columns as variables) or the "
    "start of a conversation (a bot's timer, e.g. a survey's) for each recipient, in the "
    "database that `botkit run` sends from, at BOTKIT_SEND_RATE. Opted-out numbers are "
    "skipped and counted; bad numbers are reported with their line. Run the same command "
    "again after an interruption: it goes on where it stopped and sends nobody a second "
    "copy (the broadcast's --name, by default derived from what it sends to whom)."
)
EXAMPLES = """\
  botkit broadcast --csv customers.csv --template sale/spring.txt --expires-in 24h
  botkit broadcast --list deals --template deals/friday.txt --quiet-hours 21:00-08:00
  botkit broadcast --csv patients.csv --survey csat --name csat-march
  botkit broadcast --list deals --template deals/friday.txt --at 2026-12-04T10:00
  botkit broadcast --list deals --template deals/friday.txt --at 2026-12-04T10:00:00+11:00"""


def configure(parser: argparse.ArgumentParser) -> None:
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--csv", metavar="FILE", help="a CSV with a 'number' column")
    who.add_argument("--list", metavar="NAME", help="the subscribed members of a list")
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--template", help="an SMS template under the templates folder")
    what.add_argument("--survey", help="start this survey for each recipient")
    what.add_argument("--start", metavar="BOT:TIMER", help="start a bot's conversation")
    parser.add_argument("--name", help="the broadcast's name, to resume it (default: derived)")
    parser.add_argument(
        "--address",
        help="which of our numbers it comes from (default: the first of BOTKIT_NUMBERS)",
    )
    parser.add_argument(
        "--mask", help="a sender name shown instead of the number (the default number only)"
    )
    expiry = parser.add_mutually_exclusive_group()
    expiry.add_argument(
        "--expires",
        help="time after which carriers drop it: 2026-12-24T18:00 (BOTKIT_TIMEZONE) or with "
        "an offset",
    )
    expiry.add_argument("--expires-in", help="or a delay from now: 90m, 24h, 2d")
    parser.add_argument(
        "--quiet-hours",
        help="hold messages in this window of each recipient's local time: 21:00-08:00 "
        "(in BOTKIT_TIMEZONE for a number whose prefix tells no zone)",
    )
    parser.add_argument(
        "--at",
        help="send at this time rather than now (kept across restarts): 2026-12-24T09:00 is "
        "9:00 in BOTKIT_TIMEZONE, an offset (+11:00, Z) overrides it; a time that daylight "
        "saving skips is refused, one it repeats means its first occurrence",
    )
    add_db(parser)
    parser.add_argument("--bots", help="folder of bot modules (default: BOTKIT_BOTS)")
    parser.add_argument("--templates", help="folder of templates (default: BOTKIT_TEMPLATES)")


def main(args: argparse.Namespace) -> int:
    settings = Settings.load(db=args.db, bots=args.bots, templates=args.templates)
    zone = settings.zone
    numbers = settings.our_numbers()
    plan = _plan(settings, args, numbers)
    quiet = QuietHours.parse(args.quiet_hours, zone) if args.quiet_hours else None
    at = parse_local(args.at, zone, "--at") if args.at else None
    report = asyncio.run(_broadcast(settings, args, plan, numbers, quiet=quiet, at=at))
    for line, reason in report.invalid:
        print(f"line {line}: {reason}", file=sys.stderr)
    print(
        f"botkit broadcast: {report.queued} queued, {report.skipped} skipped (opted out), "
        f"{report.already} already done, {len(report.invalid)} bad numbers"
    )
    if when := _when(zone, at, plan.expires):
        print(f"botkit broadcast: {when}")
    return 1 if report.invalid else 0


def _when(zone: ZoneInfo, at: datetime | None, expires: str | None) -> str:
    """When the broadcast goes and expires, in BOTKIT_TIMEZONE with its offset, so that
    a time given without one can be checked; empty when neither was given."""
    times = [f"sends at {shown(at, zone)}"] if at else []
    if expires:
        times.append(f"expires at {shown(datetime.fromisoformat(expires), zone)}")
    return f"{', '.join(times)} ({zone.key})" if times else ""


async def _broadcast(
    settings: Settings,
    args: argparse.Namespace,
    plan: Plan,
    numbers: OurNumbers,
    *,
    quiet: QuietHours | None,
    at: datetime | None,
) -> Report:
    """Queue `plan` for the CSV's rows or the list's members, in BOTKIT_DB."""
    db = await Database.open(settings.db)
    try:
        await migrate(db)
        store = Store(db)
        store.contacts.zone = settings.zone  # of the contacts its templates get
        rows = read_csv(args.csv) if args.csv else await _members(store, args.list)
        with progress_bar(total=len(rows), unit=" recipients", desc="broadcast") as bar:
            return await broadcast(
                store,
                SMSTemplates(settings.templates),
                plan,
                rows,
                numbers=numbers,
                quiet=quiet,
                at=at,
                on_row=bar.update,
            )
    finally:
        await db.close()


def _plan(settings: Settings, args: argparse.Namespace, numbers: OurNumbers) -> Plan:
    bot = entry = None
    if args.survey:
        bot, entry = _survey_entry(settings, args.survey)
    elif args.start:
        bot, _, entry = args.start.partition(":")
        if not bot or not entry:
            raise ValidationError("--start", f"{args.start!r} is not BOT:TIMER")
    address = numbers.ours(args.address) if args.address else numbers.default
    mask = _mask(args)
    return Plan(
        name=args.name or _derived_name(args, address, numbers.default, mask),
        address=address,
        template=args.template,
        bot=bot,
        entry=entry,
        expires=_expires(args, settings.zone),
        mask=mask,
    )


def _mask(args: argparse.Namespace) -> str | None:
    """--mask, for a template broadcast: a conversation's messages come from its bot."""
    if args.mask is None:
        return None
    if not args.template:
        raise ValidationError("--mask", "goes with --template (a bot's replies take its own)")
    if not args.mask.strip():
        raise ValidationError("--mask", "is empty")
    return args.mask


def _survey_entry(settings: Settings, survey: str) -> tuple[str, str]:
    """The bot that runs survey `survey`, and the timer that starts it."""
    entry = f"survey:{survey}"
    try:
        bots = load_bots(settings.bots)
    except FileNotFoundError as exc:
        raise ValidationError("--survey", f"no bot runs it: {exc}") from None
    for bot in bots:
        if entry in bot.timers:
            return bot.name, entry
    raise ValidationError("--survey", f"no bot in {settings.bots}/ runs a survey {survey!r}")


def _derived_name(args: argparse.Namespace, address: str, default: str, mask: str | None) -> str:
    """A name from what is sent to whom, from which number (when not the default) and
    under which mask, so that the same command resumes and another one does not."""
    what = args.template or args.survey or args.start
    who = hashlib.sha256(Path(args.csv).read_bytes()).hexdigest()[:12] if args.csv else args.list
    name = f"{what}->{who}"
    if address != default:
        name += f" from {address}"
    if mask is not None:
        name += f" as {mask}"
    return name


def _expires(args: argparse.Namespace, zone: ZoneInfo) -> str | None:
    """--expires (in BOTKIT_TIMEZONE unless it has an offset), or --expires-in from now,
    as RFC 3339; refused when it is not in the future (every message would expire unsent)."""
    if args.expires:
        moment = parse_local(args.expires, zone, "--expires")
        if moment <= datetime.now(UTC):
            raise ValidationError("--expires", f"{args.expires} has passed: nothing would go")
        return moment.isoformat()
    if not args.expires_in:
        return None
    units = {"m": "minutes", "h": "hours", "d": "days"}
    number, unit = args.expires_in[:-1], args.expires_in[-1:]
    if unit not in units or not number.isdigit() or int(number) == 0:
        raise ValidationError(
            "--expires-in", f"{args.expires_in!r} is not a time to come like 90m, 24h, 2d"
        )
    moment = datetime.now(UTC) + timedelta(**{units[unit]: int(number)})
    return moment.replace(microsecond=0).isoformat()


async def _members(store: Store, name: str) -> list[Row]:
    members = await store.lists.members(name)
    return [Row(index + 1, handset) for index, handset in enumerate(members)]
