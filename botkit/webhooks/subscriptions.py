"""Which webhooks there are: those of the settings and those added to the database.

A webhook is a URL, a secret and the events it subscribes to, and is named by its URL
(two webhooks never share one; one in the settings wins over one in the database).
The `Registry` holds them in memory and publishes, for each event, the URLs subscribed
to it as the database's `subscribers`, which every write transaction reads: emitting an
event nobody subscribes to costs nothing. A running app reads the database's webhooks
again every REFRESH_SECONDS (webhooks/sender.py), so one added or removed from the
command line counts within that time.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

import httpx

from ..db import Database, Row, redact
from ..errors import ValidationError
from ..events import EVENTS
from ..gateway import in_clear

log = logging.getLogger("botkit.webhooks")

# A secret shorter than this is too easy to guess from a signature.
MIN_SECRET = 16


@dataclass(frozen=True)
class Webhook:
    """Where to send which events, and the secret that signs them. `id` is its row's
    for a webhook of the database, None for one of the settings."""

    url: str
    secret: str = field(repr=False)
    events: tuple[str, ...]
    id: int | None = None

    @property
    def source(self) -> str:
        return "settings" if self.id is None else f"database #{self.id}"

    @property
    def hint(self) -> str:
        """Enough of the secret to tell which one it is, and no more: its last 4."""
        return f"…{self.secret[-4:]}"

    @property
    def shown(self) -> str:
        """The URL fit to show: no password, no query (either may hold a credential)."""
        return shown_url(self.url)


def from_tables(entries: Iterable[Any], field: str) -> tuple[Webhook, ...]:
    """Webhooks from tables of url, secret and events (botkit.toml's [[webhooks]], or
    BOTKIT_WEBHOOKS' JSON), each checked; an error names `field` and the table."""
    hooks = []
    for number, entry in enumerate(entries, 1):
        if isinstance(entry, Webhook):
            hooks.append(entry)
            continue
        if not isinstance(entry, Mapping) or not isinstance(entry.get("url"), str):
            raise ValidationError(field, f"webhook {number} is not a table with a url")
        if unknown := sorted(set(entry) - {"url", "secret", "events"}):
            raise ValidationError(field, f"webhook {number} has unknown keys {unknown}")
        events = entry.get("events", ())
        if not isinstance(events, list | tuple | str):
            raise ValidationError(field, f"webhook {number}: events is not a list of names")
        try:
            url = webhook_url(entry["url"], field)
            secret = webhook_secret(entry.get("secret"), field)
            hooks.append(Webhook(url, secret, event_names(events, field)))
        except ValidationError as exc:
            raise ValidationError(field, f"webhook {number}: {exc.reason}") from None
    return tuple(hooks)


def webhook_url(url: str, field: str) -> str:
    """`url`, if it is an http(s) URL to send events to: https, or plain http to this
    machine only (the events hold numbers and texts); else ValidationError."""
    url = url.strip()
    try:
        parts, _ = urlsplit(url), httpx.URL(url)
    except (ValueError, httpx.InvalidURL) as exc:
        raise ValidationError(field, f"{shown_url(url)!r} is not a URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError(field, f"{shown_url(url)!r} is not an http:// or https:// URL")
    if in_clear(url):
        raise ValidationError(
            field,
            f"{shown_url(url)!r} is plain http to another machine, which would carry the "
            "events (numbers, texts) in clear: use https (plain http is for this machine only)",
        )
    return url


def webhook_secret(secret: str | None, field: str) -> str:
    """`secret`, if it is one to sign with: MIN_SECRET characters at least."""
    if not secret:
        raise ValidationError(field, "needs a secret to sign the deliveries with")
    if not isinstance(secret, str):
        raise ValidationError(field, "the secret must be text (in quotes)")
    if len(secret) < MIN_SECRET:
        raise ValidationError(field, f"the secret is shorter than {MIN_SECRET} characters")
    return secret


def event_names(events: Iterable[str] | str, field: str) -> tuple[str, ...]:
    """Event names (a list, or comma-separated), each known; in EVENTS' order."""
    names = events.split(",") if isinstance(events, str) else list(events)
    wanted = {name.strip() for name in names if name.strip()}
    allowed = ", ".join(EVENTS)
    if not wanted:
        raise ValidationError(field, f"names no events: subscribe to some of {allowed}")
    unknown = sorted(wanted.difference(EVENTS))
    if unknown:
        raise ValidationError(
            field, f"unknown events {', '.join(unknown)}: the events are {allowed}"
        )
    return tuple(event for event in EVENTS if event in wanted)


def shown_url(url: str) -> str:
    """`url` without its query and with no password (db.redact's `***`)."""
    try:
        parts = urlsplit(redact(url))
    except ValueError:
        return "(a URL that does not parse)"
    return parts._replace(query="", fragment="").geturl()


def from_row(row: Row) -> Webhook:
    """A webhook of the database (store.webhooks.stored's row): its events that are
    known (a later botkit's, a database copied back, may have others)."""
    known = tuple(name for name in row["events"].split(",") if name in EVENTS)
    return Webhook(row["url"], row["secret"], known, row["id"])


class Registry:
    """The webhooks in force: the settings' (`configured`) and the database's, as last
    read (`load`); publishes who subscribes to what as `db.subscribers`."""

    def __init__(self, db: Database, configured: Sequence[Webhook] = ()) -> None:
        self.db = db
        self.configured = tuple(configured)
        self.stored: tuple[Webhook, ...] = ()
        self._shadowed: set[str] = set()  # stored URLs a setting has, warned of once
        self._publish()

    @property
    def webhooks(self) -> tuple[Webhook, ...]:
        """Every webhook in force, the settings' first."""
        return (*self.configured, *self.stored)

    def find(self, url: str) -> Webhook | None:
        """The webhook with this URL, if one is in force."""
        return next((hook for hook in self.webhooks if hook.url == url), None)

    def load(self, rows: Iterable[Row]) -> None:
        """Take the database's webhooks (store.webhooks.stored) as those in force, and
        publish them."""
        configured = {hook.url for hook in self.configured}
        stored = []
        for hook in map(from_row, rows):
            if hook.url in configured:
                if hook.url not in self._shadowed:
                    log.warning(
                        "webhook #%s: %s is in the settings too, which win", hook.id, hook.shown
                    )
                    self._shadowed.add(hook.url)
                continue
            stored.append(hook)
        self.stored = tuple(stored)
        self._publish()

    def _publish(self) -> None:
        subscribers: dict[str, tuple[str, ...]] = {}
        for hook in self.webhooks:
            for event in hook.events:
                subscribers[event] = (*subscribers.get(event, ()), hook.url)
        self.db.subscribers = MappingProxyType(subscribers)
