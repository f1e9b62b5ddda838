"""The list of contacts, on both backends: GET /api/contacts (and the dashboard's
contacts page) in number order, a page at a time, filtered by a number in any form, a
part of a name, a field's value as the conversations page reads it, a language and a
list; a contact that never texted is found; a bad parameter is a clear 400."""

from __future__ import annotations

from datetime import date, datetime

import httpx
import pytest

from botkit import Bot, Context
from botkit.store.contacts import PAGE, Author
from botkit.testing import Harness

pytestmark = pytest.mark.backends

# Ana was imported and never texted; Ben texted and was named; Cal is in New Zealand;
# Dot's name and clinic are hostile; Eve texted and has nothing set: no contact row.
ANA, BEN, CAL, DOT, EVE = (
    "+61400000001",
    "+61400000002",
    "+64211234567",
    "+61400000004",
    "+61400000005",
)
HOSTILE = '<script>alert("x")</script>'
bot = Bot(
    "dental",
    fields={"clinic": str, "reminders": bool, "born": date, "appointment_at": datetime},
)


@bot.keyword("HI")
async def hi(ctx: Context) -> None:
    ctx.reply("Hi")


CONTACTS = {
    ANA: {
        "name": "Ana María",
        "language": "es",
        "fields": {"clinic": "Newtown", "reminders": "yes", "appointment_at": "2026-12-10 23:30"},
    },
    BEN: {"name": "Ben O'Brien", "fields": {"clinic": "Glebe", "born": "1990-02-03"}},
    CAL: {"name": "CALLUM 100% Ngata", "language": "mi", "fields": {"reminders": "no"}},
    DOT: {"name": HOSTILE, "fields": {"clinic": f"<img src=x>{HOSTILE}"}},
}


def client(harness: Harness, **headers: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=harness.app, client=("127.0.0.1", 1234))
    return httpx.AsyncClient(transport=transport, base_url="http://localhost", headers=headers)


async def add(harness: Harness, number: str, given: dict) -> None:
    """Make `number` a contact as an import would."""
    contacts = harness.runtime.store.contacts
    contact = await contacts.get(number)
    contact.update(given)
    await contacts.save(contact, Author("import", "people.csv"))


@pytest.fixture
async def harness(database, tmp_path):
    async with Harness([bot], tmp_path, db=database, timezone="Australia/Sydney") as harness:
        for number in (BEN, EVE):
            await harness.phone(number).send("HI")
        for number, given in CONTACTS.items():
            await add(harness, number, given)
        lists = harness.runtime.store.lists
        await lists.create("deals")
        await lists.create("news")
        for number in (ANA, CAL, EVE):
            await lists.subscribe("deals", number, "4433", source="import")
        await lists.unsubscribe("deals", CAL, source="sms")
        yield harness


async def listed(http: httpx.AsyncClient, **query: str) -> list[str]:
    response = await http.get("/api/contacts", params=query)
    assert response.status_code == 200, response.text
    assert response.json()["next"] is None
    return [contact["number"] for contact in response.json()["contacts"]]


