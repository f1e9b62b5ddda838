"""Webhooks: integrations told, by a signed JSON POST, when something happens.

    signing.py        the Botkit-Signature header, and `verify` for receivers
    subscriptions.py  the webhooks in force (settings and database) and their checks
    sender.py         the worker that delivers the queued events, with retries

An event is queued by `emit` in the transaction that makes it happen (store/webhooks.py
says how), so it is sent if and only if its cause commits, and a handler never waits for
a receiver. docs/webhooks.md shows the events, the payloads and how to verify them.

    from botkit.webhooks import CAMPAIGN_FIRED, emit

    await emit(tx, CAMPAIGN_FIRED, {"campaign": "appointments", ...}, now)
"""

from __future__ import annotations

from ..events import (
    CAMPAIGN_FIRED,
    CONTACT_OPTED_OUT,
    EVENTS,
    MO_RECEIVED,
    SURVEY_COMPLETED,
    THREAD_ENDED,
)
from ..store.webhooks import emit
from .signing import SignatureError, sign, verify

__all__ = [
    "CAMPAIGN_FIRED",
    "CONTACT_OPTED_OUT",
    "EVENTS",
    "MO_RECEIVED",
    "SURVEY_COMPLETED",
    "THREAD_ENDED",
    "SignatureError",
    "emit",
    "sign",
    "verify",
]
