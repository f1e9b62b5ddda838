"""Finding conversations: by number in any common format, by text, bot, status, state
and days of last activity; on the dashboard and in /api, with clear errors."""

from __future__ import annotations

import re

import httpx
import pytest
from conftest import ROOT

from botkit.testing import FakeClock, Harness

pytestmark = pytest.mark.backends

BOTS, TEMPLATES = ROOT / "bots", ROOT / "templates"


def client(harness: Harness) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=harness.app, client=("127.0.0.1", 1234))
    return httpx.AsyncClient(transport=transport, base_url="http://localhost")


def numbers(page: httpx.Response) -> list[str]:
    return re.findall(r'/dashboard/threads/\d+">(\+\d+)</a>', page.text)


@pytest.fixture
async def harness():
    """Three conversations over three days: hello, opt-in and a survey."""
    from datetime import UTC, datetime

    clock = FakeClock(datetime(2026, 3, 1, 9, tzinfo=UTC))
    async with Harness(BOTS, TEMPLATES, clock=clock) as harness:
        await harness.phone("+61412345678").send("hello")
        await harness.phone("+61412345678").send("Ada 100% _sure_")
        await harness.advance(days=1)
        await harness.phone("+61498765432").send("JOIN")
        await harness.advance(days=1)
        await harness.phone("+6421555123").send("SURVEY")
        yield harness


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"q": "+61 412 345 678"}, ["+61412345678"]),
        ({"q": "0412 345 678"}, ["+61412345678"]),
        ({"q": "61412345678"}, ["+61412345678"]),
        ({"q": "(04) 9876-5432"}, ["+61498765432"]),
        ({"q": "5432"}, ["+61498765432"]),
        ({"q": "ada"}, ["+61412345678"]),  # text, any case
        ({"q": "100%"}, ["+61412345678"]),  # % is no wildcard
        ({"q": "0%"}, []),  # a word's start, not its middle (test_text_search.py)
        ({"q": "%"}, []),  # no word
        ({"q": "1_0"}, []),
        ({"q": "_sure_"}, ["+61412345678"]),
        ({"q": "SURE ada"}, ["+61412345678"]),
        ({"q": "nobody said this"}, []),
        ({"bot": "optin"}, ["+61498765432"]),
        ({"bot": "survey", "q": "SURVEY"}, ["+6421555123"]),
        ({"since": "2026-03-02"}, ["+6421555123", "+61498765432"]),
        ({"until": "2026-03-01"}, ["+61412345678"]),
        ({"since": "2026-03-01", "until": "2026-03-01"}, ["+61412345678"]),
        ({"since": "2026-03-04"}, []),
        ({"status": "closed"}, []),
        ({"status": "open"}, ["+6421555123", "+61498765432", "+61412345678"]),
    ],
)
async def test_filters(harness, query, expected):
    async with client(harness) as c:
        page = await c.get("/dashboard/", params=query)
        assert page.status_code == 200
        assert numbers(page) == expected
        api = await c.get("/api/conversations", params=query)
        assert [row["handset"] for row in api.json()["conversations"]] == expected
        if not expected:
            assert "No conversations match." in page.text


async def test_state_and_paused(harness):
    async with client(harness) as c:
        thread = await harness.phone("+6421555123").thread()
        assert thread.state  # the survey's question
        page = await c.get("/dashboard/", params={"state": thread.state})
        assert numbers(page) == ["+6421555123"]
        assert f'<option value="{thread.state}">' in page.text  # offered in the datalist
        await harness.runtime.store.takeover.pause(thread.id, "sam")
        paused = await c.get("/dashboard/", params={"status": "paused"})
        assert numbers(paused) == ["+6421555123"] and "with sam" in paused.text


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ({"since": "yesterday"}, "since: 'yesterday' is not a day (YYYY-MM-DD)"),
        ({"until": "2026-13-01"}, "until: '2026-13-01' is not a day (YYYY-MM-DD)"),
        ({"since": "2026-03-02", "until": "2026-03-01"}, "until: is before since"),
        ({"status": "asleep"}, "status: must be one of open, paused, closed"),
        ({"q": "x" * 201}, "q: is longer than 200 characters"),
    ],
)
async def test_bad_filters_get_a_clear_error(harness, query, error):
    async with client(harness) as c:
        page = await c.get("/dashboard/", params=query)
        assert page.status_code == 400
        assert error.replace("'", "&#39;") in page.text
        api = await c.get("/api/conversations", params=query)
        assert api.status_code == 400 and api.json() == {"error": error}


