"""The MO and DLR callbacks: validation, token, allow-list, deduplication, durability."""

from __future__ import annotations

import asyncio
import base64
import shutil
from urllib.parse import urlencode

import pytest
from conftest import eventually, rows, running
from servers import free_port, served

from botkit import create_app
from botkit.callbacks import MAX_CONTENT
from botkit.serving import MAX_URL, UVICORN_OPTIONS

pytestmark = pytest.mark.backends

MO = {
    "id": "5000000001",
    "source": "+61400000001",
    "destination": "4433",
    "content": "hello",
    "operator": "Telstra",
}


def without(name: str) -> dict[str, str]:
    return {k: v for k, v in MO.items() if k != name}


async def test_mo_is_stored_and_answered_ok(client, settings):
    response = await client.get("/callbacks/test-token/mo", params=MO)
    assert response.status_code == 200
    assert response.text == "OK"
    (stored,) = rows(settings.db, "SELECT * FROM messages WHERE direction = 'mo'")
    assert stored["gateway_id"] == 5000000001
    assert stored["handset"] == "+61400000001"
    assert stored["address"] == "4433"
    assert stored["operator"] == "Telstra"
    assert stored["encoding"] == "GSM-7"


async def test_the_longest_mo_comes_through_botkit_runs_own_server(settings):
    """`botkit run`'s uvicorn takes a callback of the longest content, written the
    longest way: 40,000 emoji are 480 KB of percent-encoded request line (httptools'
    own parser takes URLs of up to 64 KiB: the MO would be refused, perhaps lost). A
    request line over 1 MiB is no callback of ours: refused."""
    content = "\N{GRINNING FACE}" * MAX_CONTENT
    port = free_port()
    async with served(create_app(settings), port, **UVICORN_OPTIONS):
        longest = await get(
            port, "/callbacks/test-token/mo?" + urlencode({**MO, "content": content})
        )
        over = await get(
            port, "/callbacks/test-token/mo?" + urlencode({**MO, "content": "x" * MAX_URL})
        )
    assert longest.startswith(b"HTTP/1.1 200 ") and longest.endswith(b"\r\n\r\nOK")
    assert over.startswith(b"HTTP/1.1 400 ")
    (stored,) = rows(settings.db, "SELECT content FROM messages WHERE direction = 'mo'")
    assert stored["content"] == content


