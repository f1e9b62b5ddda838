"""What an SMS costs: its encoding (GSM-7 or UCS-2) and how many segments it takes."""

from __future__ import annotations

from dataclasses import dataclass

# GSM 03.38 basic character set, and the extension table (each of those takes two septets).
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENDED = frozenset("^{}\\[~]|€\f")

GSM7 = "GSM-7"
UCS2 = "UCS-2"


@dataclass(frozen=True)
class Encoding:
    """The encoding a text needs and the number of segments it is sent in."""

    name: str
    units: int
    segments: int


def measure(text: str) -> Encoding:
    """Return the encoding and segment count of `text` as a carrier would send it.

    GSM-7 fits 160 septets in one segment or 153 per part of a long message;
    UCS-2 fits 70 UTF-16 units, or 67 per part. A part never splits a character
    (a GSM-7 escape pair, a UTF-16 surrogate pair), so it may hold one unit less.
    """
    if all(ch in GSM7_BASIC or ch in GSM7_EXTENDED for ch in text):
        sizes = [2 if ch in GSM7_EXTENDED else 1 for ch in text]
        return Encoding(GSM7, sum(sizes), _segments(sizes, 160, 153))
    sizes = [2 if ord(ch) > 0xFFFF else 1 for ch in text]
    return Encoding(UCS2, sum(sizes), _segments(sizes, 70, 67))


def _segments(sizes: list[int], single: int, part: int) -> int:
    """How many parts characters of these sizes take, none split between two parts."""
    if sum(sizes) <= single:
        return 1
    parts, used = 1, 0
    for size in sizes:
        if used + size > part:
            parts, used = parts + 1, 0
        used += size
    return parts
