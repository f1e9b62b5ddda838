"""Our numbers: the account's short codes and phone numbers, and how an MT names the one
it goes from.

    numbers = OurNumbers(["4433", "+61400999000"], message_class="mt_message")
    numbers.origin("+61400999000")  # Origin(address='+61400999000', source='+61400999000')

The first number is the default: the gateway sends from it when a request carries
`class`, and only such a request may carry a `mask`. Every other number is named with
`source` and no `class`, as the spec requires. An MT's origin is decided once, when it
is queued, and stored with it: the request uses it, and consent is checked against it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

import phonenumbers

from .errors import ValidationError
from .numbers import international

log = logging.getLogger("botkit.addresses")

EVERYWHERE = "*"  # in consent: every one of our numbers (STOPALL)
# Our numbers of at most this many digits are short codes, longer ones phone numbers.
SHORT_CODE_DIGITS = 8
SIMULATOR_NUMBER = "4433"


def canonical_address(address: str) -> str:
    """One form for each of our numbers, whichever way it reached us: a short code as its
    digits, a long number in E.164 ("61412345678" and "+61412345678" are one number)."""
    if address == EVERYWHERE:
        return address
    digits = "".join(ch for ch in address if ch.isdigit())
    return digits if len(digits) <= SHORT_CODE_DIGITS else f"+{digits}"


def parse_number(text: str, field: str = "BOTKIT_NUMBERS") -> str:
    """One of our numbers as configured: a short code (3 to 8 digits) or a phone number
    in international format; ValidationError naming `field` for anything else."""
    value = text.strip()
    if value.isascii() and value.isdigit():
        if 3 <= len(value) <= SHORT_CODE_DIGITS:
            return value
        raise ValidationError(
            field,
            f"{text!r} is neither a short code (3 to {SHORT_CODE_DIGITS} digits) nor a "
            "phone number in international format (+ and country code)",
        )
    return international(value, field)


def _spellings(number: str) -> tuple[str, ...]:
    """The ways a gateway may write one of our numbers: a short code as it is; a phone
    number in E.164, with the 00 international prefix, or in its country's national
    form (+61400999000 as 0061400999000 or 0400999000)."""
    if not number.startswith("+"):
        return (number,)
    parsed = phonenumbers.parse(number, None)
    region = phonenumbers.region_code_for_number(parsed)
    national = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL)
    spelled = [number, "00" + number[1:]]
    if region not in (None, "001"):  # a country's number (001: none's)
        spelled.append("".join(ch for ch in national if ch.isdigit()))
    return tuple(spelled)


@dataclass(frozen=True)
class Origin:
    """Where an MT goes from: our number `address`, named in the request by
    `message_class` (the default number) or by `source` (any other), never both; a `mask`
    only with the class."""

    address: str
    message_class: str | None = None
    source: str | None = None
    mask: str | None = None


class OurNumbers:
    """The account's numbers, the default first, and the class MTs from the default take.
    ValidationError naming `field` (where they were given) for a list that is empty, names
    one number twice, or holds something that is not one."""

    def __init__(
        self, numbers: Iterable[str], *, message_class: str, field: str = "BOTKIT_NUMBERS"
    ) -> None:
        self.numbers = tuple(parse_number(number, field) for number in numbers)
        if not self.numbers:
            raise ValidationError(field, "names none of our numbers: give at least one number")
        self._by_canonical: dict[str, str] = {}
        for number in self.numbers:
            if canonical_address(number) in self._by_canonical:
                raise ValidationError(field, f"names {number} twice")
            for spelling in _spellings(number):
                self._by_canonical[canonical_address(spelling)] = number
        self.message_class = message_class
        self._warned: set[str] = set()

    def __repr__(self) -> str:
        return f"OurNumbers({list(self.numbers)!r}, message_class={self.message_class!r})"

    def __contains__(self, address: object) -> bool:
        return isinstance(address, str) and canonical_address(address) in self._by_canonical

    @property
    def default(self) -> str:
        """The number the gateway sends from when a request names a class."""
        return self.numbers[0]

    def spelled(self, address: str) -> str:
        """`address` as configured when it is one of ours ("61400999000" may come for
        "+61400999000"), else as it came: one spelling for each conversation's number."""
        return self._by_canonical.get(canonical_address(address), address)

    def ours(self, address: str, field: str = "--address") -> str:
        """`address` as configured, if it is one of our numbers; else ValidationError that
        lists them."""
        found = self._by_canonical.get(canonical_address(address))
        if found is None:
            raise ValidationError(
                field, f"{address!r} is not one of our numbers ({', '.join(self.numbers)})"
            )
        return found

    def origin(self, address: str | None = None, *, mask: str | None = None) -> Origin:
        """The origin of an MT from `address` (None: the default number). A number that
        is not ours (a handset texted one BOTKIT_NUMBERS lacks) is named as it came, with
        `source`. ValidationError for a mask on any number but the default."""
        number = self.default if address is None else self.spelled(address)
        if number == self.default:
            return Origin(number, message_class=self.message_class, mask=mask)
        if mask is not None:
            raise ValidationError(
                "mask",
                f"a mask goes only on messages from the default number {self.default}; "
                f"this one goes from {number} (the gateway takes a mask only with a class)",
            )
        return Origin(number, source=number)

    def notice(self, address: str) -> None:
        """Warn, once per address, that a handset texted a number BOTKIT_NUMBERS lacks."""
        if address in self or address in self._warned:
            return
        self._warned.add(address)
        log.warning(
            "a handset texted %s, which is not in BOTKIT_NUMBERS (%s): it is handled and "
            "answered from %s; add it to BOTKIT_NUMBERS if it is ours",
            address,
            ",".join(self.numbers),
            address,
            extra={"event": "address.unknown", "address": address},
        )
