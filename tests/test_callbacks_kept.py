"""Issue 13: the callbacks keep every handset's message. A reporting field that is too
long or malformed, base64 in another dialect, text that is not UTF-8: the MO or DLR is
stored, what was done is flagged on its row and logged, and the answer is 200. Only a
required parameter refuses it. A HEAD is answered and does nothing else.

Each test talks HTTP to the real app, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import base64
import dataclasses
import logging
import re
from urllib.parse import parse_qsl

import httpx
import hypothesis
import pytest
from conftest import client_to, eventually, rows, running
from hypothesis import strategies as st

from botkit import create_app
from botkit.dialects import decode_base64, decode_text, parse_query
from botkit.messages import REFERENCE_TRUNCATED, IncomingDLR
from botkit.threads import echoed_reference

pytestmark = pytest.mark.backends

MO_URL = "/callbacks/test-token/mo"
DLR_URL = "/callbacks/test-token/dlr"
MO = {
    "id": "6000000001",
    "source": "+61400000001",
    "destination": "4433",
    "content": "hello",
    "operator": "Telstra",
}
PAYLOAD = bytes(range(256))  # every base64 digit in its encoding, `+` and `/` among them


def stored_mo(database: str) -> dict:
    (row,) = rows(database, "SELECT * FROM messages WHERE direction = 'mo'")
    return dict(row)


def flagged(caplog: pytest.LogCaptureFixture, event: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "event", None) == event]


# -- MO: reporting fields ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "kept", "flags"),
    [
        ({"reference": "r" * 80}, {"reference": "r" * 50}, "reference-truncated"),
        ({"operator": "o" * 150}, {"operator": "o" * 100}, "operator-truncated"),
        ({"reply_to": "x1"}, {"reply_to": None}, "reply-to-invalid"),
        ({"reply_to": str(2**63)}, {"reply_to": None}, "reply-to-invalid"),
        # The spec defines only base64: any other encoding is kept as the text it came as.
        ({"encoding": "hex"}, {"content": "hello", "encoding": "GSM-7"}, "encoding-unknown"),
        ({"encoding": ""}, {"content": "hello", "encoding": "GSM-7"}, "encoding-unknown"),
    ],
)
async def test_a_bad_reporting_field_keeps_the_mo_flagged(
    client, settings, caplog, given, kept, flags
):
    response = await client.get(MO_URL, params={**MO, **given})
    assert (response.status_code, response.text) == (200, "OK")
    stored = stored_mo(settings.db)
    assert {name: stored[name] for name in kept} == kept
    assert stored["flags"] == flags
    (warning,) = flagged(caplog, "mo.flagged")
    assert warning.levelno == logging.WARNING
    assert (warning.flags, warning.gateway_id) == (flags, 6000000001)
    assert "hello" not in warning.getMessage()  # never the content


async def test_a_repeated_reporting_field_keeps_its_first_value(client, settings):
    pairs = [*MO.items(), ("reference", "first"), ("reference", "second")]
    response = await client.get(MO_URL, params=pairs)
    assert (response.status_code, response.text) == (200, "OK")
    stored = stored_mo(settings.db)
    assert (stored["reference"], stored["flags"]) == ("first", "reference-repeated")


async def test_a_well_formed_mo_has_no_flags(client, settings, caplog):
    response = await client.get(MO_URL, params={**MO, "reference": "r" * 50, "reply_to": "-5"})
    assert response.status_code == 200
    stored = stored_mo(settings.db)
    assert (stored["flags"], stored["reference"], stored["reply_to"]) == (None, "r" * 50, -5)
    assert flagged(caplog, "mo.flagged") == []


async def test_several_flags_are_kept_together_and_the_mo_is_handled(client, settings):
    params = {**MO, "reference": "r" * 51, "reply_to": "1.5", "operator": "o" * 101}
    response = await client.get(MO_URL, params=params)
    assert response.status_code == 200
    flags = stored_mo(settings.db)["flags"].split(",")
    assert sorted(flags) == ["operator-truncated", "reference-truncated", "reply-to-invalid"]
    await eventually(lambda: stored_mo(settings.db)["status"] == "handled")


@pytest.mark.parametrize(
    ("params", "body"),
    [
        ({**MO, "id": "x"}, "ERROR Invalid id parameter"),
        ({k: v for k, v in MO.items() if k != "content"}, "ERROR Missing content parameter"),
        ({**MO, "encoding": "base64", "content": "not base64!"}, "ERROR Invalid content parameter"),
    ],
)
async def test_a_bad_required_field_is_still_refused(client, settings, params, body):
    response = await client.get(MO_URL, params={**params, "reference": "r" * 60})
    assert (response.status_code, response.text) == (400, body)
    assert rows(settings.db, "SELECT * FROM messages") == []


# -- MO: a `+` sent unescaped ----------------------------------------------------------


@pytest.mark.parametrize(
    ("escaped", "kept", "flags"),
    [
        ({"source": "+61400000201"}, {"handset": "+61400000201"}, "source-plus-restored"),
        ({"destination": "+61400999000"}, {"address": "+61400999000"}, "destination-plus-restored"),
        (
            {"source": "+61400000201", "destination": "+61400999000"},
            {"handset": "+61400000201", "address": "+61400999000"},
            "source-plus-restored,destination-plus-restored",
        ),
        # Escaped, the `+` arrives as sent: nothing to restore.
        ({"source": "%2B61400000201"}, {"handset": "+61400000201"}, None),
    ],
)
async def test_a_plus_sent_unescaped_is_restored_and_flagged(
    client, settings, caplog, escaped, kept, flags
):
    """Regression (attack review): form decoding turns an unescaped `+` into a space,
    and `source=+61400000201` was refused as " 61400000201": the message lost."""
    response = await client.get(f"{MO_URL}?{query(**escaped)}")
    assert (response.status_code, response.text) == (200, "OK")
    stored = stored_mo(settings.db)
    assert {name: stored[name] for name in kept} == kept
    assert stored["flags"] == flags
    assert bool(flagged(caplog, "mo.flagged")) == (flags is not None)
    await eventually(lambda: stored_mo(settings.db)["status"] == "handled")


@pytest.mark.parametrize(
    ("name", "escaped"),
    [
        ("source", "++61400000201"),  # two spaces
        ("source", "+61+400+000+201"),  # spaces between the digits too
        ("source", "+61400000201+"),
        ("source", "%2061400000201x"),
        ("destination", "++4433"),
        ("destination", "+44a33"),
        ("destination", "+"),
    ],
)
async def test_only_a_space_then_digits_is_read_as_a_plus(client, settings, name, escaped):
    response = await client.get(f"{MO_URL}?{query(**{name: escaped})}")
    assert (response.status_code, response.text) == (400, f"ERROR Invalid {name} parameter")
    assert rows(settings.db, "SELECT * FROM messages") == []


# -- ids padded with zeros --------------------------------------------------------------

PADDED = "0000000000000000000001"  # 22 digits, the value 1


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        (PADDED, 1),
        ("-" + PADDED, -1),
        ("000" + str(2**63 - 1), 2**63 - 1),
        ("-000" + str(2**63), -(2**63)),
        ("0" * 5000 + "7", 7),  # more digits than int() reads by default
    ],
)
async def test_an_id_padded_with_zeros_is_its_value(client, settings, given, stored):
    """Regression (attack review): an id of more than 19 digits was refused even when
    its value, once the zeros are gone, fits a 64-bit signed integer."""
    response = await client.get(MO_URL, params={**MO, "id": given, "reply_to": given})
    assert (response.status_code, response.text) == (200, "OK")
    row = stored_mo(settings.db)
    assert (row["gateway_id"], row["reply_to"], row["flags"]) == (stored, stored, None)
    response = await client.get(DLR_URL, params={"id": given, "status": "sent"})
    assert (response.status_code, response.text) == (200, "OK")
    assert rows(settings.db, "SELECT gateway_id FROM deliveries")[0][0] == stored


async def test_a_padded_id_is_the_same_id_as_unpadded(client, settings):
    for given in ("1", PADDED):
        response = await client.get(MO_URL, params={**MO, "id": given})
        assert (response.status_code, response.text) == (200, "OK")
    assert stored_mo(settings.db)["gateway_id"] == 1


@pytest.mark.parametrize(
    "given", ["000" + str(2**63), "-000" + str(2**63 + 1), "0" * 30 + "1" * 20]
)
async def test_a_padded_id_that_does_not_fit_is_still_refused(client, settings, given):
    response = await client.get(MO_URL, params={**MO, "id": given})
    assert (response.status_code, response.text) == (400, "ERROR Invalid id parameter")
    response = await client.get(DLR_URL, params={"id": given, "status": "sent"})
    assert (response.status_code, response.text) == (400, "ERROR Invalid id parameter")
    response = await client.get(MO_URL, params={**MO, "reply_to": given})
    assert (response.status_code, response.text) == (200, "OK")
    row = stored_mo(settings.db)
    assert (row["reply_to"], row["flags"]) == (None, "reply-to-invalid")


# -- MO: base64 dialects ----------------------------------------------------------------

STANDARD = base64.b64encode(PAYLOAD).decode()


def mime(text: str) -> str:
    return "\r\n".join(text[i : i + 76] for i in range(0, len(text), 76)) + "\r\n"


@pytest.mark.parametrize("encoding", ["base64", "BASE64", "Base64", " base64 "])
async def test_base64_in_any_case_is_kept_as_sent(client, settings, encoding):
    params = {**MO, "encoding": encoding, "content": STANDARD}
    assert (await client.get(MO_URL, params=params)).status_code == 200
    stored = stored_mo(settings.db)
    assert (stored["content"], stored["encoding"], stored["flags"]) == (STANDARD, "base64", None)


@pytest.mark.parametrize(
    "content",
    [
        mime(STANDARD),  # MIME: lines of 76, CR LF
        STANDARD.rstrip("="),  # unpadded
        base64.urlsafe_b64encode(PAYLOAD).decode(),  # URL-safe
        base64.urlsafe_b64encode(PAYLOAD).decode().rstrip("="),  # URL-safe, unpadded
        STANDARD.replace("+", " "),  # a `+` sent unescaped: a space once form-decoded
    ],
    ids=["mime", "unpadded", "url-safe", "url-safe-unpadded", "plus-as-space"],
)
async def test_base64_in_another_dialect_is_decoded_and_kept_standard(
    client, settings, caplog, content
):
    assert content != STANDARD
    params = {**MO, "encoding": "base64", "content": content}
    response = await client.get(MO_URL, params=params)
    assert (response.status_code, response.text) == (200, "OK")
    stored = stored_mo(settings.db)
    # Kept as binary MOs always were (Message.binary decodes it): standard base64.
    assert (stored["content"], stored["encoding"]) == (STANDARD, "base64")
    assert stored["flags"] == "content-base64-normalized"
    assert flagged(caplog, "mo.flagged")
    await eventually(lambda: stored_mo(settings.db)["status"] == "handled")


@pytest.mark.parametrize(
    "content", ["not base64!", "QUJD-_+/", "QUJDR", "QU=JD", "QUJD\t", "QUJDé"]
)
async def test_content_that_is_base64_in_no_dialect_is_refused(client, settings, content):
    params = {**MO, "encoding": "base64", "content": content}
    response = await client.get(MO_URL, params=params)
    assert (response.status_code, response.text) == (400, "ERROR Invalid content parameter")
    assert rows(settings.db, "SELECT * FROM messages") == []


# -- MO: text that is not UTF-8 ---------------------------------------------------------


def query(**escaped: str) -> str:
    """MO's parameters with `escaped` given as already percent-encoded text."""
    plain = {k: v for k, v in MO.items() if k not in escaped}
    return str(httpx.QueryParams(plain)) + "".join(f"&{k}={v}" for k, v in escaped.items())


