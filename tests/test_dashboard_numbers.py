"""Our numbers on the dashboard: every MT shows the number it went from (and its mask),
conversations filter by the number they are on (composing with search and paging, on
the page and in /api), and a bad number gets a clear 400."""

from __future__ import annotations

import re

import httpx
import pytest
from conftest import ROOT

from botkit import Bot, Context
from botkit.addresses import OurNumbers
from botkit.loader import load_bots
from botkit.search import Numbers
from botkit.testing import Harness

pytestmark = pytest.mark.backends

DEFAULT, OTHER = "4433", "+61400999000"
SHOP, CLINIC = "+61400000001", "+61400000002"


def surgery() -> Bot:
    bot = Bot("surgery")

    @bot.keyword("PROMO")
    async def promo(ctx: Context) -> None:
        ctx.reply("20% off this week.", mask="Clinic<Co>")

    return bot


class harness(Harness):
    """The example bots and a surgery on our two numbers (or the numbers given)."""

    def __init__(self, database: str, numbers: str = f"{DEFAULT},{OTHER}") -> None:
        bots = (surgery(), *load_bots(ROOT / "bots"))
        super().__init__(bots, ROOT / "templates", db=database, numbers=numbers)


def client(h: Harness) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=h.app, client=("127.0.0.1", 1234))
    return httpx.AsyncClient(transport=transport, base_url="http://localhost")


def handsets(page: httpx.Response) -> list[str]:
    return re.findall(r'/dashboard/threads/\d+">(\+\d+)</a>', page.text)


def next_link(page: httpx.Response) -> str:
    return re.search(r'rel="next" href="([^"]+)"', page.text).group(1).replace("&amp;", "&")


async def test_every_mt_shows_the_number_it_went_from_and_its_mask(database):
    async with harness(database) as h, client(h) as c:
        await h.phone(CLINIC).send("PROMO", to=DEFAULT)
        await h.phone(SHOP).send("HELLO", to=OTHER)
        masked = await h.phone(CLINIC).thread()
        plain = await h.phone(SHOP).thread()

        page = (await c.get(f"/dashboard/threads/{masked.id}")).text
        assert '<span class="number">on 4433</span>' in page
        assert '<span class="number">from 4433 as Clinic&lt;Co&gt;</span>' in page
        assert "to 4433" not in page  # the MO went to the thread's number: said once
        page = (await c.get(f"/dashboard/threads/{plain.id}")).text
        assert f'<span class="number">from {OTHER}</span>' in page

        found = (await c.get(f"/api/threads/{masked.id}")).json()
        assert found["thread"]["address"] == DEFAULT
        mo, mt = found["messages"]
        assert (mo["direction"], mo["address"]) == ("mo", DEFAULT)
        assert (mt["address"], mt["mask"], mt["message_class"], mt["source"]) == (
            DEFAULT,
            "Clinic<Co>",
            "mt_message",
            None,
        )
        found = (await c.get(f"/api/threads/{plain.id}")).json()
        assert found["thread"]["address"] == OTHER
        assert [(m["address"], m["mask"]) for m in found["messages"]] == [(OTHER, None)] * 2


async def test_an_mo_to_another_number_than_its_threads_says_so(database):
    async with harness(database) as h, client(h) as c:
        h.simulator.number_sequence = True  # so that an MO can name the MT it answers
        (reply,) = await h.phone(SHOP).send("HELLO", to=DEFAULT)
        await h.phone(SHOP).send("Ada", to=OTHER, reply_to=reply)  # joins the thread on 4433
        thread = await h.phone(SHOP).thread()
        page = (await c.get(f"/dashboard/threads/{thread.id}")).text
        assert f'<span class="number">to {OTHER}</span>' in page
        assert page.count('<span class="number">to ') == 1


async def test_conversations_filter_by_our_number(database):
    async with harness(database) as h, client(h) as c:
        await h.phone(SHOP).send("HELLO", to=DEFAULT)
        await h.phone(CLINIC).send("HELLO", to=OTHER)
        page = await c.get("/dashboard/")
        assert handsets(page) == [CLINIC, SHOP]
        assert '<select name="address">' in page.text
        assert f'<option value="{OTHER}">{OTHER}</option>' in page.text
        assert f"<td>{OTHER}</td>" in page.text and f"<td>{DEFAULT}</td>" in page.text

        for spelling in (OTHER, "61400999000", "+61 400 999 000"):
            page = await c.get("/dashboard/", params={"address": spelling})
            assert page.status_code == 200 and handsets(page) == [CLINIC]
            assert f'<option value="{OTHER}" selected>' in page.text
        page = await c.get("/dashboard/", params={"address": DEFAULT, "q": "hello"})
        assert handsets(page) == [SHOP]
        page = await c.get("/dashboard/", params={"address": DEFAULT, "bot": "optin"})
        assert handsets(page) == [] and "No conversations match." in page.text

        api = await c.get("/api/conversations", params={"address": OTHER})
        assert [row["handset"] for row in api.json()["conversations"]] == [CLINIC]
        assert api.json()["conversations"][0]["address"] == OTHER


@pytest.mark.parametrize("value", ["5555", "*", "shop", "x" * 201])
async def test_a_number_that_is_not_ours_gets_a_clear_400(database, value):
    async with harness(database) as h, client(h) as c:
        await h.phone(SHOP).send("HELLO")
        error = f"address: {value[:200]!r} is not one of our numbers (4433, +61400999000)"
        page = await c.get("/dashboard/", params={"address": value})
        assert page.status_code == 400
        assert error.replace("'", "&#39;") in page.text
        api = await c.get("/api/conversations", params={"address": value})
        assert api.status_code == 400 and api.json() == {"error": error}