async def get(port: int, target: str) -> bytes:
    """A GET of `target` by hand (httpx refuses a URL over 64 KiB); the whole answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {target} HTTP/1.1\r\nHost: botkit\r\nConnection: close\r\n\r\n".encode())
    try:
        return await reader.read()
    finally:
        writer.close()


@pytest.mark.parametrize("name", ["id", "source", "destination", "content"])
async def test_missing_parameter_is_named(client, name):
    response = await client.get("/callbacks/test-token/mo", params=without(name))
    assert response.status_code == 400
    assert response.text == f"ERROR Missing {name} parameter"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("id", "abc"),
        ("id", "12.5"),
        ("id", str(2**63)),
        ("id", ""),
        ("source", "0400000000"),
        ("source", "+61"),
        ("source", ""),
        ("destination", "four"),
        ("content", "x" * 40_001),
    ],
)
async def test_invalid_parameter_is_named(client, settings, name, value):
    response = await client.get("/callbacks/test-token/mo", params={**MO, name: value})
    assert response.status_code == 400
    assert response.text == f"ERROR Invalid {name} parameter"
    assert rows(settings.db, "SELECT * FROM messages") == []


async def test_repeated_parameter_is_refused(client):
    query = "id=1&id=2&source=%2B61400000001&destination=4433&content=hi"
    response = await client.get(f"/callbacks/test-token/mo?{query}")
    assert response.status_code == 400
    assert response.text == "ERROR Invalid id parameter"


async def test_negative_and_large_ids_are_accepted(client, settings):
    for gateway_id in (str(-(2**63)), str(2**63 - 1)):
        response = await client.get("/callbacks/test-token/mo", params={**MO, "id": gateway_id})
        assert response.status_code == 200
    # The MOs only: the hello bot may have queued its replies (no gateway id yet) by now.
    stored = rows(settings.db, "SELECT gateway_id FROM messages WHERE direction = 'mo' ORDER BY id")
    assert [r[0] for r in stored] == [-(2**63), 2**63 - 1]


async def test_binary_mo_is_kept_as_base64_and_decoded_for_handlers(client, settings):
    payload = bytes(range(0, 256, 7))
    params = {**MO, "encoding": "base64", "content": base64.b64encode(payload).decode()}
    response = await client.get("/callbacks/test-token/mo", params=params)
    assert response.status_code == 200
    (stored,) = rows(settings.db, "SELECT content, encoding FROM messages")
    assert stored["encoding"] == "base64"
    assert base64.b64decode(stored["content"]) == payload


async def test_wrong_token_is_404_and_stores_nothing(client, settings):
    response = await client.get("/callbacks/wrong-token/mo", params=MO)
    assert response.status_code == 404
    response = await client.get("/callbacks/wrong-token/dlr", params={"id": "1", "status": "sent"})
    assert response.status_code == 404
    assert rows(settings.db, "SELECT * FROM messages") == []


async def test_duplicate_mo_is_stored_once_and_handled_once(app, client, settings):
    for _ in range(3):
        response = await client.get("/callbacks/test-token/mo", params=MO)
        assert response.status_code == 200
    await eventually(
        lambda: (
            rows(settings.db, "SELECT status FROM messages WHERE direction='mo'")[0][0] == "handled"
        )
    )
    await eventually(lambda: app.state.simulator.inbox("+61400000001"))
    assert len(rows(settings.db, "SELECT * FROM messages WHERE direction = 'mo'")) == 1
    assert len(rows(settings.db, "SELECT * FROM messages WHERE direction = 'mt'")) == 1


async def test_allow_list_refuses_other_addresses(settings):
    import dataclasses

    import httpx

    allowed = dataclasses.replace(settings, callback_allow=("10.1.0.0/16",))
    async with running(create_app(allowed)) as app:
        for client_ip, expected in (("127.0.0.1", 403), ("10.1.2.3", 200)):
            transport = httpx.ASGITransport(app=app, client=(client_ip, 5000))
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                response = await client.get("/callbacks/test-token/mo", params=MO)
                assert response.status_code == expected
    assert len(rows(settings.db, "SELECT * FROM messages WHERE direction = 'mo'")) == 1


async def test_mo_not_committed_is_spooled_then_answered_ok(app, client, settings):
    await app.state.runtime.db.close()
    response = await client.get("/callbacks/test-token/mo", params=MO)
    assert (response.status_code, response.text) == (200, "OK")
    assert rows(settings.db, "SELECT * FROM messages") == []
    assert app.state.runtime.spool.waiting == 1


async def test_mo_neither_committed_nor_spooled_is_not_answered_ok(app, client, settings):
    await app.state.runtime.db.close()
    shutil.rmtree(settings.spool_folder)
    settings.spool_folder.write_text("")  # no folder to write the spool in
    response = await client.get("/callbacks/test-token/mo", params=MO)
    assert (response.status_code, response.text) == (503, "ERROR Temporarily unavailable")
    assert rows(settings.db, "SELECT * FROM messages") == []
    assert app.state.runtime.spool.waiting == 0


# -- DLR ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "body"),
    [
        ({"status": "sent"}, "ERROR Missing id parameter"),
        ({"id": "7"}, "ERROR Missing status parameter"),
        ({"id": "x", "status": "sent"}, "ERROR Invalid id parameter"),
        ({"id": "7", "status": ""}, "ERROR Invalid status parameter"),
        ({"id": "7", "status": "sent\x07"}, "ERROR Invalid status parameter"),
        ({"id": "7", "status": "s" * 65}, "ERROR Invalid status parameter"),
    ],
)
async def test_bad_dlr_is_refused(client, settings, params, body):
    response = await client.get("/callbacks/test-token/dlr", params=params)
    assert response.status_code == 400
    assert response.text == body
    assert rows(settings.db, "SELECT * FROM deliveries") == []


# Line ends and controls beyond C0, which would let a status forge a line of a text log.
LOG_FORGERS = ["\x80", "\x85", "\x9f", "\u2028", "\u2029"]


@pytest.mark.parametrize(
    "control", LOG_FORGERS, ids=["U+0080", "U+0085", "U+009F", "U+2028", "U+2029"]
)
async def test_a_status_with_a_c1_control_or_unicode_line_end_is_refused(client, settings, control):
    """Regression (attack review): STATUS let C1 controls, NEL and U+2028/U+2029
    through, and a receipt's status could write a forged line into a text log."""
    status = f"sent{control}2024-01-01 00:00:00 INFO botkit.callbacks forged"
    response = await client.get("/callbacks/test-token/dlr", params={"id": "7", "status": status})
    assert (response.status_code, response.text) == (400, "ERROR Invalid status parameter")
    assert rows(settings.db, "SELECT * FROM deliveries") == []