@pytest.mark.parametrize(
    ("escaped", "text", "flags"),
    [
        ("caf%E9+%80+5", "café € 5", "content-cp1252"),
        # The five bytes Windows-1252 leaves undefined: their Latin-1 code points.
        ("%81%8D%8F%90%9D", "\x81\x8d\x8f\x90\x9d", "content-cp1252"),
        ("%ED%A0%80", "í\xa0€", "content-cp1252"),  # UTF-8 of a lone surrogate
        ("%C3%A9t%C3%A9+%F0%9F%98%80", "été 😀", None),  # UTF-8: exactly as before
        ("a%00%E9", "a\ufffdé", "content-cp1252,content-nul-replaced"),
    ],
)
async def test_content_that_is_not_utf8_is_kept_as_windows_1252(
    client, settings, caplog, escaped, text, flags
):
    response = await client.get(f"{MO_URL}?{query(content=escaped)}")
    assert (response.status_code, response.text) == (200, "OK")
    stored = stored_mo(settings.db)
    assert (stored["content"], stored["flags"]) == (text, flags)
    assert "\ufffd" not in stored["content"] or "%00" in escaped
    assert bool(flagged(caplog, "mo.flagged")) == (flags is not None)


async def test_a_reference_that_is_not_utf8_is_kept_and_flagged(client, settings):
    response = await client.get(f"{MO_URL}?{query(reference='r%E9f')}")
    assert response.status_code == 200
    stored = stored_mo(settings.db)
    assert (stored["reference"], stored["flags"]) == ("réf", "reference-cp1252")


