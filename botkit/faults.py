"""Faults of the simulated gateway: how it fails send requests for a while.

    simulator.fail(status=503, requests=3)   # botkit.simulator.Simulator.fail

A fault answers each send request with `status` (429 or a 5xx) instead of the message id,
after holding it `delay` seconds (a delay beyond the client's timeout is a timeout; a
delay alone is a slow gateway); it lasts `requests` requests or `seconds` seconds (the
first to run out), or until healed (`heal()`). Whether the message was accepted is what a
real gateway would have done:

- 503, 429: never accepted. The gateway says it did not take the request on, before
  checking anything; a client may resend.
- 500 (any other 5xx): accepted by default (`accept=False` for one that failed before
  queuing). The gateway queued the message and then failed to answer: it is delivered
  and its DLRs come, so a client that resends delivers it twice.
- a delay with no status (slow, or a timeout): accepted on arrival, answered late with its
  id; its DLRs may come before the answer.
- a delay with a status: a timeout before (`accept=False`) or after queuing.
- connection refused is not a fault of this app (a socket is uvicorn's to close, and a
  closed one takes the lifespan with it): put a TCP relay in front and switch it off, as
  the tests do (tests/servers.py).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

# A gateway answering these did not take the request on (overloaded, throttled).
NOT_TAKEN = (429, 503)


@dataclass
class Fault:
    """How the gateway fails each send request while the fault lasts (module docstring)."""

    status: int | None = None
    delay: float = 0.0
    accept: bool | None = None  # None: the default for `status`
    requests: int | None = None
    seconds: float | None = None
    answered: int = 0  # requests it took so far
    started: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        if self.status is not None and not (self.status == 429 or 500 <= self.status <= 599):
            raise ValueError(f"status {self.status!r}: a fault answers 429 or a 5xx")
        if self.accept is None:
            self.accept = self.status not in NOT_TAKEN
        if self.accept and self.status in NOT_TAKEN:
            raise ValueError(f"a {self.status} means the gateway did not take the message")
        if self.status is None and not self.accept:
            raise ValueError("a message the gateway did not accept needs an error status")
        if not (math.isfinite(self.delay) and self.delay >= 0):
            raise ValueError("delay must be a number of seconds, at least 0")
        if self.status is None and not self.delay:
            raise ValueError("a fault needs a status, a delay, or both")
        if self.requests is not None and self.requests < 1:
            raise ValueError("requests must be at least 1")
        if self.seconds is not None and not (math.isfinite(self.seconds) and self.seconds > 0):
            raise ValueError("seconds must be a positive number")

    def over(self) -> bool:
        """Whether the fault has run out: the gateway is healthy again."""
        if self.requests is not None and self.answered >= self.requests:
            return True
        return self.seconds is not None and time.monotonic() - self.started >= self.seconds

    def take(self) -> bool:
        """Count one more request against the fault; False once it has run out."""
        if self.over():
            return False
        self.answered += 1
        return True

    def as_json(self) -> dict[str, Any]:
        """The fault's settings, how many requests it answered, and whether it is over."""
        keys = ("status", "delay", "accept", "requests", "seconds", "answered")
        return {**{key: getattr(self, key) for key in keys}, "over": self.over()}


def fault_arguments(given: Any) -> dict[str, Any]:
    """`fail`'s arguments from a parsed JSON object (botkit.bodies reads it within a
    limit), type-checked; ValueError naming the bad one."""
    if not isinstance(given, dict):
        raise ValueError("send a JSON object")
    types: dict[str, tuple[type, ...]] = {
        "status": (int,),
        "delay": (int, float),
        "accept": (bool,),
        "requests": (int,),
        "seconds": (int, float),
    }
    for key, value in given.items():
        if key not in types:
            raise ValueError(f"unknown key {key!r}; known: {sorted(types)}")
        if value is None and key != "delay":  # null: the default
            continue
        if isinstance(value, bool) is not (bool in types[key]) or not isinstance(value, types[key]):
            raise ValueError(f"{key}: {value!r} is not a {types[key][0].__name__}")
    return given
