"""Local times: what a time written without an offset means, and how times are shown.

A time given without an offset (`--at 2026-12-24T09:00`) is a wall-clock time in
BOTKIT_TIMEZONE; one with an offset (`+11:00`, `Z`) means just what it says. Twice a
year daylight saving breaks the wall clock. In spring the clocks skip an hour: a time
in it never happens, so it is refused rather than moved (a message an hour off is a
message at the wrong time). In autumn an hour happens twice: a time in it means its
first occurrence (`fold=0`), the earlier instant, so nothing goes later than asked.
Times are shown back in the zone, with their offset, so the reader sees which one.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timezone
from zoneinfo import ZoneInfo

import phonenumbers
from phonenumbers import timezone as number_timezones

from .errors import ValidationError

EXAMPLES = "2026-12-24, 2026-12-24T09:00, 2026-12-24T09:00:00+11:00"


def localize(moment: datetime, zone: ZoneInfo) -> datetime:
    """`moment` if it has an offset, else that wall-clock time in `zone` (the first of
    two in autumn); ValueError for a time the clocks skip in spring."""
    if moment.tzinfo is not None:
        return moment
    local = moment.replace(tzinfo=zone, fold=0)
    if local.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != moment:
        raise ValueError(
            f"{moment.isoformat(sep=' ', timespec='minutes')} does not exist in {zone.key}: "
            "the clocks skip it when daylight saving starts"
        )
    offset = local.utcoffset()
    assert offset is not None
    # With a fixed offset: Python never finds a time of a repeated hour equal to another
    # zone's time while it carries the zone itself (PEP 495).
    return local.replace(tzinfo=timezone(offset))


def parse_local(text: str, zone: ZoneInfo, option: str) -> datetime:
    """An ISO 8601 date (its midnight) or time given as `option`, in `zone` unless it
    has an offset; ValidationError naming `option` when it is not one or never happens."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValidationError(option, f"{text!r} is not an ISO date or time ({EXAMPLES})") from None
    try:
        return localize(moment, zone)
    except ValueError as exc:
        raise ValidationError(option, str(exc)) from None


def shown(moment: datetime, zone: ZoneInfo) -> str:
    """`moment` as the wall-clock time in `zone` with its offset, to the second:
    2026-12-24T09:00:00+11:00 (the offset tells winter from summer time)."""
    return moment.astimezone(zone).isoformat(timespec="seconds")


def zones_of(number: str) -> list[ZoneInfo]:
    """The time zones a number may be in, by its prefix (phonenumbers' data); none when
    its prefix does not tell."""
    names = number_timezones.time_zones_for_number(phonenumbers.parse(number))
    return [ZoneInfo(name) for name in names if name != number_timezones.UNKNOWN_TIMEZONE]


# Where a mobile's prefix tells only the country, and the country has several zones: the
# zone most of its people live in, for the two countries the gateway serves.
PRINCIPAL = (ZoneInfo("Australia/Sydney"), ZoneInfo("Pacific/Auckland"))


@functools.lru_cache(maxsize=4096)
def number_zone(number: str, default: ZoneInfo) -> ZoneInfo:
    """The one time zone of `number`: the one its prefix tells; of several (an Australian
    mobile), `default` (BOTKIT_TIMEZONE) if it is one of them, else the country's
    principal zone (Sydney, Auckland), else the first; `default` when none is known."""
    zones = zones_of(number)
    if len(zones) <= 1 or default in zones:
        return zones[0] if len(zones) == 1 else default
    return next((zone for zone in PRINCIPAL if zone in zones), zones[0])
