"""Signing a webhook's body, and checking a signature, as its receiver does.

    Botkit-Signature: t=1767603600,v1=4d9d5e00addefba231bf0508a2c3f189...(64 hex digits)

`v1` is the hex HMAC-SHA256, keyed with the webhook's secret, of the timestamp `t`
(Unix seconds), a dot, and the body as sent. The timestamp is signed with the body, so
a receiver that refuses old ones (`verify`'s `tolerance`) cannot be fed a captured
delivery again later. A header may carry several `v1` (one per secret, while a secret
is being changed): one that matches is enough.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from datetime import datetime

SIGNATURE_HEADER = "Botkit-Signature"
EVENT_HEADER = "Botkit-Event"
DELIVERY_HEADER = "Botkit-Delivery"
SCHEME = "v1"
# How far a signature's time may be from the receiver's clock, either way, in seconds.
TOLERANCE = 300


class SignatureError(ValueError):
    """A webhook's signature is missing, malformed, made with another secret or for
    another body, or too old (or too far ahead): the delivery is not to be trusted."""


def signature(body: bytes, secret: str, timestamp: int) -> str:
    """The hex HMAC-SHA256 of `timestamp`, a dot and `body`, keyed with `secret`."""
    signed = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def sign(body: bytes, secret: str, timestamp: int) -> str:
    """The `Botkit-Signature` header's value for `body` sent at `timestamp`."""
    return f"t={timestamp},{SCHEME}={signature(body, secret, timestamp)}"


def verify(
    body: bytes,
    header: str | None,
    secret: str,
    *,
    tolerance: float = TOLERANCE,
    now: datetime | float | None = None,
) -> int:
    """Check a delivery's `Botkit-Signature` header against its raw `body` (the bytes
    received, before any JSON parsing) and the webhook's `secret`; return its timestamp.
    Raises SignatureError when it does not hold, or is more than `tolerance` seconds
    from `now` (default: this machine's clock), either way.

        from botkit.webhooks import SignatureError, verify

        try:
            verify(await request.body(), request.headers.get("Botkit-Signature"), SECRET)
        except SignatureError:
            return Response(status_code=400)
    """
    timestamp, signatures = _parse(header)
    moment = _seconds(now)
    if abs(moment - timestamp) > tolerance:
        raise SignatureError(
            f"the signature's time is {moment - timestamp:+.0f}s from now, more than "
            f"{tolerance:g}s: an old delivery replayed, or a clock that is wrong"
        )
    expected = signature(body, secret, timestamp).encode()
    if not any(hmac.compare_digest(expected, given.encode()) for given in signatures):
        raise SignatureError("no signature matches the body and the secret")
    return timestamp


def _parse(header: str | None) -> tuple[int, list[str]]:
    """The timestamp and the `v1` signatures of a header; SignatureError if malformed."""
    if not header:
        raise SignatureError(f"no {SIGNATURE_HEADER} header")
    timestamp: int | None = None
    signatures = []
    for part in header.split(","):
        key, equals, value = part.strip().partition("=")
        if not equals:
            raise SignatureError(f"{SIGNATURE_HEADER} is malformed: expected t=...,v1=...")
        if key == "t":
            if not value.isascii() or not value.isdigit():
                raise SignatureError(f"{SIGNATURE_HEADER}'s t is not a time in Unix seconds")
            timestamp = int(value)
        elif key == SCHEME:
            signatures.append(value)
    if timestamp is None:
        raise SignatureError(f"{SIGNATURE_HEADER} has no timestamp (t=)")
    if not signatures:
        raise SignatureError(f"{SIGNATURE_HEADER} has no {SCHEME} signature")
    return timestamp, signatures


def _seconds(now: datetime | float | None) -> float:
    if now is None:
        return time.time()
    if isinstance(now, datetime):
        return now.timestamp()
    return float(now)
