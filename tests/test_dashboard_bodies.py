"""The dashboard's forms are small URL-encoded bodies: anything bigger, or of another
kind, is refused before it is read (or as soon as it streams past the limit); one whose
client leaves half way is let go quietly."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import httpx
from conftest import eventually
from servers import free_port, served
from signin import log_in, token, with_login

from botkit import create_app
from botkit.bodies import MAX_BODY, MAX_FIELDS
from botkit.serving import UVICORN_OPTIONS


class Body:
    """A request body streamed in 64 KiB chunks, counting those the server pulled."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.pulled = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for _ in range(0, self.size, 65536):
            self.pulled += 1
            yield b"a" * 65536


FORM = {"content-type": "application/x-www-form-urlencoded"}


async def test_a_body_too_long_by_its_content_length_is_refused_unread(locked):
    form = await locked.get("/dashboard/login")
    body = Body(200 * 1024 * 1024)
    headers = {**FORM, "content-length": str(body.size)}
    refused = await locked.post("/dashboard/login", content=body, headers=headers)
    assert refused.status_code == 413 and f"over {MAX_BODY} bytes" in refused.text
    assert body.pulled == 0
    assert (await locked.post("/dashboard/login", data={"csrf": token(form)})).status_code == 401


async def test_a_chunked_body_is_cut_off_at_the_limit(locked):
    await locked.get("/dashboard/login")
    body = Body(200 * 1024 * 1024)  # no content-length: only the stream tells
    refused = await locked.post("/dashboard/login", content=body, headers=FORM)
    assert refused.status_code == 413
    assert body.pulled <= MAX_BODY // 65536 + 1


async def test_a_post_without_a_session_is_refused_unread(locked):
    body = Body(1024 * 1024)
    refused = await locked.post("/dashboard/login", content=body, headers=FORM)
    assert refused.status_code == 403 and body.pulled == 0


async def test_a_multipart_login_is_refused(locked):
    form = await locked.get("/dashboard/login")
    data = {"csrf": token(form), "user": "ops", "password": "s3cret!"}
    upload = {"file": ("big.bin", b"a" * 1024, "application/octet-stream")}
    refused = await locked.post("/dashboard/login", data=data, files=upload)
    assert refused.status_code == 415 and "x-www-form-urlencoded" in refused.text
    json = await locked.post("/dashboard/login", json=data)
    assert json.status_code == 415
    assert (await locked.get("/dashboard/")).status_code == 303  # not signed in


async def test_a_form_of_too_many_fields_is_refused(locked):
    form = await locked.get("/dashboard/login")
    data = {"csrf": token(form), **{f"f{n}": "x" for n in range(MAX_FIELDS)}}
    refused = await locked.post("/dashboard/login", data=data)
    assert refused.status_code == 413 and f"more than {MAX_FIELDS} fields" in refused.text


async def test_a_form_that_is_not_utf8_is_refused(locked):
    form = await locked.get("/dashboard/login")
    body = f"csrf={token(form)}&user=%FF&password=x".encode()
    refused = await locked.post("/dashboard/login", content=body, headers=FORM)
    assert refused.status_code == 400 and "not UTF-8" in refused.text


async def test_a_form_within_the_limits_signs_in(locked):
    signed_in = await log_in(locked, next="/dashboard/?" + "q=x&" * 1000)
    assert signed_in.status_code == 303
    assert (await locked.get("/dashboard/")).status_code == 200


async def test_a_client_that_leaves_half_way_through_a_form_logs_no_error(settings, caplog):
    caplog.set_level(logging.DEBUG)
    port = free_port()
    async with served(create_app(with_login(settings)), port, **UVICORN_OPTIONS):
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            form = await client.get("/dashboard/login")
        cookie = "; ".join(f"{name}={value}" for name, value in client.cookies.items())
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"POST /dashboard/login HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n"
            + f"Cookie: {cookie}\r\n\r\ncsrf={token(form)}&user=o".encode()
        )
        await writer.drain()
        writer.close()
        await eventually(lambda: "before its body was whole" in caplog.text)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