async def test_flags_are_in_the_api(app, client, settings):
    response = await client.get(MO_URL, params={**MO, "reference": "t1.m1" + "x" * 60})
    assert response.status_code == 200
    await eventually(lambda: stored_mo(settings.db)["status"] == "handled")
    thread_id = stored_mo(settings.db)["thread_id"]
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 1234))
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as local:
        found = (await local.get(f"/api/threads/{thread_id}")).json()
    mo, mt = found["messages"][:2]
    assert (mo["direction"], mo["flags"]) == ("mo", ["reference-truncated"])
    assert (mt["direction"], mt["flags"]) == ("mt", [])


# -- DLR --------------------------------------------------------------------------------


async def mt_of_a_conversation(app, settings) -> dict:
    """An MT the hello bot sent and the gateway accepted (its DLRs held back)."""
    sim = app.state.simulator
    sim.set_fate("+61400000009", [])
    await sim.send_mo("+61400000009", "hello")
    (mt,) = await eventually(
        lambda: rows(
            settings.db, "SELECT * FROM messages WHERE direction = 'mt' AND status = 'accepted'"
        )
    )
    return dict(mt)


async def test_an_over_long_dlr_reference_is_kept_cut_and_flagged(app, client, settings, caplog):
    mt = await mt_of_a_conversation(app, settings)
    reference = mt["reference"] + "-" * 60
    params = {"id": str(mt["gateway_id"]), "status": "received", "reference": reference}
    response = await client.get(DLR_URL, params=params)
    assert (response.status_code, response.text) == (200, "OK")
    (kept,) = rows(settings.db, "SELECT * FROM deliveries")
    assert (kept["reference"], kept["flags"]) == (reference[:50], "reference-truncated")
    assert kept["message_id"] == mt["id"]  # by its gateway id, which is whole
    (delivery,) = rows(settings.db, "SELECT delivery FROM messages WHERE id = ?", (mt["id"],))
    assert delivery[0] == "received"
    (warning,) = flagged(caplog, "dlr.flagged")
    assert (warning.flags, warning.message_id) == ("reference-truncated", mt["id"])