async def test_pages_keep_their_filters(database):
    async with Harness(BOTS, TEMPLATES, db=database) as harness, client(harness) as c:
        for n in range(55):
            await harness.phone(f"+614000002{n:02d}").send("hello")
        await harness.phone("+61400000399").send("JOIN")
        first = await c.get("/dashboard/", params={"bot": "hello", "q": "+614000002"})
        assert len(numbers(first)) == 50
        link = re.search(r'rel="next" href="([^"]+)"', first.text).group(1).replace("&amp;", "&")
        second = await c.get(f"/dashboard/{link}")
        assert len(numbers(second)) == 5
        assert set(numbers(first)).isdisjoint(numbers(second))
        api = (await c.get("/api/conversations", params={"bot": "hello"})).json()
        rest = await c.get("/api/conversations", params={"bot": "hello", "after": api["next"]})
        assert len(api["conversations"]) + len(rest.json()["conversations"]) == 55
        assert rest.json()["next"] is None


async def test_a_thread_as_json(harness):
    async with client(harness) as c:
        phone = harness.phone("+61412345678")
        replies = await harness.replies_to(phone.number)
        await phone.deliver(replies[0], "received")
        thread = await phone.thread()
        found = (await c.get(f"/api/threads/{thread.id}")).json()
        assert found["thread"]["handset"] == "+61412345678"
        assert isinstance(found["thread"]["data"], dict)
        first_mo, first_mt = found["messages"][:2]
        assert (first_mo["direction"], first_mo["content"]) == ("mo", "hello")
        assert isinstance(first_mo["gateway_id"], str) and "deliveries" not in first_mo
        assert first_mt["status"] == "accepted" and first_mt["delivery"] == "received"
        assert [d["status"] for d in first_mt["deliveries"]] == ["received"]
        assert first_mt["gateway_id"] == str(replies[0].id)
        missing = await c.get("/api/threads/999999")
        assert missing.status_code == 404 and missing.json() == {"error": "no thread 999999"}


@pytest.mark.parametrize(
    ("path", "query", "error"),
    [
        ("/dashboard/", {"after": "x~²"}, "after: must be a whole number"),
        ("/dashboard/", {"after": "~"}, "after: is not the cursor of a page"),
        ("/dashboard/", {"after": "nonsense"}, "after: is not the cursor of a page"),
        ("/dashboard/", {"after": "x~99999999999999999999999"}, "after: must be a whole"),
        ("/dashboard/", {"until": "9999-12-31"}, "until: is past the last day there is"),
        ("/api/conversations", {"after": "2026~-1"}, "after: must be a whole number"),
        ("/api/conversations", {"since": "0001-01-01", "until": "9999-12-31"}, "until:"),
    ],
)
async def test_junk_parameters_get_a_clear_error_not_the_first_page(harness, path, query, error):
    async with client(harness) as c:
        page = await c.get(path, params=query)
        assert page.status_code == 400
        assert error in page.text


@pytest.mark.parametrize(
    "path",
    [
        "/dashboard/threads/99999999999999999999",
        "/dashboard/threads/99999999999999999999/events",
        "/api/threads/99999999999999999999",
        "/api/threads/-1",
    ],
)
async def test_ids_beyond_the_database_are_not_found(harness, path):
    async with client(harness) as c:
        assert (await c.get(path)).status_code == 404


async def test_a_transcript_page_that_is_not_a_message_id_is_refused(harness):
    thread = await harness.phone("+61412345678").thread()
    async with client(harness) as c:
        for before in ("x", "²", "9" * 5000):
            page = await c.get(f"/dashboard/threads/{thread.id}", params={"before": before})
            assert page.status_code == 400 and "before: must be a whole number" in page.text
            api = await c.get(f"/api/threads/{thread.id}", params={"before": before})
            assert api.status_code == 400 and api.json()["error"].startswith("before: ")
