"""Settings: read once at the edge (environment over an optional botkit.toml), passed in."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import math
import os
import tomllib
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .addresses import SIMULATOR_NUMBER, OurNumbers
from .db import is_url, redact
from .errors import ValidationError
from .gateway import in_clear
from .webhooks.subscriptions import (
    Webhook,
    event_names,
    from_tables,
    shown_url,
    webhook_secret,
    webhook_url,
)

DEFAULT_GATEWAY_URL = "https://api.sms.optus.com.au/message"
# A conversation idle for a minute at least, a century at most (dates stay in range).
MIN_IDLE_DAYS, MAX_IDLE_DAYS = 1 / 1440, 36_500
WEBHOOKS = "BOTKIT_WEBHOOKS"


def _setting(env: str, default: Any, help: str) -> Any:
    return field(default=default, metadata={"env": env, "help": help})


@dataclass(frozen=True)
class Settings:
    """Every setting of botkit, declared once with its variable and help text."""

    gateway_url: str = _setting("BOTKIT_GATEWAY_URL", DEFAULT_GATEWAY_URL, "the gateway's send URL")
    application: str | None = _setting(
        "BOTKIT_APPLICATION", None, "gateway application name; unset runs the simulator"
    )
    password: str | None = _setting(
        "BOTKIT_PASSWORD", None, "gateway password; never logged, stored or shown"
    )
    numbers: tuple[str, ...] = _setting(
        "BOTKIT_NUMBERS",
        (),
        "our numbers (short codes or +international), comma-separated, the default first: "
        "the default is reached with BOTKIT_CLASS, the others with source; "
        f"{SIMULATOR_NUMBER} in simulator mode, required with gateway credentials",
    )
    message_class: str = _setting(
        "BOTKIT_CLASS", "mt_message", "message class of MTs from the default number"
    )
    callback_token: str | None = _setting(
        "BOTKIT_CALLBACK_TOKEN",
        None,
        "secret path segment of the callback URLs; generated in simulator mode",
    )
    callback_allow: tuple[str, ...] = _setting(
        "BOTKIT_CALLBACK_ALLOW", (), "comma-separated IPs/CIDRs allowed to call the callbacks"
    )
    forwarded_allow_ips: tuple[str, ...] = _setting(
        "BOTKIT_FORWARDED_ALLOW_IPS",
        ("127.0.0.1",),
        "comma-separated IPs/CIDRs of reverse proxies whose X-Forwarded-For is believed "
        "(so BOTKIT_CALLBACK_ALLOW sees the caller's address); * believes any, empty none",
    )
    db: str = _setting("BOTKIT_DB", "botkit.db", "SQLite database path, or a postgresql:// URL")
    spool: str | None = _setting(
        "BOTKIT_SPOOL",
        None,
        "folder (on a local disk) of the spool that keeps callbacks while the database "
        "cannot; unset: next to the SQLite file (botkit.db-spool), else ./spool",
    )
    sender_name: str = _setting(
        "BOTKIT_SENDER_NAME", "this service", "who the messages are from, named in HELP replies"
    )
    timezone: str = _setting(
        "BOTKIT_TIMEZONE",
        "UTC",
        "IANA time zone for naive times (ctx.schedule(at=...), --at), the dashboard's "
        "times, and quiet hours of numbers with no zone of their own",
    )
    thread_idle_days: float = _setting(
        "BOTKIT_THREAD_IDLE_DAYS",
        7.0,
        "days after which a quiet conversation stops catching messages that name no "
        "thread (its timers still fire)",
    )
    failed_reply: bool = _setting(
        "BOTKIT_FAILED_REPLY",
        True,
        "after a handler fails for good, send the handset errors/failed.txt",
    )
    stop_words: tuple[str, ...] = _setting(
        "BOTKIT_STOP_WORDS",
        ("STOP", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT"),
        "messages that opt the handset out of the number it texted",
    )
    stop_all_words: tuple[str, ...] = _setting(
        "BOTKIT_STOP_ALL_WORDS", ("STOPALL",), "messages that opt the handset out of every number"
    )
    start_words: tuple[str, ...] = _setting(
        "BOTKIT_START_WORDS", ("START", "UNSTOP"), "messages that opt the handset back in"
    )
    help_words: tuple[str, ...] = _setting(
        "BOTKIT_HELP_WORDS", ("HELP", "INFO"), "messages answered with the help text"
    )
    dashboard_user: str | None = _setting("BOTKIT_DASHBOARD_USER", None, "dashboard login")
    dashboard_password: str | None = _setting(
        "BOTKIT_DASHBOARD_PASSWORD", None, "dashboard password"
    )
    secret_key: str | None = _setting(
        "BOTKIT_SECRET_KEY",
        None,
        "keys the dashboard's CSRF tokens and login fingerprint; unset: made once, kept "
        "in the database",
    )
    send_rate: float = _setting("BOTKIT_SEND_RATE", 10.0, "MT messages per second, at most")
    lease: float = _setting(
        "BOTKIT_LEASE",
        60.0,
        "seconds a process holds an MO, timer or MT it took; a crashed one's wait this long",
    )
    resend_uncertain: bool = _setting(
        "BOTKIT_RESEND_UNCERTAIN",
        False,
        "resend an MT whose send may have reached the gateway (risks a duplicate)",
    )
    bots: str = _setting("BOTKIT_BOTS", "bots", "folder of bot modules")
    templates: str = _setting("BOTKIT_TEMPLATES", "templates", "folder of templates")
    host: str = _setting("BOTKIT_HOST", "127.0.0.1", "address to listen on")
    port: int = _setting("BOTKIT_PORT", 8000, "port to listen on")
    log_format: str = _setting("BOTKIT_LOG_FORMAT", "text", "log lines as text or json")
    webhook_url: str | None = _setting(
        "BOTKIT_WEBHOOK_URL",
        None,
        "a webhook: the URL the events of BOTKIT_WEBHOOK_EVENTS are POSTed to, signed with "
        "BOTKIT_WEBHOOK_SECRET (docs/webhooks.md); https, or http to this machine",
    )
    webhook_secret: str | None = _setting(
        "BOTKIT_WEBHOOK_SECRET",
        None,
        "the secret that signs BOTKIT_WEBHOOK_URL's deliveries, 16 characters at least; "
        "never logged or shown",
    )
    webhook_events: tuple[str, ...] = _setting(
        "BOTKIT_WEBHOOK_EVENTS",
        (),
        "the events BOTKIT_WEBHOOK_URL subscribes to, comma-separated: mo.received, "
        "contact.opted_out, survey.completed, thread.ended, campaign.fired",
    )
    webhooks: tuple[Webhook, ...] = _setting(
        "BOTKIT_WEBHOOKS",
        (),
        "more webhooks: [[webhooks]] tables in botkit.toml, each with url, secret and "
        "events; in the environment, a JSON list of such objects",
    )

    def __post_init__(self) -> None:
        if not (math.isfinite(self.send_rate) and self.send_rate > 0):
            raise ValidationError("BOTKIT_SEND_RATE", "must be a positive number")
        if not (math.isfinite(self.lease) and self.lease >= 1):
            raise ValidationError("BOTKIT_LEASE", "must be a number of seconds, at least 1")
        if not (MIN_IDLE_DAYS <= self.thread_idle_days <= MAX_IDLE_DAYS):  # not nan either
            raise ValidationError(
                "BOTKIT_THREAD_IDLE_DAYS",
                f"must be a number of days from {MIN_IDLE_DAYS:g} to {MAX_IDLE_DAYS}",
            )
        try:
            self.zone  # noqa: B018 - an unknown zone fails here, at start-up
        except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a folder, too long
            shown = self.timezone if len(self.timezone) <= 40 else f"{self.timezone[:40]}..."
            raise ValidationError(
                "BOTKIT_TIMEZONE", f"{shown!r} is not an IANA zone like Australia/Sydney"
            ) from None
        if not 0 < self.port < 65536:
            raise ValidationError("BOTKIT_PORT", f"{self.port} is not a TCP port")
        if (self.application is None) != (self.password is None):
            raise ValidationError(
                "BOTKIT_PASSWORD" if self.password is None else "BOTKIT_APPLICATION",
                "BOTKIT_APPLICATION and BOTKIT_PASSWORD go together",
            )
        if not self.numbers and self.simulator_mode:
            object.__setattr__(self, "numbers", (SIMULATOR_NUMBER,))
        if self.numbers:
            # Validated, and kept as parsed: one form of each number everywhere.
            numbers = OurNumbers(self.numbers, message_class=self.message_class).numbers
            object.__setattr__(self, "numbers", numbers)
        if not self.message_class:
            raise ValidationError("BOTKIT_CLASS", "is empty")
        if not self.simulator_mode and in_clear(self.gateway_url):
            raise ValidationError(
                "BOTKIT_GATEWAY_URL",
                f"{redact(self.gateway_url)!r} is plain http to another machine, which would carry "
                "the password in clear: use https (plain http is for this machine only)",
            )
        if self.log_format not in ("text", "json"):
            raise ValidationError("BOTKIT_LOG_FORMAT", "must be text or json")
        _check_networks("BOTKIT_CALLBACK_ALLOW", self.callback_allow)
        if self.forwarded_allow_ips != ("*",):
            _check_networks("BOTKIT_FORWARDED_ALLOW_IPS", self.forwarded_allow_ips)
        object.__setattr__(self, "webhooks", from_tables(self.webhooks, WEBHOOKS))
        self.all_webhooks()  # BOTKIT_WEBHOOK_* checked, and no URL twice

    def all_webhooks(self) -> tuple[Webhook, ...]:
        """The webhooks of the settings: BOTKIT_WEBHOOK_URL's, then BOTKIT_WEBHOOKS."""
        hooks = self.webhooks
        if self.webhook_url is not None:
            single = Webhook(
                webhook_url(self.webhook_url, "BOTKIT_WEBHOOK_URL"),
                webhook_secret(self.webhook_secret, "BOTKIT_WEBHOOK_SECRET"),
                event_names(self.webhook_events, "BOTKIT_WEBHOOK_EVENTS"),
            )
            hooks = (single, *hooks)
        elif self.webhook_secret or self.webhook_events:
            raise ValidationError(
                "BOTKIT_WEBHOOK_URL", "is needed with BOTKIT_WEBHOOK_SECRET and _EVENTS"
            )
        urls = [hook.url for hook in hooks]
        if twice := [url for url in urls if urls.count(url) > 1]:
            raise ValidationError(WEBHOOKS, f"{shown_url(twice[0])} is there twice: one URL each")
        return hooks

    def our_numbers(self) -> OurNumbers:
        """Our numbers, the default first; ValidationError when none are set (with gateway
        credentials, BOTKIT_NUMBERS must say which numbers the account has)."""
        if not self.numbers:
            raise ValidationError(
                "BOTKIT_NUMBERS",
                "is required with gateway credentials: set it to the account's numbers, the "
                "default (the one BOTKIT_CLASS sends from) first, e.g. "
                "BOTKIT_NUMBERS=4433,+61400999000",
            )
        return OurNumbers(self.numbers, message_class=self.message_class)

    @property
    def zone(self) -> ZoneInfo:
        """BOTKIT_TIMEZONE as a tzinfo."""
        return ZoneInfo(self.timezone)

    @property
    def spool_folder(self) -> Path:
        """BOTKIT_SPOOL, or its default: beside a SQLite file, else ./spool."""
        if self.spool is not None:
            return Path(self.spool)
        return Path("spool") if is_url(self.db) else Path(f"{self.db}-spool")

    @property
    def simulator_mode(self) -> bool:
        """True when no gateway credentials are set: the built-in simulator is the gateway."""
        return self.application is None

    def __repr__(self) -> str:
        shown = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name
            not in (
                "password",
                "dashboard_password",
                "callback_token",
                "secret_key",
                "webhook_secret",
            )
        }
        shown["webhook_url"] = self.webhook_url and shown_url(self.webhook_url)
        shown["webhooks"] = tuple(hook.shown for hook in self.webhooks)
        shown["db"] = redact(self.db)  # a URL's password
        shown["gateway_url"] = redact(self.gateway_url)
        return f"Settings({', '.join(f'{k}={v!r}' for k, v in shown.items())})"

    @classmethod
    def load(
        cls,
        environ: Mapping[str, str] | None = None,
        config_file: str | Path = "botkit.toml",
        *,
        ignore: Collection[str] = (),
        **overrides: Any,
    ) -> Settings:
        """Build settings: keyword overrides, then the environment, then botkit.toml.
        Settings named in `ignore` are read from neither (the test harness, which always
        plays the simulator, ignores a developer's gateway credentials)."""
        environ = os.environ if environ is None else environ
        path = Path(config_file)
        values: dict[str, Any] = {}
        if path.is_file():
            with path.open("rb") as f:
                try:
                    values.update(tomllib.load(f))
                except tomllib.TOMLDecodeError as exc:
                    raise ValidationError(str(path), f"is not valid TOML: {exc}") from None
        if "BOTKIT_SOURCE" in environ or "source" in values:
            raise ValidationError(
                "BOTKIT_SOURCE" if "BOTKIT_SOURCE" in environ else f"{path}: source",
                "is gone: list the account's numbers in BOTKIT_NUMBERS (numbers in "
                "botkit.toml) instead, the default first (MTs from it carry BOTKIT_CLASS; "
                "the others go with source)",
            )
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = set(values) - set(known)
        if unknown:
            raise ValidationError(str(path), f"unknown settings {sorted(unknown)}")
        from_file = set(values)
        for name, f in known.items():
            if f.metadata["env"] in environ:
                values[name] = environ[f.metadata["env"]]
                from_file.discard(name)
        for name in ignore:
            values.pop(name, None)
        given = {k: v for k, v in overrides.items() if v is not None}
        values.update(given)
        from_file -= set(given)
        try:
            return cls(**{name: _cast(known[name], value) for name, value in values.items()})
        except ValidationError as exc:
            raise _from_file(exc, from_file, known, path) from None