async def test_every_contact_with_a_row_in_number_order(harness):
    async with client(harness) as http:
        response = await http.get("/api/contacts")
    body = response.json()
    assert [each["number"] for each in body["contacts"]] == [ANA, BEN, DOT, CAL]
    assert body["next"] is None
    async with client(harness) as http:
        one = (await http.get(f"/api/contacts/{ANA}")).json()
    assert body["contacts"][0] == one  # each as GET /api/contacts/{number} has it
    assert one["lists"] == ["deals"]
    assert one["fields"]["appointment_at"] == "2026-12-10T23:30:00+11:00"


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        # A number in any common form; a national one in each country it is valid in.
        ({"q": "+61 400 000 001"}, [ANA]),
        ({"q": "0400 000 001"}, [ANA]),
        ({"q": "61400000001"}, [ANA]),
        ({"q": "0061-400-000-001"}, [ANA]),
        ({"q": "021 123 4567"}, [CAL]),
        ({"q": "+61400000005"}, []),  # texted, but nothing is set: no contact row
        # A part of a name, case ignored; LIKE's wildcards are text.
        ({"q": "maría"}, [ANA]),
        ({"q": "ANA"}, [ANA]),
        ({"q": "o'brien"}, [BEN]),
        ({"q": "100%"}, [CAL]),
        ({"q": "0%"}, [CAL]),
        ({"q": "_"}, []),
        ({"q": "<script>"}, [DOT]),
        # A field's value, read as the conversations page reads it.
        ({"field": "clinic", "value": "Newtown"}, [ANA]),
        ({"field": "clinic", "value": "newtown"}, []),
        ({"field": "clinic"}, [ANA, BEN, DOT]),
        ({"field": "reminders", "value": "YES"}, [ANA]),
        ({"field": "reminders", "value": "n"}, [CAL]),
        ({"field": "born", "value": "1990-02-03"}, [BEN]),
        ({"field": "appointment_at", "value": "2026-12-10"}, [ANA]),
        ({"field": "appointment_at", "value": "2026-12-10 23:30"}, [ANA]),
        ({"field": "appointment_at", "value": "2026-12-11"}, []),
        # A language, as a contact's is kept; a list's subscribed members with a row.
        ({"language": "ES"}, [ANA]),
        ({"language": "mi"}, [CAL]),
        ({"list": "deals"}, [ANA]),
        ({"list": "news"}, []),
        # Together.
        ({"q": "e", "field": "clinic"}, [BEN, DOT]),
        ({"q": "0400000001", "list": "deals", "language": "es"}, [ANA]),
        ({"q": "0400000001", "language": "mi"}, []),
    ],
)
async def test_the_api_filters(harness, query, expected):
    async with client(harness) as http:
        assert await listed(http, **query) == expected


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ({"q": "0412"}, "q: '0412' is not a phone number: search for a whole number"),
        ({"q": "x" * 201}, "q: is longer than 200 characters"),
        ({"field": "clinc", "value": "x"}, "field: no field 'clinc' is declared (declared: "),
        ({"value": "Newtown"}, "value: is given without a field"),
        ({"field": "reminders", "value": "maybe"}, "value: field 'reminders': 'maybe' is not"),
        ({"field": "appointment_at", "value": "2026-10-04T02:30"}, "does not exist in Australia"),
        ({"language": "Spanish!"}, "language: language 'Spanish!' is not a language code"),
        ({"list": "vip"}, "list: there is no list named 'vip' (lists: deals, news)"),
        ({"after": "zzz"}, "after: is not the `next` of a page"),
    ],
)
async def test_a_bad_parameter_is_a_400_saying_which(harness, query, error):
    async with client(harness) as http:
        response = await http.get("/api/contacts", params=query)
    assert response.status_code == 400
    assert error in response.json()["error"]


async def test_pages_follow_one_another_without_a_gap(database, tmp_path):
    numbers = [f"+614000{i:05d}" for i in range(1, 2 * PAGE + 22)]
    async with Harness([bot], tmp_path, db=database) as harness:
        for i, number in enumerate(reversed(numbers)):
            await add(harness, number, {"language": "es" if i % 3 == 0 else "en"})
        async with client(harness) as http:
            for query in ({}, {"language": "es"}):
                found, after, pages = [], None, 0
                while True:
                    params = {**query, **({"after": after} if after else {})}
                    body = (await http.get("/api/contacts", params=params)).json()
                    assert len(body["contacts"]) <= PAGE
                    found += [each["number"] for each in body["contacts"]]
                    pages, after = pages + 1, body["next"]
                    if after is None:
                        break
                kept = [n for i, n in enumerate(reversed(numbers)) if not query or i % 3 == 0]
                assert found == sorted(kept)
                assert pages == -(-len(kept) // PAGE)


async def test_the_list_needs_the_login(database, tmp_path):
    login = {"dashboard_user": "ops", "dashboard_password": "correct horse battery"}
    async with Harness([bot], tmp_path, db=database, **login) as harness:
        await add(harness, ANA, CONTACTS[ANA])
        transport = httpx.ASGITransport(app=harness.app, client=("203.0.113.9", 1234))
        async with httpx.AsyncClient(transport=transport, base_url="http://x") as http:
            refused = await http.get("/api/contacts")
            assert refused.status_code == 401
            assert "contacts" not in refused.json()
            http.auth = ("ops", "correct horse battery")
            assert await listed(http) == [ANA]
