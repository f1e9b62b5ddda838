"""The simulator's phone page: rendering, escaping, choosing which of our numbers to text,
its JSON endpoints, mounted and standalone."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from botkit.bodies import MAX_BODY
from botkit.callbacks import MAX_CONTENT
from botkit.simulator import Simulator

HANDSET = "+61400000001"
ENCODED = "%2B61400000001"
XSS = "<script>alert(1)</script>"
DEFAULT, SECOND = "4433", "+61400999000"


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    simulator = Simulator(dlr_delay=0, numbers=(DEFAULT, SECOND), masks=("ACME",))
    yield simulator
    await simulator.aclose()


@pytest.fixture
async def http(sim: Simulator) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=sim.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sim.test") as client:
        yield client


async def send_mt(
    http: httpx.AsyncClient, content: str, destination: str = HANDSET, **more: str
) -> int:
    params = {"application": "botkit", "password": "simulator", "version": "2", **more}
    answer = await http.get(
        "/message", params={**params, "content": content, "destination": destination}
    )
    return int(answer.text)


def selected(page: str) -> list[str]:
    """The options of the page's number select, the selected one marked with a *."""
    options = re.findall(r'<option value="([^"]*)"( selected)?>', page)
    return [value + ("*" if chosen else "") for value, chosen in options]


async def test_page_renders_the_conversation_escaped(
    sim: Simulator, http: httpx.AsyncClient
) -> None:
    await send_mt(http, "<b>Welcome</b> & hello")
    await sim.send_mo(HANDSET, XSS)
    page = await http.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert XSS not in page.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert (
        "<b>Welcome</b>" not in page.text and "&lt;b&gt;Welcome&lt;/b&gt; &amp; hello" in page.text
    )
    assert f'value="{HANDSET}"' in page.text


async def test_page_has_no_inline_script_and_a_strict_csp(http: httpx.AsyncClient) -> None:
    page = await http.get("/")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    scripts = re.findall(r"<script[^>]*>", page.text)
    assert scripts and all('src="static/' in tag for tag in scripts)
    assert re.search(r"\son[a-z]+\s*=", page.text) is None  # no onclick= and friends
    assert 'href="static/phone.css"' in page.text  # relative: works under any mount point


async def test_page_for_another_handset_and_a_bad_number(http: httpx.AsyncClient) -> None:
    await send_mt(http, "for two", "+61400000002")
    page = await http.get("/", params={"number": "+61 400 000 002"})
    assert "for two" in page.text and 'value="+61400000002"' in page.text
    bad = await http.get("/", params={"number": "<0400>"})
    assert bad.status_code == 400 and "&lt;0400&gt;" in bad.text and "<0400>" not in bad.text


async def test_conversation_json_shows_latest_status(
    sim: Simulator, http: httpx.AsyncClient
) -> None:
    sim.set_fate(HANDSET, ["submitted", "failed"])
    message_id = await send_mt(http, "hello")
    await sim.drain()
    await sim.send_mo(HANDSET, "hi back")
    body = (await http.get(f"/api/handsets/{ENCODED}")).json()
    assert body["number"] == HANDSET
    mt, mo = body["messages"]
    assert (mt["direction"], mt["id"], mt["text"], mt["status"]) == (
        "mt",
        str(message_id),
        "hello",
        "failed",
    )
    assert (mo["direction"], mo["text"], mo["address"], mo["status"]) == (
        "mo",
        "hi back",
        "4433",
        "not delivered",
    )
    assert body["to"] == DEFAULT


async def test_the_handset_texts_the_number_of_the_latest_mt_unless_it_picks_another(
    sim: Simulator, http: httpx.AsyncClient
) -> None:
    assert selected((await http.get("/")).text) == [f"{DEFAULT}*", SECOND]
    await send_mt(http, "from the second number", source=SECOND)
    assert selected((await http.get("/")).text) == [DEFAULT, f"{SECOND}*"]
    conversation = (await http.get(f"/api/handsets/{ENCODED}")).json()
    assert (conversation["to"], conversation["messages"][0]["address"]) == (SECOND, SECOND)
    await http.post(f"/api/handsets/{ENCODED}/send", json={"text": "back at you"})
    await http.post(f"/api/handsets/{ENCODED}/send", json={"text": "hi", "to": DEFAULT})
    await sim.drain()
    assert [mo.destination for mo in sim.mos] == [SECOND, DEFAULT]