def _from_file(
    exc: ValidationError,
    from_file: set[str],
    known: Mapping[str, dataclasses.Field[Any]],
    path: Path,
) -> ValidationError:
    """`exc` naming the botkit.toml key its value came from, when it did (not only the
    variable, which the user never set)."""
    for name in from_file:
        if known[name].metadata["env"] == exc.field:
            return ValidationError(f"{path}: {name} ({exc.field})", exc.reason)
    return exc


def _check_networks(name: str, entries: tuple[str, ...]) -> None:
    """Refuse an entry of `name` that is not an IP address or a CIDR network."""
    for entry in entries:
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise ValidationError(name, f"{entry!r} is not an IP or CIDR") from None


def _cast(f: dataclasses.Field[Any], value: Any) -> Any:
    """Turn a text value from the environment into the field's type."""
    name = f.metadata["env"]
    if not isinstance(value, str):
        return _typed(f, value)
    if f.type == "tuple[str, ...]":
        return tuple(part.strip() for part in value.split(",") if part.strip())
    if f.type == "tuple[Webhook, ...]":
        return _json_list(name, value)
    if f.type == "bool":
        if value.lower() in ("1", "true", "yes", "on"):
            return True
        if value.lower() in ("0", "false", "no", "off", ""):
            return False
        raise ValidationError(name, f"{value!r} is not true or false")
    if f.type in ("int", "float"):
        try:
            return int(value) if f.type == "int" else float(value)
        except ValueError:
            raise ValidationError(name, f"{value!r} is not a number") from None
    return value or None if f.type.endswith("| None") else value


