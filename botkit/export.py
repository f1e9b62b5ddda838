"""Exports, as CSV or JSON, streamed: conversations (every message, in thread order),
the consent ledger (every opt-in and opt-out, for an audit) and a survey's results (one
row per respondent, one column per question).

    count = await export_transcripts(store, sys.stdout, "csv", handset="+61400000001")
    count = await export_consent(store, sys.stdout, "csv")
    count = await export_survey(store, sys.stdout, "json", "satisfaction")
    response = StreamingResponse(consent_text(store, "csv", LedgerFilter(source="web")))

Rows are written as they are read, so an export of a million messages holds a batch of
them in memory, not all.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import re
from collections.abc import AsyncGenerator, Callable, Mapping
from datetime import datetime
from typing import Any, Protocol, TextIO

from .db import Row
from .errors import ValidationError
from .store import Store
from .store.consent import COLUMNS as CONSENT_COLUMNS
from .store.consent import LedgerFilter
from .store.surveys import COLUMNS as SURVEY_COLUMNS
from .store.transcripts import COLUMNS as TRANSCRIPT_COLUMNS

FORMATS = ("csv", "json")
# A download is sent in pieces of about this many characters.
CHUNK = 64 * 1024


class RowWriter(Protocol):
    def write(self, row: dict[str, Any]) -> None: ...
    def close(self) -> None: ...


class CSVRows:
    """A header line, then one line per row (RFC 4180 quoting). Text a spreadsheet would
    run as a formula (a handset's `=HYPERLINK(...)`) gets a leading `'`, which the
    spreadsheet shows as text; numbers such as +61412345678 and -5 stay as they are.
    JSON exports keep every text verbatim."""

    def __init__(self, out: TextIO, columns: tuple[str, ...]) -> None:
        self._writer = csv.DictWriter(out, fieldnames=columns)
        self._writer.writeheader()

    def write(self, row: dict[str, Any]) -> None:
        self._writer.writerow({key: inert(value) for key, value in row.items()})

    def close(self) -> None:
        pass


FORMULA = re.compile(r"[=@\t\r]|[+-](?![\d.]+$)")


def inert(value: Any) -> Any:
    """`value`, with a leading `'` if it is text a spreadsheet would take for a formula."""
    if isinstance(value, str) and FORMULA.match(value):
        return "'" + value
    return value


def revived(text: str) -> str:
    """A cell of a CSV `inert` wrote, as it was: without the `'` before a formula."""
    return text[1:] if text.startswith("'") and FORMULA.match(text[1:]) else text


class JSONRows:
    """One JSON array, one object per line. Gateway ids are strings: they are 64-bit,
    and JavaScript's numbers lose digits past 2**53."""

    def __init__(self, out: TextIO, columns: tuple[str, ...]) -> None:
        self._out = out
        self._separator = "[\n"

    def write(self, row: dict[str, Any]) -> None:
        if row.get("gateway_id") is not None:
            row = {**row, "gateway_id": str(row["gateway_id"])}
        self._out.write(self._separator + json.dumps(row, ensure_ascii=False))
        self._separator = ",\n"

    def close(self) -> None:
        self._out.write("[]\n" if self._separator == "[\n" else "\n]\n")


WRITERS: dict[str, Callable[[TextIO, tuple[str, ...]], RowWriter]] = {
    "csv": CSVRows,
    "json": JSONRows,
}


async def export_transcripts(
    store: Store,
    out: TextIO,
    fmt: str,
    *,
    handset: str | None = None,
    since: datetime | None = None,
    on_row: Callable[[], None] = lambda: None,
) -> int:
    """Write every message of the store (or of one handset, from a moment on) to `out`
    in `fmt`; return how many."""
    rows = store.transcripts.rows(handset=handset, since=since)
    return await export_rows(rows, out, fmt, TRANSCRIPT_COLUMNS, on_row)


async def export_consent(
    store: Store,
    out: TextIO,
    fmt: str,
    *,
    handset: str | None = None,
    since: datetime | None = None,
    on_row: Callable[[], None] = lambda: None,
) -> int:
    """Write the consent ledger (of one handset, from a moment on) to `out`; how many."""
    match = LedgerFilter(handsets=None if handset is None else (handset,), since=since)
    return await export_rows(store.consent.rows(match), out, fmt, CONSENT_COLUMNS, on_row)


def consent_text(store: Store, fmt: str, match: LedgerFilter) -> AsyncGenerator[str, None]:
    """The consent ledger lines `match` picks, as `export_consent` writes them, in pieces
    of text: for a download that starts before the last row is read."""
    return text_pieces(store.consent.rows(match), fmt, CONSENT_COLUMNS)


async def export_survey(
    store: Store,
    out: TextIO,
    fmt: str,
    name: str,
    *,
    handset: str | None = None,
    since: datetime | None = None,
    on_row: Callable[[], None] = lambda: None,
) -> int:
    """Write survey `name`'s results to `out`: a row per respondent (of one handset, or
    started from a moment on) with its status and a column per question; how many.
    In CSV a yes/no answer is `yes` or `no`, in JSON true or false."""
    columns, rows = await survey_rows(store, name, fmt, handset=handset, since=since)
    return await export_rows(rows, out, fmt, columns, on_row)


async def survey_rows(
    store: Store,
    name: str,
    fmt: str,
    *,
    handset: str | None = None,
    since: datetime | None = None,
) -> tuple[tuple[str, ...], AsyncGenerator[dict[str, Any], None]]:
    """The columns of survey `name`'s results and its rows as `fmt` writes them, for the
    command line and the dashboard's download alike; ValidationError if none started it."""
    questions = await store.surveys.questions(name)
    if questions is None:
        raise ValidationError("NAME", f"no survey named {name!r} has been started")
    ids = [question["id"] for question in questions]
    rows = store.surveys.rows(name, ids, handset=handset, since=since)
    if fmt == "csv":
        rows = _yes_no_as_words(rows)
    return (*SURVEY_COLUMNS, *ids), rows


async def _yes_no_as_words(
    rows: AsyncGenerator[dict[str, Any], None],
) -> AsyncGenerator[dict[str, Any], None]:
    """Rows with True and False as `yes` and `no`, as a spreadsheet reader expects."""
    words = {True: "yes", False: "no"}
    async with contextlib.aclosing(rows):
        async for row in rows:
            yield {k: words[v] if isinstance(v, bool) else v for k, v in row.items()}


async def export_rows(
    rows: AsyncGenerator[Row | Mapping[str, Any], None],
    out: TextIO,
    fmt: str,
    columns: tuple[str, ...],
    on_row: Callable[[], None],
) -> int:
    """Write a stream of rows to `out` in `fmt`; return how many."""
    count = 0

    def counted() -> None:
        nonlocal count
        count += 1
        on_row()

    async with contextlib.aclosing(text_pieces(rows, fmt, columns, counted)) as pieces:
        async for piece in pieces:
            out.write(piece)
    return count


async def text_pieces(
    rows: AsyncGenerator[Row | Mapping[str, Any], None],
    fmt: str,
    columns: tuple[str, ...],
    on_row: Callable[[], None] = lambda: None,
) -> AsyncGenerator[str, None]:
    """A stream of rows as text in `fmt`, in pieces of about CHUNK characters."""
    out = io.StringIO()
    writer = WRITERS[fmt](out, columns)
    async with contextlib.aclosing(rows):
        async for row in rows:
            writer.write(dict(row))
            on_row()
            if out.tell() >= CHUNK:
                yield _taken(out)
    writer.close()
    yield _taken(out)


def _taken(out: io.StringIO) -> str:
    """What `out` holds, emptying it."""
    text = out.getvalue()
    out.seek(0)
    out.truncate()
    return text