async def test_pages_keep_the_number_filter(database):
    async with harness(database) as h, client(h) as c:
        for n in range(53):
            await h.phone(f"+614000003{n:02d}").send("HELLO", to=OTHER)
        for n in range(3):
            await h.phone(f"+614000004{n:02d}").send("HELLO", to=DEFAULT)
        first = await c.get("/dashboard/", params={"address": OTHER, "q": "+614000003"})
        assert len(handsets(first)) == 50
        link = next_link(first)
        assert "address=%2B61400999000" in link
        second = await c.get(f"/dashboard/{link}")
        assert len(handsets(second)) == 3
        assert all(n.startswith("+614000003") for n in handsets(first) + handsets(second))
        assert set(handsets(first)).isdisjoint(handsets(second))
        api = (await c.get("/api/conversations", params={"address": OTHER})).json()
        rest = await c.get("/api/conversations", params={"address": OTHER, "after": api["next"]})
        assert len(api["conversations"]) + len(rest.json()["conversations"]) == 53
        assert rest.json()["next"] is None


async def test_numbers_threads_are_on_that_we_do_not_list_can_be_filtered_by_too(database):
    async with harness(database) as h, client(h) as c:
        # A handset texts a number of the account that BOTKIT_NUMBERS does not list.
        h.simulator.numbers = (*h.simulator.numbers, "7777")
        await h.phone(SHOP).send("HELLO", to="61400999000")
        await h.phone(CLINIC).send("HELLO", to="7777")
        assert await h.runtime.store.conversations.addresses() == [OTHER, "7777"]
        page = await c.get("/dashboard/")
        options = re.findall(r'<option value="([^"]*)"', page.text.split('name="address"')[1])
        assert options[:4] == ["", DEFAULT, OTHER, "7777"]
        assert f"<td>{OTHER}</td>" in page.text  # shown as configured
        assert handsets(await c.get("/dashboard/", params={"address": OTHER})) == [SHOP]
        assert handsets(await c.get("/dashboard/", params={"address": "7777"})) == [CLINIC]
        assert handsets(await c.get("/dashboard/", params={"address": DEFAULT})) == []


async def test_with_one_number_the_list_does_not_say_it_on_every_row(database):
    async with harness(database, numbers=DEFAULT) as h, client(h) as c:
        await h.phone(SHOP).send("HELLO")
        page = await c.get("/dashboard/")
        assert handsets(page) == [SHOP]
        assert 'name="address"' not in page.text and f"<td>{DEFAULT}</td>" not in page.text
        assert handsets(await c.get("/dashboard/", params={"address": DEFAULT})) == [SHOP]


def test_numbers_group_the_spellings_threads_store():
    ours = OurNumbers([DEFAULT, OTHER], message_class="mt_message")
    numbers = Numbers.of(ours, ["+61400999000", "61400999000", "7777"])
    assert numbers.spellings == {
        DEFAULT: (DEFAULT,),
        OTHER: (OTHER, "61400999000"),
        "7777": ("7777",),
    }
    assert numbers.shown()["61400999000"] == OTHER
    assert numbers.find("0061 400 999 000") == numbers.find("0400999000") == OTHER
    assert numbers.find("0400999001") is None
    assert numbers.find("61400999000") == OTHER and numbers.find("") is None


async def test_consent_shows_and_filters_by_our_number(database):
    async with harness(database) as h, client(h) as c:
        await h.phone(SHOP).send("STOP", to=OTHER)
        await h.phone(CLINIC).send("STOPALL", to=DEFAULT)
        await h.advance(minutes=1)
        await h.phone(CLINIC).send("START", to=OTHER)
        page = await c.get("/dashboard/consent")
        assert '<select name="address">' in page.text
        opt_outs = re.findall(r'data-label="From">([^<]*)</td>', page.text)
        assert opt_outs == ["all numbers except +61400999000", OTHER]

        # What holds for the default number: CLINIC's STOPALL, not SHOP's STOP of OTHER.
        page = await c.get("/dashboard/consent", params={"address": DEFAULT})
        assert f'<option value="{DEFAULT}" selected>' in page.text
        assert re.findall(r'data-label="From">([^<]*)</td>', page.text) == [
            "all numbers except +61400999000"
        ]
        ledger = re.findall(r'data-label="Address">([^<]*)</td>', page.text)
        assert ledger == ["all numbers"]
        download = await c.get("/dashboard/consent.csv", params={"address": DEFAULT})
        assert download.text.count("\n") == 2  # the header and the STOPALL
        page = await c.get("/dashboard/consent", params={"address": "61400999000"})
        assert f'<option value="{OTHER}" selected>' in page.text
        # CLINIC opted back in to OTHER: its STOPALL does not hold there.
        assert re.findall(r'data-label="From">([^<]*)</td>', page.text) == [OTHER]
        assert re.findall(r'data-label="Address">([^<]*)</td>', page.text) == [
            OTHER,
            "all numbers",
            OTHER,
        ]

        bad = await c.get("/dashboard/consent", params={"address": "5555"})
        assert bad.status_code == 400
        assert "“5555” is not one of our numbers: choose one of 4433, +61400999000." in bad.text
        assert (await c.get("/dashboard/consent.csv", params={"address": "*"})).status_code == 400