async def test_each_mt_shows_the_number_or_known_mask_it_came_from(
    http: httpx.AsyncClient,
) -> None:
    await send_mt(http, "masked", **{"class": "mt_message", "mask": "ACME"})
    await send_mt(http, "unknown mask", **{"class": "mt_message", "mask": "Nope"})
    await send_mt(http, "sourced", source=SECOND)
    messages = (await http.get(f"/api/handsets/{ENCODED}")).json()["messages"]
    assert [m["address"] for m in messages] == ["ACME", DEFAULT, SECOND]
    page = (await http.get("/")).text
    assert "from ACME" in page and f"from {SECOND}" in page and "Nope" not in page


async def test_an_expired_mt_is_not_on_the_page(sim: Simulator, http: httpx.AsyncClient) -> None:
    await send_mt(http, "too late", expires="2020-01-01T00:00:00Z")
    await send_mt(http, "in time")
    await sim.drain()
    assert sim.sent[0].statuses == ["expired"]
    messages = (await http.get(f"/api/handsets/{ENCODED}")).json()["messages"]
    assert [m["text"] for m in messages] == ["in time"]
    assert "too late" not in (await http.get("/")).text


async def test_conversation_of_a_bad_number_is_400(http: httpx.AsyncClient) -> None:
    assert (await http.get("/api/handsets/0400000000")).status_code == 400


async def test_send_texts_the_app(sim: Simulator, http: httpx.AsyncClient) -> None:
    answer = await http.post(f"/api/handsets/{ENCODED}/send", json={"text": XSS})
    assert answer.status_code == 202
    await sim.drain()
    assert [(mo.id, mo.source, mo.content) for mo in sim.mos] == [
        (int(answer.json()["id"]), HANDSET, XSS)
    ]
    messages = (await http.get(f"/api/handsets/{ENCODED}")).json()["messages"]
    assert [m["text"] for m in messages] == [XSS]


@pytest.mark.parametrize(
    ("path", "kwargs", "status"),
    [
        (f"/api/handsets/{ENCODED}/send", {"json": {"text": ""}}, 400),
        (f"/api/handsets/{ENCODED}/send", {"json": {"text": 5}}, 400),
        (f"/api/handsets/{ENCODED}/send", {"json": ["text"]}, 400),
        (
            f"/api/handsets/{ENCODED}/send",
            {"content": b"{", "headers": {"content-type": "application/json"}},
            400,
        ),
        (f"/api/handsets/{ENCODED}/send", {"data": {"text": "a form"}}, 415),
        (f"/api/handsets/{ENCODED}/send", {"json": {"text": "hi", "to": "5000"}}, 400),
        (f"/api/handsets/{ENCODED}/send", {"json": {"text": "hi", "to": 4433}}, 400),
        ("/api/handsets/0400000000/send", {"json": {"text": "hi"}}, 400),
    ],
)
async def test_send_refuses_bad_requests(
    sim: Simulator, http: httpx.AsyncClient, path: str, kwargs: dict, status: int
) -> None:
    answer = await http.post(path, **kwargs)
    assert answer.status_code == status and "error" in answer.json()
    assert sim.mos == []