async def test_a_cut_reference_never_settles_an_mt(app, client, settings):
    mt = await mt_of_a_conversation(app, settings)
    # The MT's send outcome unknown: only a receipt echoing its reference can settle it.
    await app.state.runtime.db.write(
        lambda tx: tx.execute(
            "UPDATE messages SET gateway_id = NULL, status = 'uncertain' WHERE id = ?",
            (mt["id"],),
        )
    )
    params = {"id": "777", "status": "received", "reference": mt["reference"] + "0" * 60}
    assert (await client.get(DLR_URL, params=params)).status_code == 200
    (kept,) = rows(settings.db, "SELECT message_id, flags FROM deliveries")
    assert (kept["message_id"], kept["flags"]) == (None, "reference-truncated")
    # Even a cut reference that reads as the MT's whole one matches nothing.
    store = app.state.runtime.store
    cut = IncomingDLR(777, "sent", mt["reference"], flags=(REFERENCE_TRUNCATED,))
    assert (await store.deliveries.record(cut)).message_id is None
    (after,) = rows(
        settings.db, "SELECT gateway_id, status FROM messages WHERE id = ?", (mt["id"],)
    )
    assert (after["gateway_id"], after["status"]) == (None, "uncertain")
    whole = IncomingDLR(777, "submitted", mt["reference"])
    assert (await store.deliveries.record(whole)).message_id == mt["id"]


