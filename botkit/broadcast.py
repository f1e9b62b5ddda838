"""Broadcasts: who gets one, what they get, and when their quiet hours allow it.

    plan = Plan(name="spring-sale", address="4433", template="sale/spring.txt")
    report = await broadcast(store, templates, plan, read_csv(path), numbers=numbers)

Recipients come from a list's members or a CSV file (a `number` column, any other
columns become template variables). Numbers that are not in international format are
reported with their line and left out; opted-out numbers are skipped and counted.
"""

from __future__ import annotations

import csv
import dataclasses
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from .addresses import OurNumbers
from .contacts import Contact
from .errors import BotkitError, ValidationError
from .localtime import zones_of
from .numbers import international
from .store import Store
from .store.broadcasts import Plan, Recipient
from .templates import SMSTemplates

BATCH = 200
UTC_ZONE = ZoneInfo("UTC")


@dataclass(frozen=True)
class Row:
    """One recipient as read: the line it came from, its number, its template variables."""

    line: int
    number: str
    variables: dict[str, str] = field(default_factory=dict)


@dataclass
class Report:
    """What a broadcast run did."""

    queued: int = 0
    skipped: int = 0
    already: int = 0
    invalid: list[tuple[int, str]] = field(default_factory=list)


def read_csv(path: str | Path) -> list[Row]:
    """The recipients of a CSV file with a `number` column (other columns are variables)."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or "number" not in reader.fieldnames:
            raise ValidationError(str(path), "needs a header line with a 'number' column")
        return [
            Row(
                reader.line_num,
                (record.pop("number") or "").strip(),
                {k: v for k, v in record.items() if k},
            )
            for record in reader
        ]


@dataclass(frozen=True)
class QuietHours:
    """A nightly window (e.g. 21:00 to 08:00, local to each recipient) when nothing is
    sent: messages wait for the recipient's morning. A number whose zone its prefix does
    not tell (a UK mobile, a satellite phone) keeps the window in `zone` (BOTKIT_TIMEZONE)."""

    start: time
    end: time
    zone: ZoneInfo = UTC_ZONE

    @classmethod
    def parse(cls, text: str, zone: ZoneInfo = UTC_ZONE) -> QuietHours:
        """From "21:00-08:00", for numbers of no known zone in `zone` (default UTC)."""
        try:
            start, end = (time.fromisoformat(part.strip()) for part in text.split("-"))
        except ValueError:
            raise ValidationError("--quiet-hours", f"{text!r} is not like 21:00-08:00") from None
        return cls(start, end, zone)

    def quiet(self, local: datetime) -> bool:
        now = local.time()
        if self.start <= self.end:
            return self.start <= now < self.end
        return now >= self.start or now < self.end

    def release(self, now: datetime, number: str) -> datetime | None:
        """When a message to `number` may go, if its zone is in quiet hours now. A number
        may span several zones (Australian mobiles): it waits for morning in all."""
        latest = None
        for zone in zones_of(number) or [self.zone]:
            local = now.astimezone(zone)
            if not self.quiet(local):
                continue
            morning = local.replace(
                hour=self.end.hour, minute=self.end.minute, second=0, microsecond=0
            )
            if morning <= local:
                morning += timedelta(days=1)
            if latest is None or morning > latest:
                latest = morning
        return latest


async def broadcast(
    store: Store,
    templates: SMSTemplates,
    plan: Plan,
    rows: Iterable[Row] | AsyncIterator[Row],
    *,
    numbers: OurNumbers,
    quiet: QuietHours | None = None,
    at: datetime | None = None,
    on_row: Callable[[], None] = lambda: None,
) -> Report:
    """Queue `plan` for every row not done already (in batches, each one transaction),
    to go out at `at` (a scheduled broadcast) or now, and in no one's quiet hours, from
    `plan.address` (refused before anything is queued unless it is one of `numbers`)."""
    plan = dataclasses.replace(plan, address=numbers.ours(plan.address))
    numbers.origin(plan.address, mask=plan.mask)  # a mask it cannot carry: refused now
    broadcast_id = await store.broadcasts.open(plan)
    done = await store.broadcasts.done(broadcast_id)
    report = Report()
    batch: list[Recipient] = []
    async for row in _each(rows):
        on_row()
        try:
            number = international(row.number, "number")
        except ValidationError as exc:
            report.invalid.append((row.line, exc.reason))
            continue
        if number in done:
            report.already += 1
            continue
        done.add(number)
        start = max(at, store.clock()) if at else store.clock()
        contact = await store.contacts.get(number) if plan.template is not None else None
        batch.append(_recipient(templates, plan, contact, number, row, start, quiet))
        if len(batch) >= BATCH:
            await _flush(store, broadcast_id, plan, batch, report, numbers)
    await _flush(store, broadcast_id, plan, batch, report, numbers)
    return report


async def _each(rows: Iterable[Row] | AsyncIterator[Row]) -> AsyncIterator[Row]:
    if hasattr(rows, "__aiter__"):
        async for row in rows:  # type: ignore[union-attr]
            yield row
    else:
        for row in rows:  # type: ignore[union-attr]
            yield row


def _recipient(
    templates: SMSTemplates,
    plan: Plan,
    contact: Contact | None,
    number: str,
    row: Row,
    now: datetime,
    quiet: QuietHours | None,
) -> Recipient:
    """A recipient, and the template rendered for them: in their contact's language,
    with `contact`, `number` and the row's columns."""
    reply = None
    if plan.template is not None:
        assert contact is not None
        variables = {"number": number, "contact": contact, **row.variables}
        try:
            reply = templates.reply(plan.template, variables, contact.language)
        except BotkitError as exc:
            raise ValidationError(f"line {row.line}", str(exc)) from None
    release = quiet.release(now, number) if quiet else None
    return Recipient(number, reply, release or now)


async def _flush(
    store: Store,
    broadcast_id: int,
    plan: Plan,
    batch: list[Recipient],
    report: Report,
    numbers: OurNumbers,
) -> None:
    if not batch:
        return
    queued, skipped = await store.broadcasts.add(broadcast_id, plan, batch, numbers)
    report.queued += queued
    report.skipped += skipped
    batch.clear()
