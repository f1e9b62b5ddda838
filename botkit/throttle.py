"""Failed logins counted per address, so that guessing the dashboard's password is slow."""

from __future__ import annotations

import time
from collections import deque


class LoginThrottle:
    """Refuses an address after `limit` failed logins within `window` seconds."""

    def __init__(self, limit: int = 10, window: float = 900.0) -> None:
        self.limit = limit
        self.window = window
        self.failures: dict[str, deque[float]] = {}

    def wait(self, address: str) -> float:
        """Seconds until `address` may try again (0: now)."""
        recent = self._recent(address)
        if not recent:
            del self.failures[address]  # forgotten once its failures are old
        if len(recent) < self.limit:
            return 0.0
        return recent[0] + self.window - time.monotonic()

    def failed(self, address: str) -> None:
        self._recent(address).append(time.monotonic())

    def succeeded(self, address: str) -> None:
        self.failures.pop(address, None)

    def _recent(self, address: str) -> deque[float]:
        recent = self.failures.setdefault(address, deque())
        while recent and recent[0] < time.monotonic() - self.window:
            recent.popleft()
        return recent