async def test_a_status_whose_undefined_windows_1252_byte_reads_as_a_c1_control_is_refused(
    client, settings
):
    response = await client.get("/callbacks/test-token/dlr?id=7&status=sent%81")
    assert (response.status_code, response.text) == (400, "ERROR Invalid status parameter")
    assert rows(settings.db, "SELECT * FROM deliveries") == []


async def test_dlr_for_an_unknown_id_is_kept(client, settings):
    response = await client.get("/callbacks/test-token/dlr", params={"id": "99", "status": "sent"})
    assert response.status_code == 200
    (kept,) = rows(settings.db, "SELECT * FROM deliveries")
    assert (kept["gateway_id"], kept["status"], kept["message_id"]) == (99, "sent", None)


@pytest.mark.parametrize(
    "status", ["delivered_to_smsc", "DELIVRD", "delivered.", "<b>ok</b>", "livré ✓", "SENT"]
)
async def test_unknown_carrier_status_is_kept_verbatim(client, settings, status):
    response = await client.get("/callbacks/test-token/dlr", params={"id": "99", "status": status})
    assert response.status_code == 200
    assert rows(settings.db, "SELECT status FROM deliveries")[0][0] == status


async def test_repeated_dlr_is_kept_once(client, settings):
    for _ in range(2):
        response = await client.get(
            "/callbacks/test-token/dlr", params={"id": "5", "status": "sent"}
        )
        assert response.status_code == 200
    assert len(rows(settings.db, "SELECT * FROM deliveries")) == 1


async def test_out_of_order_dlrs_never_move_status_back(app, client, settings):
    sim = app.state.simulator
    sim.set_fate("+61400000009", [])  # no DLRs from the simulator: we send them by hand
    await sim.send_mo("+61400000009", "hello")
    (mt,) = await eventually(
        lambda: rows(
            settings.db, "SELECT * FROM messages WHERE direction='mt' AND status='accepted'"
        )
    )
    for status in ("received", "sent", "submitted"):
        response = await client.get(
            "/callbacks/test-token/dlr",
            params={"id": str(mt["gateway_id"]), "status": status, "reference": mt["reference"]},
        )
        assert response.status_code == 200
    (after,) = rows(settings.db, "SELECT delivery FROM messages WHERE id = ?", (mt["id"],))
    assert after["delivery"] == "received"
    history = rows(
        settings.db, "SELECT status FROM deliveries WHERE message_id = ? ORDER BY id", (mt["id"],)
    )
    assert [h[0] for h in history] == ["received", "sent", "submitted"]


async def test_a_nul_in_an_mo_is_kept_as_the_replacement_character(client, settings):
    params = {**MO, "content": "hi\x00there", "reference": "r\x00"}
    response = await client.get("/callbacks/test-token/mo", params=params)
    assert (response.status_code, response.text) == (200, "OK")
    (stored,) = rows(
        settings.db, "SELECT content, reference, flags FROM messages WHERE direction = 'mo'"
    )
    assert (stored["content"], stored["reference"]) == ("hi\ufffdthere", "r\ufffd")
    assert stored["flags"] == "content-nul-replaced,reference-nul-replaced"


async def test_only_get_and_head_are_answered(client, settings):
    response = await client.post("/callbacks/test-token/mo", params=MO)
    assert (response.status_code, response.headers["allow"]) == (405, "GET, HEAD")
    assert rows(settings.db, "SELECT * FROM messages") == []


async def test_a_trailing_slash_is_served_as_without(client, settings):
    response = await client.get("/callbacks/test-token/mo/", params=MO)
    assert (response.status_code, response.text) == (200, "OK")
    assert len(rows(settings.db, "SELECT * FROM messages WHERE direction = 'mo'")) == 1


@pytest.mark.parametrize("path", ["/callbacks/test-token/mo/x", "/callbacks//mo"])
async def test_other_paths_under_callbacks_are_not_found(client, settings, path):
    response = await client.get(path, params=MO)
    assert response.status_code == 404
    assert rows(settings.db, "SELECT * FROM messages") == []
