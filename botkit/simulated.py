"""What the gateway simulator keeps: the MTs it accepted, the MOs handsets sent, its
callbacks and the send requests it answered (simulator.py fills them, phone.py shows
them)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime


@dataclass
class SimMessage:
    """One MT the simulator accepted."""

    id: int
    destination: str
    content: str
    message_class: str | None
    source: str | None
    mask: str | None
    reference: str | None
    expires: str | None
    number: str  # the number of ours it went from (a reply goes there)
    sender: str  # the address the handset sees it come from: a known mask, else `number`
    expires_at: datetime | None = None
    statuses: list[str] = field(default_factory=list)  # statuses reached so far, in order
    created_at: float = field(default_factory=time.time)

    @property
    def expired(self) -> bool:
        """Whether it expired: it never reached the handset."""
        return "expired" in self.statuses


@dataclass
class SimMO:
    """One MO a simulated handset sent; `content` is as sent (base64 text when `binary`)."""

    id: int
    source: str
    destination: str
    content: str
    reply_to: int | None
    reference: str | None
    binary: bool
    operator: str
    answer: int | None = None  # the app's final HTTP status; None if it was never reached
    pending: bool = True  # True until delivery succeeded or gave up
    created_at: float = field(default_factory=time.time)
    callback: SimCallback | None = None  # its delivery attempts, once they started


@dataclass
class SimCallback:
    """One DLR or MO callback: the parameters (the same on every attempt), each attempt's answer."""

    kind: str  # "dlr" or "mo"
    params: dict[str, str]
    answers: list[int | None] = field(default_factory=list)  # None: the app was unreachable


@dataclass
class SimRequest:
    """One send request and the gateway's answer to it (`message_id` when it accepted)."""

    destination: str | None
    reference: str | None
    status: int
    message_id: int | None
    faulted: bool  # answered by a fault
