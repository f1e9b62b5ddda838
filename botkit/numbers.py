"""Phone numbers in international format, checked with libphonenumber."""

from __future__ import annotations

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
            field, f"{value!r} is not in international format (+ and country code)"
        )
    try:
        parsed = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException as exc:
        raise ValidationError(field, f"{value!r} is not a phone number ({exc})") from None
    if not phonenumbers.is_possible_number(parsed):
        raise ValidationError(field, f"{value!r} is not a possible phone number")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
