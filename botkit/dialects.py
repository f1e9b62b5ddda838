"""The dialects a callback's parameters come in, read so that no handset's message is lost.

- A query value is percent-decoded to bytes, then read as UTF-8; bytes that are not
  UTF-8 are read, the whole value, as Windows-1252 (the likeliest other encoding of
  text from a carrier's system), and the value says so (`Value.cp1252`). The five
  bytes Windows-1252 leaves undefined (0x81, 0x8D, 0x8F, 0x90, 0x9D) become their
  Latin-1 code points (C1 controls): nothing turns into U+FFFD, and the original bytes
  can be had back exactly with `text.encode("cp1252")`, or `latin-1` for those five.
  Starlette's `request.query_params` would turn them into U+FFFD, so the callbacks
  read the raw query string with `parse_query`.
- Base64 is read in its MIME (line breaks), unpadded and URL-safe (`-_`) forms, and
  with spaces standing for `+` (a `+` the sender left unescaped in the URL, which form
  decoding turns into a space): `decode_base64`.
"""

from __future__ import annotations

import base64
import re
from typing import NamedTuple
from urllib.parse import unquote_to_bytes

# The bytes 0x80-0x9F as Windows-1252 reads them, but for the five it leaves undefined,
# which stay as their Latin-1 code points (the identity of `bytes.decode("latin-1")`).
UNDEFINED_IN_CP1252 = frozenset({0x81, 0x8D, 0x8F, 0x90, 0x9D})
_CP1252 = str.maketrans(
    {
        chr(byte): bytes([byte]).decode("cp1252")
        for byte in range(0x80, 0xA0)
        if byte not in UNDEFINED_IN_CP1252
    }
)
_URLSAFE = str.maketrans("-_", "+/")
_BASE64 = re.compile(r"[A-Za-z0-9+/]*")


class Value(NamedTuple):
    """One query value as text; `cp1252` when its bytes were not UTF-8."""

    text: str
    cp1252: bool = False


def decode_text(data: bytes) -> Value:
    """`data` as UTF-8 if it is that, else as Windows-1252 (flagged); never U+FFFD."""
    try:
        return Value(data.decode("utf-8"))
    except UnicodeDecodeError:
        return Value(data.decode("latin-1").translate(_CP1252), cp1252=True)


def parse_query(query_string: bytes) -> dict[str, list[Value]]:
    """Every value of each name in a raw query string, in order, as `decode_text` reads
    it. Splits and unescapes as Starlette does (`&` only, `+` is a space, a bare name
    has the value ""), so that UTF-8 values come out exactly as `request.query_params`
    gives them."""
    values: dict[str, list[Value]] = {}
    # On the bytes, as urllib's parse_qsl splits and unescapes text: every callback
    # comes through here, and its own way there and back through Latin-1 costs twice this.
    for pair in query_string.split(b"&"):
        if pair:
            name, _, value = pair.partition(b"=")
            key = decode_text(_unescape(name)).text
            values.setdefault(key, []).append(decode_text(_unescape(value)))
    return values


def _unescape(data: bytes) -> bytes:
    """Form decoding of a name or value: `+` is a space, `%XX` a byte (a malformed
    escape stays as it is)."""
    if b"+" in data:
        data = data.replace(b"+", b" ")
    return unquote_to_bytes(data) if b"%" in data else data


def decode_base64(text: str) -> bytes | None:
    """The bytes `text` encodes in standard, MIME-wrapped, unpadded or URL-safe base64
    (one alphabet, not both), or None when it is base64 in none of them."""
    compact = text.replace("\r", "").replace("\n", "").replace(" ", "+")
    if "-" in compact or "_" in compact:
        if "+" in compact or "/" in compact:
            return None
        compact = compact.translate(_URLSAFE)
    digits = compact.rstrip("=")
    if not _BASE64.fullmatch(digits) or len(digits) % 4 == 1:
        return None
    return base64.b64decode(digits + "=" * (-len(digits) % 4))


def is_strict_base64(text: str) -> bool:
    """Whether `text` is base64 exactly as the spec sends it (standard alphabet, padded,
    nothing else), which is kept as sent."""
    try:
        base64.b64decode(text, validate=True)
    except ValueError:  # binascii.Error, and non-ASCII text
        return False
    return True
