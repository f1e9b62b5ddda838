"""Webhook signatures: a known vector (made with openssl), and every way a signature
fails to hold, each a SignatureError that says why."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from botkit.webhooks import SignatureError, sign, verify

BODY = b'{"id":"evt_1","type":"mo.received"}'
SECRET = "whsec_test_0123456789"
T = 1767603600
# printf '1767603600.{"id":"evt_1","type":"mo.received"}' |
#     openssl dgst -sha256 -hmac whsec_test_0123456789
VECTOR = "4d9d5e00addefba231bf0508a2c3f18913d60333b78b7d1c65d4223d15f7d86f"


def test_the_header_is_stripes_scheme_with_a_known_vector():
    assert sign(BODY, SECRET, T) == f"t={T},v1={VECTOR}"
    assert verify(BODY, f"t={T},v1={VECTOR}", SECRET, now=T) == T


def test_a_signature_holds_within_the_tolerance_either_way():
    header = sign(BODY, SECRET, T)
    assert verify(BODY, header, SECRET, now=T + 300) == T
    assert verify(BODY, header, SECRET, now=T - 300) == T
    assert verify(BODY, header, SECRET, now=datetime.fromtimestamp(T + 60, UTC)) == T


def test_one_matching_signature_of_several_is_enough():
    header = f"t={T},v1={'0' * 64},v1={VECTOR},v0=whatever"
    assert verify(BODY, header, SECRET, now=T) == T


@pytest.mark.parametrize(
    ("body", "secret", "now", "reason"),
    [
        (BODY + b" ", SECRET, T, "no signature matches"),
        (BODY.replace(b"evt_1", b"evt_2"), SECRET, T, "no signature matches"),
        (BODY, SECRET + "x", T, "no signature matches"),
        (BODY, SECRET, T + 301, "+301s from now, more than 300s"),
        (BODY, SECRET, T - 301, "-301s from now"),
    ],
    ids=["appended", "tampered", "wrong secret", "expired", "from the future"],
)
def test_a_signature_that_does_not_hold_is_refused(body, secret, now, reason):
    with pytest.raises(SignatureError, match=reason.replace("+", r"\+")):
        verify(body, sign(BODY, SECRET, T), secret, now=now)


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (None, "no Botkit-Signature header"),
        ("", "no Botkit-Signature header"),
        (VECTOR, "malformed"),
        (f"v1={VECTOR}", "no timestamp"),
        (f"t=,v1={VECTOR}", "not a time"),
        (f"t=-5,v1={VECTOR}", "not a time"),
        (f"t=１２,v1={VECTOR}", "not a time"),
        (f"t={T}", "no v1 signature"),
        (f"t={T},v0={VECTOR}", "no v1 signature"),
        (f"t={T},v1=", "no signature matches"),
        (f"t={T},v1=é", "no signature matches"),
    ],
)
def test_a_malformed_header_is_refused_saying_why(header, reason):
    with pytest.raises(SignatureError, match=reason):
        verify(BODY, header, SECRET, now=T)


def test_a_tolerance_of_your_own():
    header = sign(BODY, SECRET, T)
    assert verify(BODY, header, SECRET, now=T + 3000, tolerance=3600) == T
    with pytest.raises(SignatureError):
        verify(BODY, header, SECRET, now=T + 11, tolerance=10)
