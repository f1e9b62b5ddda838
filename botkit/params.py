"""Query and path parameters as numbers, with a clear error for anything else.

Ids fit SQLite's (and PostgreSQL's) 64-bit integers: a longer number would overflow
the database driver rather than find nothing, so it is refused here. The path
convertor `{name:id}` takes 1 to 18 digits; a longer path matches no route (404).
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.convertors import Convertor, register_url_convertor

from .errors import ValidationError

MAX_ID = 10**18 - 1


def whole(
    params: Mapping[str, str],
    name: str,
    *,
    default: int | None = None,
    low: int = 1,
    high: int = MAX_ID,
) -> int | None:
    """Parameter `name` as a whole number from `low` to `high`; `default` when it is
    missing or empty; ValidationError naming it for anything else."""
    text = params.get(name) or ""
    if not text:
        return default
    # "²".isdigit() is true, but int() refuses it; a 5,000-digit text is no id either.
    if text.isascii() and text.isdigit() and len(text) <= len(str(high)):
        value = int(text)
        if low <= value <= high:
            return value
    raise ValidationError(name, f"must be a whole number from {low} to {high}")


class IdConvertor(Convertor[int]):
    """`{name:id}`: a database id in a path."""

    regex = "[0-9]{1,18}"

    def convert(self, value: str) -> int:
        return int(value)

    def to_string(self, value: int) -> str:
        return str(value)


register_url_convertor("id", IdConvertor())