async def test_send_refuses_a_body_over_the_limit_without_reading_it_all(
    sim: Simulator, http: httpx.AsyncClient
) -> None:
    """Regression: a 30 MB {"text": ...} was accepted (202), kept, and re-sent on every poll."""
    huge = await http.post(f"/api/handsets/{ENCODED}/send", json={"text": "a" * 30_000_000})
    assert huge.status_code == 413 and "bytes" in huge.json()["error"]
    pulled = 0

    async def chunks() -> AsyncIterator[bytes]:  # no content-length: only the stream tells
        nonlocal pulled
        yield b'{"text": "'
        for _ in range(1000):
            pulled += 1
            yield b"a" * 65536

    streamed = await http.post(
        f"/api/handsets/{ENCODED}/send",
        content=chunks(),
        headers={"content-type": "application/json"},
    )
    assert streamed.status_code == 413 and pulled < 1000
    assert sim.mos == []


async def test_send_takes_text_as_long_as_the_app_does_and_no_longer(
    sim: Simulator, http: httpx.AsyncClient
) -> None:
    """Regression: text of any length was accepted; the app refuses (400) a longer MO."""
    path = f"/api/handsets/{ENCODED}/send"
    longest = "é" * MAX_CONTENT  # 80,000 bytes as UTF-8: over MAX_BODY, still taken
    assert len(longest.encode()) > MAX_BODY
    assert (await http.post(path, json={"text": longest})).status_code == 202
    too_long = await http.post(path, json={"text": "a" * (MAX_CONTENT + 1)})
    assert too_long.status_code == 400 and str(MAX_CONTENT) in too_long.json()["error"]
    assert [len(mo.content) for mo in sim.mos] == [MAX_CONTENT]


async def test_send_refuses_json_nested_too_deep(sim: Simulator, http: httpx.AsyncClient) -> None:
    """Regression: `[` * 100000 raised RecursionError: a 500."""
    headers = {"content-type": "application/json"}
    for body in (b"[" * 60_000, b'{"text": ' + b"[" * 60_000, b"\xff"):
        answer = await http.post(f"/api/handsets/{ENCODED}/send", content=body, headers=headers)
        assert answer.status_code == 400 and "error" in answer.json()
    assert sim.mos == []


@pytest.mark.parametrize("to", ["+61 400 999 000", "61400999000", "0400999000", "0061400999000"])
async def test_send_to_our_number_in_any_spelling_goes_to_it_as_configured(
    sim: Simulator, http: httpx.AsyncClient, to: str
) -> None:
    answer = await http.post(f"/api/handsets/{ENCODED}/send", json={"text": "hi", "to": to})
    assert answer.status_code == 202
    assert [mo.destination for mo in sim.mos] == [SECOND]


async def test_static_files_build_the_dom_safely(http: httpx.AsyncClient) -> None:
    script = await http.get("/static/phone.js")
    style = await http.get("/static/phone.css")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert style.status_code == 200 and style.headers["content-type"].startswith("text/css")
    assert "textContent" in script.text
    assert "innerHTML" not in script.text and "insertAdjacentHTML" not in script.text
    assert '"api/handsets/"' in script.text  # relative, like the page's own links


async def test_mounted_under_a_prefix(sim: Simulator) -> None:
    outer = Starlette(routes=[Mount("/simulator", app=sim.app)])
    transport = httpx.ASGITransport(app=outer)
    async with httpx.AsyncClient(transport=transport, base_url="http://app.test") as http:
        redirect = await http.get("/simulator")
        assert redirect.status_code in (307, 308)
        assert redirect.headers["location"].endswith("/simulator/")
        page = await http.get("/simulator/")
        assert page.status_code == 200
        for link in re.findall(r'(?:src|href)="(static/[^"]+)"', page.text):
            assert (await http.get(f"/simulator/{link}")).status_code == 200
        assert (await http.get(f"/simulator/api/handsets/{ENCODED}")).json()["messages"] == []


async def test_mos_json_lists_every_mo_with_its_callback_answers(
    sim: Simulator, http: httpx.AsyncClient
) -> None:
    mo = await sim.send_mo(HANDSET, "hi")  # no mo_url: never delivered
    assert (await http.get("/api/mos")).json() == {
        "mos": [
            {
                "id": str(mo.id),
                "source": HANDSET,
                "destination": DEFAULT,
                "content": "hi",
                "reply_to": None,
                "answers": [],
                "pending": False,
            }
        ]
    }
