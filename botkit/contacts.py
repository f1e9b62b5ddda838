"""`Contact`: the person behind a handset, as `ctx.contact` (and the API) see it.

    ctx.contact.name = "Ana"
    ctx.contact.language = "es"
    ctx.contact.fields["appointment_at"] = datetime(2026, 12, 10, 14, 30)
    if ctx.contact.fields.get("reminders") is False: ...

One contact per handset, its number the key: a name, a language (templates in it are
chosen first), a time zone (from the number unless one is set), typed fields the bots
declare, and the lists it is subscribed to. A handset that has texted is a contact
already, with nothing set. A change is recorded, and committed with the handler's
other effects (or not at all): `changes()` says what changed, for the ledger.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from . import languages
from .clock import stamp
from .fields import Field, FieldError, Fields, Value, dump, load, unstorable

__all__ = ["Change", "Contact", "ContactFields", "language_code", "zone_name"]

ATTRIBUTES = ("name", "language", "timezone")
NAME_LIMIT = 200


def language_code(text: str) -> str:
    """A language code as kept (botkit/languages.py: "pt_BR" is "pt-br"); FieldError
    for anything else, since it becomes part of a template's file name."""
    try:
        return languages.language_code(text.strip() if isinstance(text, str) else text)
    except ValueError as exc:
        raise FieldError(str(exc)) from None


def zone_name(text: str) -> str:
    """An IANA time zone's name, checked; FieldError naming it when there is none."""
    try:
        ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError, TypeError, OSError):  # OSError: a long name
        raise FieldError(
            f"timezone {text!r} is not an IANA zone such as Pacific/Auckland"
        ) from None
    return text


@dataclass(frozen=True)
class Change:
    """One change of a contact: what (name, language, timezone or a field's name), and
    the value before and after as stored (None: not set)."""

    what: str
    old: str | None
    new: str | None


class Contact:
    """A person: `number` (E.164), `name`, `language`, `timezone` (an IANA name, or None
    for the number's own), `zone` (the one in use), `fields`, `lists`."""

    def __init__(
        self,
        number: str,
        *,
        declared: Fields,
        number_zone: ZoneInfo,
        name: str | None = None,
        language: str | None = None,
        timezone: str | None = None,
        stored: Mapping[str, tuple[str, str]] | None = None,
        lists: tuple[str, ...] = (),
        created_at: datetime | None = None,
    ) -> None:
        self.number = number
        self.lists = lists
        self.created_at = created_at
        self._number_zone = number_zone
        self._values = {"name": name, "language": language, "timezone": timezone}
        self._changes: dict[str, Change] = {}
        self.fields = ContactFields(self, declared, dict(stored or {}))

    def __repr__(self) -> str:
        return f"<Contact {self.number}>"

    @property
    def name(self) -> str | None:
        return self._values["name"]

    @name.setter
    def name(self, value: str | None) -> None:
        if value is not None:
            if not isinstance(value, str):
                raise FieldError(f"name {value!r} is not text")
            if len(value) > NAME_LIMIT:
                raise FieldError(f"name is longer than {NAME_LIMIT} characters")
            if why := unstorable(value):
                raise FieldError(f"name {why}")
            value = value.strip() or None
        self._set("name", value)

    @property
    def language(self) -> str | None:
        """The contact's language code (None: the templates' default)."""
        return self._values["language"]

    @language.setter
    def language(self, value: str | None) -> None:
        self._set("language", None if value is None or not value.strip() else language_code(value))

    @property
    def timezone(self) -> str | None:
        """The time zone set for the contact (None: the number's, see `zone`)."""
        return self._values["timezone"]

    @timezone.setter
    def timezone(self, value: str | None) -> None:
        self._set("timezone", None if value is None or not value.strip() else zone_name(value))

    @property
    def zone(self) -> ZoneInfo:
        """The contact's time zone: the one set, else the number's (its country's, or
        BOTKIT_TIMEZONE where the country has several and the prefix does not tell)."""
        timezone = self._values["timezone"]
        return ZoneInfo(timezone) if timezone else self._number_zone

    @property
    def stored(self) -> bool:
        """True once something was ever set for this contact (it has a row)."""
        return self.created_at is not None

    def update(self, given: Mapping[str, Any]) -> None:
        """Set what `given` holds (as the API and the dashboard send it): any of name,
        language and timezone, and `fields`, a mapping of field names to values. Text is
        read as a person typed it (Field.parse), other JSON values as they are; None or
        "" clears. FieldError for an unknown key or a value that cannot be taken."""
        unknown = set(given) - {*ATTRIBUTES, "fields"}
        if unknown:
            raise FieldError(
                f"{', '.join(sorted(map(repr, unknown)))}: a contact has name, language, "
                "timezone and fields"
            )
        for attribute in ("timezone", *ATTRIBUTES):  # the zone first: times are read in it
            if attribute in given:
                value = given[attribute]
                if value is not None and not isinstance(value, str):
                    raise FieldError(f"{attribute} {value!r} is not text")
                setattr(self, attribute, value)
        fields = given.get("fields") or {}
        if not isinstance(fields, Mapping):
            raise FieldError("fields is not an object of field names and values")
        for name, value in fields.items():
            if isinstance(value, str):
                self.fields.parse(name, value)
            else:
                self.fields[name] = value

    def as_json(self) -> dict[str, Any]:
        """The contact as JSON-ready data: dates in ISO, times in the contact's zone."""
        return {
            "number": self.number,
            **{attribute: getattr(self, attribute) for attribute in ATTRIBUTES},
            "zone": self.zone.key,
            "fields": {name: _json(value) for name, value in self.fields.items()},
            "lists": list(self.lists),
            "created_at": None if self.created_at is None else stamp(self.created_at),
        }

    def text(self, what: str) -> str | None:
        """The value of `what` (name, language, timezone or a field's name) as stored, as
        a Change holds it; None: not set."""
        if what in ATTRIBUTES:
            return self._values[what]
        return self.fields.texts().get(what)

    def changes(self) -> list[Change]:
        """What changed since the contact was read, in the order first changed."""
        return [change for change in self._changes.values() if change.old != change.new]

    def _set(self, what: str, value: str | None) -> None:
        self._note(what, self._values[what], value)
        self._values[what] = value

    def _note(self, what: str, old: str | None, new: str | None) -> None:
        first = self._changes.get(what)
        self._changes[what] = Change(what, first.old if first else old, new)


