"""Conversations filtered by a contact's field, on the dashboard and in /api, on both
backends: the value read as its field's kind reads typed text, a datetime field's day in
BOTKIT_TIMEZONE, an unknown field or a bad value a clear 400; and each conversation
shows its contact's name."""

from __future__ import annotations

import re
from datetime import date, datetime

import httpx
import pytest

from botkit import Bot, Context
from botkit.store.contacts import Author
from botkit.testing import Harness

pytestmark = pytest.mark.backends

ANA, BEN, CAL, DOT = "+61400000001", "+61400000002", "+61400000003", "+61400000004"
bot = Bot(
    "dental",
    fields={
        "clinic": str,
        "reminders": bool,
        "visits": int,
        "born": date,
        "appointment_at": datetime,
    },
)


@bot.keyword("HI")
async def hi(ctx: Context) -> None:
    ctx.reply("Hi")


CONTACTS = {
    ANA: {"name": "Ana", "fields": {"clinic": "Newtown", "reminders": "yes", "visits": "3"}},
    BEN: {"fields": {"clinic": "Glebe", "reminders": "no", "born": "1990-02-03"}},
    # 23:30 on the 10th in Sydney is the 10th's 12:30 UTC; 00:30 on the 11th is the 10th's
    # 13:30 UTC: a day is BOTKIT_TIMEZONE's, not UTC's.
    CAL: {"fields": {"clinic": "newtown", "appointment_at": "2026-12-10 23:30"}},
    DOT: {"name": "<b>Dot</b>", "fields": {"appointment_at": "2026-12-11 00:30"}},
}


@pytest.fixture
async def harness(database, tmp_path):
    async with Harness([bot], tmp_path, db=database, timezone="Australia/Sydney") as harness:
        contacts = harness.runtime.store.contacts
        for number, given in CONTACTS.items():
            await harness.phone(number).send("HI")
            contact = await contacts.get(number)
            contact.update(given)
            await contacts.save(contact, Author("operator", "ops"))
        yield harness


def client(harness: Harness) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=harness.app, client=("127.0.0.1", 1234))
    return httpx.AsyncClient(transport=transport, base_url="http://localhost")


def numbers(page: httpx.Response) -> list[str]:
    return sorted(re.findall(r'/dashboard/threads/\d+">(\+\d+)</a>', page.text))


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"field": "clinic", "value": "Newtown"}, [ANA]),  # text as it is, case and all
        ({"field": "clinic", "value": " Glebe "}, [BEN]),
        ({"field": "clinic"}, [ANA, BEN, CAL]),  # no value: any
        ({"field": "reminders", "value": "YES"}, [ANA]),
        ({"field": "reminders", "value": "false"}, [BEN]),
        ({"field": "visits", "value": "3.0"}, [ANA]),
        ({"field": "born", "value": "1990-02-03"}, [BEN]),
        ({"field": "appointment_at", "value": "2026-12-10"}, [CAL]),
        ({"field": "appointment_at", "value": "2026-12-11"}, [DOT]),
        ({"field": "appointment_at", "value": "2026-12-10T23:30"}, [CAL]),
        ({"field": "appointment_at", "value": "2026-12-10T12:30:00Z"}, [CAL]),
        ({"field": "appointment_at", "value": "2026-12-09"}, []),
        ({"field": "clinic", "value": "Newtown", "bot": "dental", "q": "0400000001"}, [ANA]),
        ({"field": "clinic", "value": "Newtown", "q": "0400000002"}, []),
    ],
)
async def test_conversations_by_a_field(harness, query, expected):
    async with client(harness) as http:
        page = await http.get("/dashboard/", params=query)
        assert page.status_code == 200, page.text
        assert numbers(page) == expected
        api = await http.get("/api/conversations", params=query)
        assert sorted(row["handset"] for row in api.json()["conversations"]) == expected
        if not expected:
            assert "No conversations match." in page.text


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ({"field": "clinc", "value": "x"}, "field: no field 'clinc' is declared (declared: "),
        ({"value": "Newtown"}, "value: is given without a field"),
        (
            {"field": "visits", "value": "three"},
            "value: field 'visits': 'three' is not a whole number",
        ),
        ({"field": "reminders", "value": "maybe"}, "value: field 'reminders': 'maybe' is not"),
        ({"field": "born", "value": "2026-02-30"}, "value: field 'born': '2026-02-30' is not"),
        ({"field": "appointment_at", "value": "2026-13-01"}, "value: field 'appointment_at'"),
        ({"field": "appointment_at", "value": "2026-10-04T02:30"}, "does not exist in Australia"),
    ],
)
async def test_a_bad_field_filter_says_why(harness, query, error):
    async with client(harness) as http:
        page = await http.get("/dashboard/", params=query)
        assert page.status_code == 400
        assert error in page.text.replace("&#39;", "'")
        api = await http.get("/api/conversations", params=query)
        assert api.status_code == 400
        assert error in api.json()["error"]


async def test_each_conversation_shows_its_contacts_name_escaped(harness):
    async with client(harness) as http:
        page = await http.get("/dashboard/")
        api = (await http.get("/api/conversations")).json()
    assert '<span class="name">Ana</span>' in page.text
    assert '<span class="name">&lt;b&gt;Dot&lt;/b&gt;</span>' in page.text
    assert "<b>Dot</b>" not in page.text
    names = {row["handset"]: row["name"] for row in api["conversations"]}
    assert names == {ANA: "Ana", BEN: None, CAL: None, DOT: "<b>Dot</b>"}
    # The form offers the declared fields, and keeps the one chosen.
    async with client(harness) as http:
        chosen = await http.get("/dashboard/", params={"field": "born", "value": "1990-02-03"})
    assert '<option value="born" selected>born</option>' in chosen.text
    assert 'name="value" value="1990-02-03"' in chosen.text
