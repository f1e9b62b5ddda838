"""What handlers see: the message that came in, its thread, and the replies going out."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

# The statuses a DLR may carry, per the gateway's spec; any other is kept verbatim.
DELIVERY_STATUSES = (
    "submitted",
    "sent",
    "frozen",
    "received",
    "failed",
    "dead",
    "rejected",
    "expired",
)
FINAL_STATUSES = frozenset({"received", "failed", "dead", "rejected", "expired"})


def delivery_rank(status: str | None) -> int:
    """How far along a delivery status is, so that a late receipt never moves it back."""
    if status is None:
        return 0
    if status in FINAL_STATUSES:
        return 3
    if status in ("sent", "frozen"):
        return 2
    return 1


@dataclass(frozen=True)
class Message:
    """An MO as stored: what a handset sent to one of our addresses."""

    id: int
    gateway_id: int
    source: str
    destination: str
    content: str
    received_at: datetime
    operator: str | None = None
    reply_to: int | None = None
    reference: str | None = None
    binary: bytes | None = None
    # What was done to keep it (callbacks.py): `reference-truncated`, `content-cp1252`...
    flags: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        """The text of the message; empty for binary content (see `binary`)."""
        return "" if self.binary is not None else self.content


@dataclass
class Thread:
    """A conversation between one handset and one of our addresses, owned by one bot.

    `id` is None until the thread is first committed. `paused_by` names the operator who
    took it over from the dashboard: no bot answers it until it is handed back.
    """

    bot: str
    handset: str
    address: str
    id: int | None = None
    state: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    status: str = "open"
    paused_by: str | None = None
    end_reason: str | None = None  # once closed: ended, expired, opted_out or operator


@dataclass(frozen=True)
class Reply:
    """An MT a handler queued: its text and what it costs to send.

    `exempt` is for the confirmation of an opt-out only: the one MT that may go to a
    handset that has just opted out. `mask` shows the handset a name instead of our
    number (from the default number only); `expires` (RFC 3339) tells carriers when to
    give up on it.
    """

    content: str
    template: str | None
    encoding: str
    segments: int
    exempt: bool = False
    mask: str | None = None
    expires: str | None = None


@dataclass(frozen=True)
class Outgoing:
    """An MT claimed from the outbox, with every field the gateway takes."""

    id: int
    destination: str
    content: str
    message_class: str | None
    source: str | None
    mask: str | None
    reference: str | None
    expires: str | None
    attempts: int
    thread_id: int | None = None
    address: str | None = None  # the one of our numbers it goes from


@dataclass(frozen=True)
class IncomingMO:
    """An MO callback's parameters, validated.

    `flags` are the words for what was done to keep it (stored with it), `notes` the
    same in words for the log line (not stored).
    """

    gateway_id: int
    source: str
    destination: str
    content: str
    operator: str | None = None
    reply_to: int | None = None
    reference: str | None = None
    binary: bool = False
    flags: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class IncomingDLR:
    """A DLR callback's parameters, validated (`flags` and `notes` as IncomingMO's)."""

    gateway_id: int
    status: str
    reference: str | None = None
    flags: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


# The flag of a reference cut to 50 characters: it names no MT of ours, though its
# start may look like one's.
REFERENCE_TRUNCATED = "reference-truncated"


def join_flags(flags: tuple[str, ...]) -> str | None:
    """Flags as stored: comma-separated words, NULL for none."""
    return ",".join(flags) or None


def split_flags(stored: str | None) -> tuple[str, ...]:
    """Flags as stored, back to words."""
    return tuple(stored.split(",")) if stored else ()


@dataclass(frozen=True)
class ConsentChange:
    """An opt-in or opt-out of one handset on one of our addresses ('*': all of them),
    or, when `list` names one, a subscription to that list (or its end)."""

    handset: str
    address: str
    action: str  # "opt-in" or "opt-out"
    source: str  # how it was given: "sms", "web", "import", "operator"
    keyword: str | None = None
    message_id: int | None = None
    list: str | None = None
    at: datetime | None = None  # when it was given, if before it is recorded (an import)


@dataclass(frozen=True)
class Timer:
    """A timer of a thread: set by a handler with `ctx.schedule`, it runs the bot's
    `@bot.timer(name)` handler once, when due."""

    name: str
    due_at: datetime
    data: dict[str, Any] = field(default_factory=dict)
    id: int | None = None
    thread_id: int | None = None
    handset: str | None = None