class ContactFields(MutableMapping[str, Any]):
    """A contact's field values by name: setting one checks it against its declared
    kind; None or `del` clears it. A declared field with no value reads as None (so a
    template's `{{ contact.fields.clinic or "our clinic" }}` works), though it is not
    `in` the mapping, nor iterated."""

    def __init__(
        self, contact: Contact, declared: Fields, stored: dict[str, tuple[str, str]]
    ) -> None:
        self._contact = contact
        self._declared = declared
        self._stored = stored  # name: (kind, text)

    def __getitem__(self, name: str) -> Value | None:
        if name not in self._stored:
            if name in self._declared:
                return None
            raise KeyError(name)
        kind, text = self._stored[name]
        return load(kind, text, self._contact.zone)

    def __contains__(self, name: object) -> bool:
        return name in self._stored

    def __setitem__(self, name: str, value: Any) -> None:
        field = self._declared.get_declared(name)
        checked = field.check(value, self._contact.zone)
        self._put(field, None if checked is None else dump(checked))

    def __delitem__(self, name: str) -> None:
        if name not in self._stored:
            raise KeyError(name)
        kind, _ = self._stored[name]
        self._put(self._declared.get(name, Field(name, kind)), None)

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._stored))

    def __len__(self) -> int:
        return len(self._stored)

    def __repr__(self) -> str:
        return repr(dict(self.items()))

    def parse(self, name: str, text: str) -> None:
        """Set field `name` from text a person typed (a CSV cell, a form; "" clears)."""
        field = self._declared.get_declared(name)
        value = field.parse(text, self._contact.zone)
        self._put(field, None if value is None else dump(value))

    def kinds(self) -> dict[str, str]:
        """Each set field's kind, by name."""
        return {name: kind for name, (kind, _) in self._stored.items()}

    def texts(self) -> dict[str, str]:
        """Each set field's value as stored (canonical text), by name."""
        return {name: text for name, (_, text) in self._stored.items()}

    def _put(self, field: Field, text: str | None) -> None:
        old = self._stored.get(field.name)
        self._contact._note(field.name, old[1] if old else None, text)
        if text is None:
            self._stored.pop(field.name, None)
        else:
            self._stored[field.name] = (field.kind, text)


def _json(value: Value) -> Any:
    """A field's value in JSON: dates and times as ISO text (a time with its offset)."""
    if isinstance(value, date):
        return value.isoformat()
    return value
