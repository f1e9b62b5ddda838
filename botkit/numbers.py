"""Phone numbers: international format for what we store and send, every form for a search."""

from __future__ import annotations

import contextlib
import functools

import phonenumbers

from .errors import ValidationError


def international(value: str, field: str = "destination") -> str:
    """Return `value` as E.164 (`+61400000000`), or raise ValidationError naming `field`.

    Only international format is accepted: a leading `+` and a country code. Spaces,
    dashes and brackets are tolerated and removed. The check is for a *possible*
    number rather than an allocated one, so that new number ranges are not refused.
    """
    text = (value or "").strip()
    if not text:
        raise ValidationError(field, "is empty")
    if not text.startswith("+"):
        raise ValidationError(
            field, f"{_shown(value)} is not in international format (+ and country code)"
        )
    try:
        e164 = _possible_e164(text)
    except phonenumbers.NumberParseException as exc:
        raise ValidationError(field, f"{_shown(value)} is not a phone number ({exc})") from None
    if e164 is None:
        raise ValidationError(field, f"{_shown(value)} is not a possible phone number")
    return e164


# Every MO and MT checks its numbers, and a handset's come again and again: libphonenumber's
# parse was 3% of the app's CPU at 300 MO/s (bench/profile.md).
@functools.lru_cache(maxsize=4096)
def _possible_e164(text: str) -> str | None:
    """`text` (international format) as E.164; None if it is not a possible number."""
    parsed = phonenumbers.parse(text, None)
    if not phonenumbers.is_possible_number(parsed):
        return None
    return _e164(parsed)


# What people type between the digits of a phone number.
SEPARATORS = frozenset(" -.()/")


def search_forms(value: str, field: str = "q") -> tuple[str, ...]:
    """The E.164 numbers that `value`, typed in any common form, may mean (sorted), so
    that a search finds a stored number by an index: one for `+61 412 345 678`,
    `0061 412 345 678` or `61412345678`; for a national form such as `0412 345 678`,
    the number in each country where it is valid. ValidationError when there is none."""
    text = (value or "").strip()
    digits = "".join(ch for ch in text if ch.isdigit())
    found = _candidates(text, digits) if written_as_number(text) else set()
    if not found:
        raise ValidationError(field, f"{_shown(value)} is not a phone number")
    return tuple(sorted(found))


def written_as_number(text: str) -> bool:
    """True if `text` is written as a phone number is: digits (one at least), after a
    `+` if any, and what people type between them."""
    return any(ch.isdigit() for ch in text) and all(
        ch.isdigit() or ch in SEPARATORS for ch in text.removeprefix("+")
    )


def _candidates(text: str, digits: str) -> set[str]:
    """The numbers `digits` may be: as written with a country code (after `+` or `00`,
    or none), else in each country where it is a valid national number."""
    found = set()
    prefixed = text.startswith("+") or digits.startswith("00")
    if prefixed or not digits.startswith("0"):
        with contextlib.suppress(phonenumbers.NumberParseException):
            number = phonenumbers.parse("+" + digits.removeprefix("00"), None)
            if phonenumbers.is_possible_number(number):
                found.add(_e164(number))
    if prefixed:
        return found
    for region in phonenumbers.SUPPORTED_REGIONS:
        with contextlib.suppress(phonenumbers.NumberParseException):
            number = phonenumbers.parse(digits, region)
            if phonenumbers.is_valid_number(number):
                found.add(_e164(number))
    return found


def _e164(number: phonenumbers.PhoneNumber) -> str:
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _shown(value: str) -> str:
    """`value` as an error quotes it: whole up to 40 characters, else its start."""
    return repr(value) if len(value) <= 40 else f"{value[:40]!r}... ({len(value)} characters)"
