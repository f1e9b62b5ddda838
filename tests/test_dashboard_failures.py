"""Failures in sight on the dashboard: each MO's handling status and error (escaped), the
conversations with a failure (filtered and marked, keyset-paged), a thread's data and
pending timers in the dashboard's time zone, and a person's page of every conversation
of one handset. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import html
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
from conftest import ROOT, eventually

from botkit import Bot, Context
from botkit.db import Database
from botkit.messages import IncomingMO
from botkit.migrations import migrate
from botkit.store import Store
from botkit.store.base import MAX_ATTEMPTS
from botkit.store.conversations import Filters
from botkit.testing import FakeClock, Harness

pytestmark = pytest.mark.backends

BOTS, TEMPLATES = ROOT / "bots", ROOT / "templates"
PHONE, OTHER = "+61400000001", "+61400000002"
HOSTILE = "<script>alert(1)</script>"
SYDNEY = "Australia/Sydney"


def fragile_bot(gate: asyncio.Event | None = None) -> Bot:
    """A bot that keeps data and a timer, and whose conversation fails on any answer
    but `ok` (the error names the text); `wait` holds its handler until `gate` is set."""
    bot = Bot("fragile")

    @bot.keyword("BEGIN")
    async def begin(ctx: Context) -> None:
        ctx.data["note"] = "<b>bold</b> & co"
        ctx.state = "talk"
        ctx.schedule("nudge", hours=4, data={"say": HOSTILE})
        ctx.reply("Go on.")

    @bot.state("talk")
    async def talk(ctx: Context) -> None:
        if ctx.text == "wait" and gate is not None:
            await gate.wait()
        elif ctx.text != "ok":
            raise ValueError(f"cannot take {ctx.text}")
        ctx.reply("Fine.")

    @bot.timer("nudge")
    async def nudge(ctx: Context) -> None:
        ctx.reply("Still there?")

    return bot


def client(harness: Harness) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=harness.app, client=("127.0.0.1", 1234))
    return httpx.AsyncClient(transport=transport, base_url="http://localhost")


def badges(page: str, direction: str = "mo") -> list[str]:
    """The status badges of the page's messages of one direction, in order."""
    items = re.findall(rf'<li class="msg {direction}".*?</li>', page, re.S)
    return [re.search(r'class="badge [^"]*">([^<]*)<', item)[1] for item in items]


async def page_once(c: httpx.AsyncClient, url: str, ready: Callable[[str], bool]) -> str:
    """The page at `url` once `ready` holds for it (polled)."""

    async def look() -> str | None:
        page = (await c.get(url)).text
        return page if ready(page) else None

    return await eventually(look)


async def test_each_mo_shows_how_its_handling_went_and_its_error_escaped(database):
    gate = asyncio.Event()
    async with Harness([fragile_bot(gate)], TEMPLATES, db=database, raise_errors=False) as h:
        phone = h.phone(PHONE)
        await phone.send("BEGIN")
        await phone.send(HOSTILE)
        await h.simulator.send_mo(PHONE, "wait")  # stored: its handler waits for the gate
        thread = f"/dashboard/threads/{(await phone.thread()).id}"
        person = f"/dashboard/people/{PHONE}"
        async with client(h) as c:
            # Newest first on the person's page: an MO joins its thread once handled.
            page = await page_once(c, person, lambda p: len(badges(p)) == 3)
            assert badges(page) == ["waiting", "failed", "handled"]
            gate.set()
            page = await page_once(c, thread, lambda p: len(badges(p)) == 3)
            assert badges(page) == ["handled", "failed", "handled"]
            assert f"ValueError: cannot take {html.escape(HOSTILE)}" in page
            assert HOSTILE not in page
            api = (await c.get(thread.replace("/dashboard/", "/api/"))).json()
    mos = [(m["status"], m["error"]) for m in api["messages"] if m["direction"] == "mo"]
    assert mos == [
        ("handled", None),
        ("failed", f"ValueError: cannot take {HOSTILE}"),
        ("handled", None),
    ]


async def given_up(database: str, handset: str, text: str) -> None:
    """An MO no attempt could commit, given up by the store as a dispatcher's claim
    would (its attempts used up): it belongs to no conversation."""
    db = await Database.open(database)
    try:
        await migrate(db)
        store = Store(db)
        await store.inbox.add(
            IncomingMO(gateway_id=7, source=handset, destination="4433", content=text)
        )
        await db.write(lambda tx: tx.execute("UPDATE inbox SET attempts = ?", (MAX_ATTEMPTS,)))
        assert await store.inbox.claim(10, lease=60) == []
    finally:
        await db.close()


