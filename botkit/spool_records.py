"""The spool's records: a callback a line, `{crc32:08x} {json}`, written, read back and
counted (spool.py keeps the files they are in).

A line cut short by a crash, or whose checksum fails, was never answered 200: reading
passes over it. Each record carries FORMAT, for a later botkit to read it by.
"""

from __future__ import annotations

import json
import logging
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("botkit.spool")

FORMAT = 1


@dataclass
class Record:
    """One spooled callback: `kind` is `mo` or `dlr`, `fields` its parameters; `line`
    as read, and the offset just past it."""

    kind: str
    at: float
    fields: dict[str, Any]
    line: bytes = field(default=b"", repr=False, compare=False)
    end: int = field(default=0, compare=False)


def encode(kind: str, at: float, fields: dict[str, Any]) -> bytes:
    """A record as its line: the CRC-32 of its JSON, then the JSON."""
    value = {"v": FORMAT, "kind": kind, "at": at, "fields": fields}
    data = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
    return b"%08x %s\n" % (zlib.crc32(data), data)


def _checked(line: bytes) -> bytes | None:
    """The JSON of a whole line whose checksum holds, else None."""
    crc, _, data = line.rstrip(b"\n").partition(b" ")
    try:
        return data if len(crc) == 8 and int(crc, 16) == zlib.crc32(data) else None
    except ValueError:
        return None


def decode(line: bytes) -> Record | None:
    """The record of a whole line (ending in a newline), or None if it is torn or garbled."""
    data = _checked(line)
    try:
        value = json.loads(data) if data is not None else None
        if not isinstance(value, dict) or not isinstance(value.get("fields"), dict):
            return None
        return Record(str(value["kind"]), float(value["at"]), value["fields"], line)
    except (ValueError, KeyError, TypeError):
        return None


def read(path: Path, offset: int, limit: int) -> tuple[list[Record], int]:
    """Up to `limit` records of `path` from byte `offset`, and the offset after the last
    line read. A line that does not check out is passed over (logged); a last line with
    no newline was cut short by a crash, and is left unread."""
    records: list[Record] = []
    with path.open("rb") as f:
        f.seek(offset)
        while len(records) < limit:
            line = f.readline()
            if not line.endswith(b"\n"):
                break
            record = decode(line)
            offset += len(line)
            if record is None:
                log.warning("spool %s: a garbled record at byte %d passed over", path.name, offset)
                continue
            record.end = offset
            records.append(record)
    return records, offset


def count(path: Path) -> tuple[int, float | None]:
    """How many records `path` holds (their checksums checked, not their JSON read),
    and when the first came."""
    total, first = 0, None
    with path.open("rb") as f:
        for line in f:
            if not line.endswith(b"\n") or _checked(line) is None:
                continue
            if first is None and (record := decode(line)) is not None:
                first = record.at
            total += 1
    return total, first
