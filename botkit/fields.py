"""Contact fields: typed values a bot declares (`Bot(fields={"appointment_at": datetime})`).

A field has a kind: text, number, date, datetime or bool. A value is kept as one
canonical text (ISO dates, UTC stamps, "true"/"false"), so that the same value is the
same text whichever way it came (a handler, a CSV cell, the dashboard, the API), and a
filter by field compares text in either database. Text from a person (a CSV cell, a
form) is read by `Field.parse`; a Python value from a handler or JSON by `Field.check`.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from .clock import parse_stamp, stamp
from .localtime import localize

Value = str | int | float | bool | date | datetime

UTC_ZONE = ZoneInfo("UTC")
KINDS = ("text", "number", "date", "datetime", "bool")
# The Python type a bot declares, and the kind it means.
TYPES: dict[type, str] = {
    str: "text",
    int: "number",
    float: "number",
    bool: "bool",
    date: "date",
    datetime: "datetime",
}
NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
# Names a contact has already: a field may not take one (a CSV column, the API).
RESERVED = frozenset({"number", "name", "language", "timezone", "lists", "fields"})
TEXT_LIMIT = 1000
# A number with commas between its thousands (1,200 or -12,345.5): no other comma.
GROUPED = re.compile(r"[+-]?\d{1,3}(,\d{3})+(\.\d*)?")
LARGEST = sys.float_info.max
TRUE = frozenset({"true", "yes", "y", "1"})
FALSE = frozenset({"false", "no", "n", "0"})


# Control characters no name or value needs: NUL (SQLite keeps it, PostgreSQL cannot),
# the other C0 controls but tab and line breaks, DEL, and the bidirectional overrides
# and isolates, which make a name show as another (a spoof on the dashboard).
CONTROLS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u202a-\u202e\u2066-\u2069]")


def unstorable(text: str) -> str | None:
    """Why `text` cannot be stored: half of a surrogate pair (JSON's "\\ud800"), which
    is no character and no UTF-8, or a control character; None if it can be."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return "holds half of a surrogate pair, not a character"
    if found := CONTROLS.search(text):
        return f"holds a control character (U+{ord(found.group()):04X})"
    return None


class FieldError(ValueError):
    """A value a field cannot take, or a field that is not declared; the message names
    the field and says why, for a handler's error, a CSV line or a 400."""


def field_name(name: str) -> str:
    """`name` if it can name a field (lower-case letters, digits and '_', a letter
    first, at most 64), else FieldError: it is a CSV column and an API key."""
    if not isinstance(name, str) or not NAME.fullmatch(name) or name in RESERVED:
        raise FieldError(
            f"{name!r} cannot name a field: lower-case letters, digits and '_', "
            f"a letter first, not one of {', '.join(sorted(RESERVED))}"
        )
    return name


@dataclass(frozen=True)
class Field:
    """A declared field: its name and kind, and for a number whether it is whole (a
    field declared `int`)."""

    name: str
    kind: str
    whole: bool = False

    @property
    def label(self) -> str:
        """The field's type in words: "whole number" for an int, else its kind."""
        return "whole number" if self.whole else self.kind

    def check(self, value: Any, zone: ZoneInfo = UTC_ZONE) -> Value | None:
        """A Python value as this field keeps it (None clears it); FieldError if it is
        of another kind. A naive datetime is in `zone` (the contact's)."""
        if value is None:
            return None
        kind = self.kind
        if kind == "text" and isinstance(value, str):
            if len(value) > TEXT_LIMIT:
                raise self.error(value, f"is longer than {TEXT_LIMIT} characters")
            if why := unstorable(value):
                raise self.error(value, why)
            return value if value.strip() else None
        if kind == "number" and isinstance(value, int | float) and not isinstance(value, bool):
            if not -LARGEST <= value <= LARGEST:  # inf, nan, or an int no float reaches
                raise self.error(value, f"is not a finite number of at most {LARGEST:.1e}")
            if self.whole and not float(value).is_integer():
                raise self.error(value, "is not a whole number")
            return int(value) if float(value).is_integer() and abs(value) < 2**53 else value
        if kind == "bool" and isinstance(value, bool):
            return value
        if kind == "datetime" and isinstance(value, datetime):
            try:
                moment = localize(value, zone)
                moment.astimezone(UTC_ZONE)  # kept in UTC: it must have a year there
            except ValueError as exc:
                raise self.error(value, str(exc)) from None
            except OverflowError:
                raise self.error(value, "is outside the years 1 to 9999 in UTC") from None
            return moment
        if kind == "date" and isinstance(value, date) and not isinstance(value, datetime):
            return value
        kind_of = type(value).__name__
        article = "an" if kind_of[:1] in "aeiou" else "a"
        raise self.error(value, f"is {article} {kind_of}, not {self.described}")

    def parse(self, text: str, zone: ZoneInfo = UTC_ZONE) -> Value | None:
        """Text typed by a person (a CSV cell, a form) as this field's value; "" clears.
        Dates are ISO (2026-12-10), times too (2026-12-10 14:30, in `zone` unless it
        gives an offset); yes/no, true/false or 1/0 for a bool."""
        text = text.strip()
        if not text:
            return None
        try:
            value = self._read(text)
        except ValueError:
            raise self.error(text, f"is not {self.described}") from None
        return self.check(value, zone)

    def _read(self, text: str) -> Any:
        if self.kind == "number":
            if "," in text and not GROUPED.fullmatch(text):  # 1,5 is not 15
                raise ValueError(text)
            number = float(text.replace(",", "")) if any(c in text for c in ".eE") else None
            return number if number is not None else int(text.replace(",", ""))
        if self.kind == "bool":
            if text.lower() in TRUE | FALSE:
                return text.lower() in TRUE
            raise ValueError(text)
        if self.kind == "date":
            return date.fromisoformat(text)
        if self.kind == "datetime":
            if not any(sep in text for sep in "T "):  # a date alone is not its midnight
                raise ValueError(text)
            return datetime.fromisoformat(text)
        return text

    @property
    def described(self) -> str:
        if self.whole:
            return "a whole number"
        return {
            "text": "text",
            "number": "a number",
            "date": "a date (YYYY-MM-DD)",
            "datetime": "a date and time (YYYY-MM-DD HH:MM)",
            "bool": "yes or no",
        }[self.kind]

    def error(self, value: Any, why: str) -> FieldError:
        shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
        return FieldError(f"field {self.name!r}: {shown} {why}")


def dump(value: Value) -> str:
    """A checked value as stored: one canonical text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return stamp(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float):
        return repr(value)
    return str(value)


def load(kind: str, text: str, zone: ZoneInfo = UTC_ZONE) -> Value:
    """A stored value as a Python one; a datetime in `zone` (the contact's)."""
    if kind == "number":
        return float(text) if any(c in text for c in ".eE") else int(text)
    if kind == "bool":
        return text == "true"
    if kind == "date":
        return date.fromisoformat(text)
    if kind == "datetime":
        return parse_stamp(text).astimezone(zone)
    return text


class Fields(Mapping[str, Field]):
    """The fields the loaded bots declare, by name; a name declared twice must be of
    one kind."""

    def __init__(self, fields: Iterable[Field] = ()) -> None:
        self._fields: dict[str, Field] = {}
        for each in fields:
            known = self._fields.get(each.name)
            if known is not None and known != each:
                raise FieldError(
                    f"field {each.name!r} is declared as {known.label} and as {each.label}"
                )
            self._fields[each.name] = each

    @classmethod
    def declared(cls, declarations: Mapping[str, type]) -> list[Field]:
        """The fields of one `Bot(fields=...)`: names and Python types."""
        fields = []
        for name, python_type in declarations.items():
            kind = TYPES.get(python_type)
            if kind is None:
                allowed = ", ".join(t.__name__ for t in TYPES)
                raise FieldError(f"field {name!r}: {python_type!r} is not one of {allowed}")
            fields.append(Field(field_name(name), kind, whole=python_type is int))
        return fields

    def __getitem__(self, name: str) -> Field:
        return self._fields[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def get_declared(self, name: str) -> Field:
        """The field `name`; FieldError naming those declared when there is none."""
        try:
            return self._fields[name]
        except KeyError:
            known = ", ".join(sorted(self._fields)) or "none"
            raise FieldError(
                f"no field {name!r} is declared (declared: {known}); "
                "a bot declares its fields with Bot(fields={...})"
            ) from None
