"""A contact on the person page: its values as an operator reads and types them, the
edit form's inputs, and the ledger of its changes in words.

The form sends every input, but only those the operator changed are applied: an input
is compared with the text it was shown with, so an untouched time is not read again (in
a zone just changed, or to the minute it was shown to) and an untouched value is not
written back. The form also carries a `version` of the values it was made from: if the
contact changed since (a bot, an import, another operator), saving is refused rather
than putting back what the operator was shown over the newer values.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass

from ..bodies import MAX_BODY
from ..clock import parse_stamp
from ..contacts import ATTRIBUTES, Contact
from ..db import Row
from ..fields import TEXT_LIMIT, FieldError, Fields

# The inputs besides the fields: the CSRF token, the version, name, language, timezone.
OTHER_INPUTS = 5
# A character percent-encoded takes 12 bytes at most (4 UTF-8 bytes, each `%XX`).
ENCODED = 12
# Each input's type by the field's kind; a number is text, so that `1,000` can be typed.
INPUT_TYPES = {"date": "date", "datetime": "datetime-local", "bool": "select"}


@dataclass(frozen=True)
class Input:
    """One input of the edit form: its `key` in the form, what it sets (`label`: name,
    language, timezone or a field's name), `kind`, the HTML `type`, its `value` as
    text, a `hint` and the `error` of the value last given, if any."""

    key: str
    label: str
    kind: str
    type: str
    value: str
    hint: str = ""
    error: str = ""


def form_limits(declared: Fields) -> tuple[int, int]:
    """The bytes and inputs a contact's form may send: one input per declared field (so
    more than bodies.MAX_FIELDS with many fields), each at its longest, encoded."""
    return MAX_BODY + len(declared) * TEXT_LIMIT * ENCODED, OTHER_INPUTS + len(declared)


def version(contact: Contact) -> str:
    """A fingerprint of the values the form edits: another one means they changed."""
    values = [getattr(contact, attribute) for attribute in ATTRIBUTES]
    text = json.dumps([values, contact.fields.texts()], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def inputs(
    contact: Contact,
    declared: Fields,
    given: Mapping[str, str] | None = None,
    errors: Mapping[str, str] | None = None,
) -> list[Input]:
    """The form's inputs: name, language, timezone, then each declared field, with the
    contact's values (or those `given`, to show them again with their `errors`)."""
    shown = texts(contact, declared)
    given, errors = given or {}, errors or {}
    zone = contact.zone.key
    hints = {
        "name": "",
        "language": "a code such as en, es or pt-BR; blank: the default templates'",
        "timezone": f"an IANA zone; blank: the number's ({zone})",
    }
    found = [
        Input(key, key, "text", "text", given.get(key, shown[key]), hints[key], errors.get(key, ""))
        for key in ATTRIBUTES
    ]
    for name in sorted(declared):
        field, key = declared[name], f"field.{name}"
        hint = f"{field.described}, in {zone}" if field.kind == "datetime" else field.described
        found.append(
            Input(
                key,
                name,
                field.kind,
                INPUT_TYPES.get(field.kind, "text"),
                given.get(key, shown[key]),
                hint,
                errors.get(key, ""),
            )
        )
    return found


def texts(contact: Contact, declared: Fields) -> dict[str, str]:
    """Each input's text as the form shows it, by key."""
    shown = {attribute: getattr(contact, attribute) or "" for attribute in ATTRIBUTES}
    stored = contact.fields.texts()
    for name in declared:
        text = stored.get(name)
        shown[f"field.{name}"] = "" if text is None else typed(declared[name].kind, text, contact)
    return shown


def typed(kind: str, text: str, contact: Contact) -> str:
    """A stored value as its input holds it: a time to the minute in the contact's zone
    (what datetime-local takes), anything else in `words`."""
    if kind != "datetime":
        return words(kind, text, contact)
    try:
        local = parse_stamp(text).astimezone(contact.zone)
    except (ValueError, OverflowError):  # past year 9999 there: as stored
        return text
    return local.replace(tzinfo=None).isoformat(timespec="minutes")


def apply(contact: Contact, declared: Fields, form: Mapping[str, str]) -> dict[str, str]:
    """Set on `contact` what the operator changed in `form`: each input whose text is
    not the one shown. The errors by input key ({}: all taken); the time zone first, as
    a time typed with it is read in it."""
    shown = texts(contact, declared)
    errors = {}
    for key in ("timezone", *(k for k in shown if k != "timezone")):
        text = form.get(key)
        if not isinstance(text, str) or text == shown[key]:
            continue
        try:
            if key.startswith("field."):
                contact.fields.parse(key.removeprefix("field."), text)
            else:
                contact.update({key: text})
        except FieldError as exc:
            errors[key] = str(exc)
    return errors


@dataclass(frozen=True)
class Line:
    """One change in the ledger, as shown: when, what, the old and new values in words,
    and who made it (`bot dental`, `operator ops`, `import people.csv`, `api ops`)."""

    at: str
    what: str
    old: str
    new: str
    by: str


@dataclass(frozen=True)
class Value:
    """A field of the contact as the panel shows it: its name, kind, value in words
    ("" for none), and whether a bot declares it (one no bot does is read-only)."""

    name: str
    kind: str
    text: str
    declared: bool


def values(contact: Contact, declared: Fields) -> list[Value]:
    """Every declared field, set or not, then each stored one no bot declares now."""
    stored = contact.fields.kinds()
    texts = contact.fields.texts()
    shown = [
        Value(name, field.kind, words(field.kind, texts.get(name), contact), True)
        for name, field in sorted(declared.items())
    ]
    return shown + [
        Value(name, kind, words(kind, texts[name], contact), False)
        for name, kind in sorted(stored.items())
        if name not in declared
    ]


def ledger(rows: list[Row], contact: Contact, declared: Fields) -> list[Line]:
    """The ledger's rows in words (`words`; an empty value as "(none)"), each field's
    value as its kind reads."""
    kinds = {**contact.fields.kinds(), **{name: f.kind for name, f in declared.items()}}
    return [
        Line(
            row["at"],
            row["what"],
            words(kinds.get(row["what"], "text"), row["old"], contact) or "(none)",
            words(kinds.get(row["what"], "text"), row["new"], contact) or "(none)",
            " ".join(part for part in (row["source"], row["actor"]) if part),
        )
        for row in rows
    ]


def words(kind: str, text: str | None, contact: Contact) -> str:
    """A stored value as an operator reads it: a time in the contact's zone with its
    abbreviation, a bool as yes or no, anything else as stored; "" for none."""
    if text is None:
        return ""
    if kind == "datetime":
        try:
            moment = parse_stamp(text).astimezone(contact.zone)
        except (ValueError, OverflowError):  # past year 9999 there: as stored
            return text
        return moment.strftime("%Y-%m-%d %H:%M %Z")
    if kind == "bool":
        return "yes" if text == "true" else "no"
    return text