def _json_list(name: str, text: str) -> tuple[Any, ...]:
    """A JSON list from the environment (BOTKIT_WEBHOOKS), its entries checked later."""
    if not text.strip():
        return ()
    try:
        value = json.loads(text)
    except ValueError:
        raise ValidationError(name, "is not JSON: give a list of objects") from None
    if not isinstance(value, list):
        raise ValidationError(name, "is not a JSON list of objects")
    return tuple(value)


def _typed(f: dataclasses.Field[Any], value: Any) -> Any:
    """A value from botkit.toml, checked against the field's type (TOML has its own)."""
    wanted = {
        "tuple[str, ...]": "a list of strings",
        "tuple[Webhook, ...]": "a list of tables ([[webhooks]])",
        "bool": "true or false",
        "int": "a whole number",
        "float": "a number",
    }.get(f.type, "a string")
    if f.type == "tuple[str, ...]":
        fits = isinstance(value, list | tuple) and all(isinstance(item, str) for item in value)
        value = tuple(value) if fits else value
    elif f.type == "tuple[Webhook, ...]":
        fits = isinstance(value, list | tuple)
        value = tuple(value) if fits else value
    elif f.type == "bool":
        fits = isinstance(value, bool)
    elif f.type == "int":
        fits = isinstance(value, int) and not isinstance(value, bool)
    elif f.type == "float":
        fits = isinstance(value, int | float) and not isinstance(value, bool)
    else:
        fits = isinstance(value, str)
    if not fits:
        raise ValidationError(f"botkit.toml: {f.name}", f"{value!r} is not {wanted}")
    return value


def describe() -> list[tuple[str, str, str]]:
    """(variable, default, help) for each setting, for --help and the docs."""
    return [
        (f.metadata["env"], repr(f.default), f.metadata["help"])
        for f in dataclasses.fields(Settings)
    ]