async def test_a_dlr_status_that_is_not_utf8_is_kept(client, settings):
    response = await client.get(f"{DLR_URL}?id=8&status=re%E7u")
    assert (response.status_code, response.text) == (200, "OK")
    (kept,) = rows(settings.db, "SELECT status, flags FROM deliveries")
    assert (kept["status"], kept["flags"]) == ("reçu", "status-cp1252")


# -- HEAD -------------------------------------------------------------------------------


async def metric(client: httpx.AsyncClient, outcome: str) -> float:
    text = (await client.get("/metrics")).text
    found = re.search(rf'botkit_mo_received_total\{{outcome="{outcome}"\}} (\S+)', text)
    return float(found[1]) if found else 0.0


async def test_head_answers_and_stores_nothing(app, client, settings):
    head = await client.head(MO_URL, params=MO)
    assert (head.status_code, head.content) == (200, b"")
    head = await client.head(DLR_URL, params={"id": "9", "status": "sent"})
    assert head.status_code == 200
    assert (await client.head("/callbacks/wrong-token/mo", params=MO)).status_code == 404
    # The same MO by GET afterwards is new: the HEAD stored nothing and queued nothing.
    response = await client.get(MO_URL, params=MO)
    assert response.status_code == 200
    assert len(rows(settings.db, "SELECT * FROM messages WHERE direction = 'mo'")) == 1
    assert await metric(client, "stored") == 1
    assert await metric(client, "duplicate") == 0
    assert rows(settings.db, "SELECT * FROM deliveries") == []
    await eventually(lambda: stored_mo(settings.db)["status"] == "handled")
    assert len(rows(settings.db, "SELECT * FROM messages WHERE direction = 'mt'")) == 1


async def test_head_from_outside_the_allow_list_is_refused_uncounted(settings):
    allowed = dataclasses.replace(settings, callback_allow=("10.1.0.0/16",))
    async with running(create_app(allowed)) as app, client_to(app) as client:
        assert (await client.head(MO_URL, params=MO)).status_code == 403
        assert await metric(client, "forbidden") == 0
        assert (await client.get(MO_URL, params=MO)).status_code == 403
        assert await metric(client, "forbidden") == 1


# -- the dialects, alone ----------------------------------------------------------------


def test_every_byte_decodes_to_something_other_than_the_replacement_character():
    for byte in range(256):
        value = decode_text(bytes([byte]))
        assert value.text != "\ufffd" and len(value.text) == 1
        assert value.cp1252 == (byte >= 0x80)


def test_parse_query_splits_as_starlette_does():
    values = parse_query(b"a=1&a=2&b&c=x+y%2B&d=%E9")
    assert [v.text for v in values["a"]] == ["1", "2"]
    assert (values["b"][0].text, values["c"][0].text) == ("", "x y+")
    assert (values["d"][0].text, values["d"][0].cp1252) == ("é", True)


# Pieces that make names, values and escapes (well formed or not), or any bytes at all.
QUERY_PIECES = [b"a", b"=", b"&", b"+", b"%", b"2B", b"e9", b"%E9", b"\xff", b" "]


@hypothesis.settings(max_examples=500, deadline=None)
@hypothesis.given(st.lists(st.sampled_from(QUERY_PIECES)).map(b"".join) | st.binary())
def test_parse_query_reads_any_bytes_as_urllib_parse_qsl_does(query):
    expected: dict[str, list[tuple[str, bool]]] = {}
    text = query.decode("latin-1")
    for name, value in parse_qsl(text, keep_blank_values=True, encoding="latin-1"):
        key = decode_text(name.encode("latin-1")).text
        expected.setdefault(key, []).append(tuple(decode_text(value.encode("latin-1"))))
    found = {key: [tuple(v) for v in values] for key, values in parse_query(query).items()}
    assert found == expected


def test_decode_base64_refuses_mixed_alphabets_and_impossible_lengths():
    assert decode_base64("-_8") == b"\xfb\xff"
    assert decode_base64("+/8") == b"\xfb\xff"
    assert decode_base64("+_8") is None
    assert decode_base64("QUJDR") is None
    assert decode_base64("") == b""


def test_a_cut_reference_names_no_thread():
    assert echoed_reference("t1.m2", ()) == (1, 2)
    assert echoed_reference("t1.m2", (REFERENCE_TRUNCATED,)) is None
