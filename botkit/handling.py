"""How the app handled an MO, in the words the dashboard and the phone page use.

An MO is stored as `received` (waiting for its handler), then `handled` or `failed`,
with the error as logged. A `failed` MO whose error starts with GAVE_UP was given up:
no attempt to handle it could commit (store/inbox.py writes that text).
"""

from __future__ import annotations

GAVE_UP = "gave up after"
# What the dashboard calls each MO status.
WORDS = {"received": "waiting", "handled": "handled", "failed": "failed"}


def handling(status: str, error: str | None) -> str:
    """An MO's handling status as shown: waiting, handled, failed or given up."""
    if status == "failed" and (error or "").startswith(GAVE_UP):
        return "given up"
    return WORDS.get(status, status)