async def test_a_person_page_shows_every_conversation_and_a_given_up_mo(database):
    await given_up(database, PHONE, HOSTILE)
    async with Harness(BOTS, TEMPLATES, db=database, raise_errors=False) as h:
        phone = h.phone(PHONE)
        await phone.send("HELLO")
        await phone.send("Ada")
        await phone.send("JOIN")
        await h.phone(OTHER).send("HELLO")
        threads = await h.runtime.store.db.fetchall("SELECT id, bot, handset FROM threads")
        async with client(h) as c:
            page = (await c.get("/dashboard/people/%2B61400000001")).text
            plain = await c.get(f"/dashboard/people/{PHONE}")
            missing = await c.get("/dashboard/people/%2B61400000099")
            malformed = await c.get("/dashboard/people/0400%3Cb%3E")
            huge = await c.get(f"/dashboard/people/+61{'4' * 60_000}")
            listing = (await c.get("/dashboard/")).text
    assert plain.status_code == 200 and plain.text == page
    assert [(bot, handset) for _, bot, handset in threads] == [
        ("hello", PHONE),
        ("optin", PHONE),
        ("hello", OTHER),
    ]
    assert f"/dashboard/threads/{threads[2][0]}" not in page
    for thread_id, bot, _ in threads[:2]:
        assert f'/dashboard/threads/{thread_id}">conversation {thread_id}</a>' in page
        assert f"/dashboard/threads/{thread_id}#m" in page  # each message's label
        assert f"{bot}, conversation {thread_id}" in page
    timeline = page.split('id="timeline"')[1]
    texts = re.findall(r'<p class="text">([^<]*)</p>', timeline)
    assert texts[-1] == html.escape(HOSTILE) and HOSTILE not in page  # the oldest, last
    assert texts.index("JOIN") < texts.index("Ada") < texts.index("HELLO")  # newest first
    assert "given up" in badges(timeline)
    assert "gave up after 5 attempts to handle it" in timeline
    assert "no conversation" in timeline
    assert missing.status_code == 404
    assert "+61400000099 has no conversations" in missing.text
    assert malformed.status_code == 400
    assert "number: &#39;0400&lt;b&gt;&#39; is not in international format" in malformed.text
    assert huge.status_code == 400 and len(huge.text) < 20_000  # not echoed whole
    assert "(60003 characters) is not a phone number" in huge.text
    assert '/dashboard/people/+61400000001"' in listing


async def test_conversations_with_a_failure_are_marked_filtered_and_paged(database):
    async with Harness([fragile_bot()], TEMPLATES, db=database, raise_errors=False) as h:
        handsets = [f"+6140000010{n}" for n in range(5)]
        for n, number in enumerate(handsets):
            phone = h.phone(number)
            await phone.send("BEGIN")
            await phone.send("ok" if n % 2 else f"broken {n}")
        await h.phone(handsets[0]).send("broken again")
        async with client(h) as c:
            everything = (await c.get("/dashboard/")).text
            failed = (await c.get("/dashboard/", params={"failed": "1"})).text
            api = (await c.get("/api/conversations", params={"failed": "1"})).json()
            bad = await c.get("/dashboard/", params={"failed": "yes"})
        store = h.runtime.store.conversations
        first, cursor = await store.page(filters=Filters(failed=True), limit=2)
        second, end = await store.page(cursor, Filters(failed=True), limit=2)
    assert everything.count("<tr>") == 1 + 5
    assert failed.count("<tr>") == 1 + 3
    assert "2 failed" in failed and "1 failed" in failed
    assert 'name="failed" value="1" checked' in failed
    failing = [handsets[4], handsets[2], handsets[0]]  # the latest activity first
    assert [row["handset"] for row in api["conversations"]] == failing
    assert [row["failures"] for row in api["conversations"]] == [1, 1, 2]
    assert [row["handset"] for row in [*first, *second]] == failing and end is None
    assert bad.status_code == 400 and "failed: &#39;yes&#39; is not 1 or 0" in bad.text


async def test_a_thread_shows_its_data_and_timers_in_the_dashboards_zone(database):
    clock = FakeClock(datetime(2026, 1, 5, 20, 0, tzinfo=UTC))  # the 6th, 07:00 in Sydney
    async with Harness([fragile_bot()], TEMPLATES, db=database, clock=clock, timezone=SYDNEY) as h:
        phone = h.phone(PHONE)
        await phone.send("BEGIN")
        thread_id = (await phone.thread()).id
        async with client(h) as c:
            page = (await c.get(f"/dashboard/threads/{thread_id}")).text
            since = (await c.get("/dashboard/", params={"since": "2026-01-06"})).text
            until = (await c.get("/dashboard/", params={"until": "2026-01-05"})).text
            deliveries = (await c.get("/dashboard/deliveries", params={"days": "1"})).text
        due = (clock() + timedelta(hours=4)).astimezone(ZoneInfo(SYDNEY))
    assert "Times are in Australia/Sydney." in page
    assert "2026-01-06 07:00:00 AEDT" in page  # the MO, at 20:00 UTC
    data = page.split('<pre class="data">')[1].split("</pre>")[0]
    assert data == "{\n  &#34;note&#34;: &#34;&lt;b&gt;bold&lt;/b&gt; &amp; co&#34;\n}"
    timers = page.split('<table class="timers">')[1].split("</table>")[0]
    assert "<td>nudge</td>" in timers
    assert f"{due:%Y-%m-%d %H:%M:%S}" == "2026-01-06 11:00:00"
    assert f"<td>{due:%Y-%m-%d %H:%M:%S} AEDT</td>" in timers
    assert html.escape(HOSTILE) in timers and HOSTILE not in page
    # Days of activity are Sydney's: the 6th there, the 5th in UTC.
    assert PHONE in since and PHONE not in until
    assert "Messages per day (Australia/Sydney)" in deliveries
    assert 'aria-label="Messages per day: 2026-01-06: MO 1 · MT 1"' in deliveries


def test_a_time_past_year_9999_in_the_zone_is_shown_as_stored():
    from zoneinfo import ZoneInfo

    from botkit.dashboard.pages import when_in

    sydney = ZoneInfo("Australia/Sydney")
    assert when_in("9999-12-31T20:00:00.000000Z", sydney) == "9999-12-31 20:00:00 UTC"
    assert when_in("2026-01-05T09:00:00.000000Z", sydney) == "2026-01-05 20:00:00 AEDT"
