"""The list of contacts, on both backends: GET /api/contacts (and the dashboard's
contacts page) in number order, a page at a time, filtered by a number in any form, a
part of a name, a field's value as the conversations page reads it, a language and a
list; a contact that never texted is found; a bad parameter is a clear 400."""

from __future__ import annotations

import html
import re
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
    """The numbers the API and the page list for `query` (one page), which must agree."""
    response = await http.get("/api/contacts", params=query)
    assert response.status_code == 200, response.text
    assert response.json()["next"] is None
    found = [contact["number"] for contact in response.json()["contacts"]]
    page = await http.get("/dashboard/contacts/", params=query)
    assert page.status_code == 200, page.text
    assert numbers(page) == found
    assert 'rel="next"' not in page.text
    return found


def numbers(page: httpx.Response) -> list[str]:
    """The numbers a contacts page lists, in its order."""
    return re.findall(r'<a class="number" href="[^"]*/dashboard/people/([^"]+)">', page.text)


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
async def test_the_filters(harness, query, expected):
    async with client(harness) as http:
        assert await listed(http, **query) == expected
        if not expected:
            page = await http.get("/dashboard/contacts/", params=query)
            assert "No contacts match." in page.text


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
        page = await http.get("/dashboard/contacts/", params=query)
    assert response.status_code == 400
    assert error in response.json()["error"]
    assert page.status_code == 400
    assert error in html.unescape(page.text)
    assert numbers(page) == []


async def test_pages_follow_one_another_without_a_gap(database, tmp_path):
    made = [f"+614000{i:05d}" for i in range(1, 2 * PAGE + 22)]
    async with Harness([bot], tmp_path, db=database) as harness:
        for i, number in enumerate(reversed(made)):
            await add(harness, number, {"language": "es" if i % 3 == 0 else "en"})
        async with client(harness) as http:
            for query in ({}, {"language": "es"}):
                kept = sorted(n for i, n in enumerate(reversed(made)) if not query or i % 3 == 0)
                assert await api_pages(http, query) == kept
                assert await dashboard_pages(http, query) == kept


async def api_pages(http: httpx.AsyncClient, query: dict[str, str]) -> list[str]:
    """Every number GET /api/contacts lists for `query`, following `next`."""
    found, after = [], None
    while True:
        params = {**query, **({"after": after} if after else {})}
        body = (await http.get("/api/contacts", params=params)).json()
        assert 0 < len(body["contacts"]) <= PAGE
        found += [each["number"] for each in body["contacts"]]
        after = body["next"]
        if after is None:
            return found
        # The last number's digits: nothing to escape in a URL (a raw + is a space).
        assert after == found[-1].removeprefix("+")
        again = await http.get("/api/contacts", params={**query, "after": f"+{after}"})
        assert again.json()["contacts"][0]["number"] > found[-1]


async def dashboard_pages(http: httpx.AsyncClient, query: dict[str, str]) -> list[str]:
    """Every number the contacts page lists for `query`, following its link to the
    next page, which keeps the filters."""
    page = await http.get("/dashboard/contacts/", params=query)
    found = numbers(page)
    while link := re.search(r'<a rel="next" href="([^"]+)">More contacts</a>', page.text):
        page = await http.get("/dashboard/contacts/" + html.unescape(link.group(1)))
        assert 0 < len(numbers(page)) <= PAGE
        found += numbers(page)
    return found


async def test_the_list_needs_the_login(database, tmp_path):
    login = {"dashboard_user": "ops", "dashboard_password": "correct horse battery"}
    async with Harness([bot], tmp_path, db=database, **login) as harness:
        await add(harness, ANA, CONTACTS[ANA])
        transport = httpx.ASGITransport(app=harness.app, client=("203.0.113.9", 1234))
        async with httpx.AsyncClient(transport=transport, base_url="http://x") as http:
            refused = await http.get("/api/contacts")
            assert refused.status_code == 401
            assert "contacts" not in refused.json()
            sent_away = await http.get("/dashboard/contacts/")
            assert sent_away.status_code in (302, 303, 307)
            assert "/dashboard/login" in sent_away.headers["location"]
            assert ANA not in sent_away.text
            http.auth = ("ops", "correct horse battery")
            assert await listed(http) == [ANA]


async def test_each_row_shows_the_contact_escaped(harness):
    async with client(harness) as http:
        page = await http.get("/dashboard/contacts/")
        searched = await http.get("/dashboard/contacts/", params={"q": HOSTILE})
    assert '<a href="http://localhost/dashboard/contacts/">Contacts</a>' in page.text  # nav
    assert numbers(page) == [ANA, BEN, DOT, CAL]
    # Every declared field is a column when there are few: by name, values in words.
    header = re.search(r"<thead>(.*?)</thead>", page.text).group(1)
    assert re.findall(r"<th>([^<]+)</th>", header) == [
        "Number",
        "Name",
        "Language",
        "Time zone",
        "appointment_at",
        "born",
        "clinic",
        "reminders",
        "Lists",
    ]
    ana = row(page, ANA)
    assert ana == [
        ANA,
        "Ana María",
        "es",
        "Australia/Sydney (the number's)",
        "2026-12-10 23:30 AEDT",
        "",
        "Newtown",
        "yes",
        "deals",
    ]
    assert row(page, CAL)[3] == "Pacific/Auckland (the number's)"
    # A hostile name and value are text, in the list and in the search box.
    assert HOSTILE not in page.text and "<img src=x>" not in page.text
    assert row(page, DOT)[1] == HOSTILE
    assert row(page, DOT)[6] == f"<img src=x>{HOSTILE}"
    assert numbers(searched) == [DOT]
    assert HOSTILE not in searched.text
    assert 'value="&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;"' in searched.text


def row(page: httpx.Response, number: str) -> list[str]:
    """The cells of `number`'s row, as text."""
    (cells,) = [r for r in re.findall(r"<tr>(.*?)</tr>", page.text, re.S) if number in r]
    found = re.findall(r"<td[^>]*>(.*?)</td>", cells, re.S)
    return [html.unescape(re.sub(r"<[^>]+>", "", cell)).strip() for cell in found]


many = Bot("clinic", fields={name: str for name in ("a1", "b2", "c3", "d4", "e5", "f6")})


async def test_many_fields_show_the_first_and_the_one_filtered_by(database, tmp_path):
    async with Harness([many], tmp_path, db=database) as harness:
        await add(harness, ANA, {"fields": {"a1": "one", "f6": "six"}})
        async with client(harness) as http:
            page = await http.get("/dashboard/contacts/")
            chosen = await http.get("/dashboard/contacts/", params={"field": "f6"})
    header = re.search(r"<thead>(.*?)</thead>", page.text).group(1)
    assert re.findall(r"<th>([a-z]\d)</th>", header) == ["a1", "b2", "c3", "d4"]
    assert "2 more fields on each contact's page." in page.text
    header = re.search(r"<thead>(.*?)</thead>", chosen.text).group(1)
    assert re.findall(r"<th>([a-z]\d)</th>", header) == ["a1", "b2", "c3", "d4", "f6"]
    assert row(chosen, ANA)[4:] == ["one", "", "", "", "six", ""]
    assert "1 more field on each contact's page." in chosen.text


async def test_with_no_contacts_the_page_says_how_they_come(database, tmp_path):
    async with Harness([bot], tmp_path, db=database) as harness:
        await harness.phone(EVE).send("HI")  # texted, nothing set: not a contact row
        async with client(harness) as http:
            page = await http.get("/dashboard/contacts/")
    assert page.status_code == 200
    assert numbers(page) == []
    text = html.unescape(re.sub(r"<[^>]+>", "", page.text))
    assert "No contacts yet. A contact is made when a CSV of them is imported" in text
    assert "botkit contacts import FILE.csv" in text
    assert "PATCH /api/contacts/NUMBER" in text
    assert "ctx.contact" in text


@pytest.mark.parametrize(
    ("q", "found"),
    [
        ("0400 000 001", [ANA]),  # imported, never texted
        ("+61 400 000 004", [DOT]),
        ("0400 000 009", []),  # nobody
        ("000 0001", []),  # a part of Ana's number finds no contact
    ],
)
async def test_a_number_with_no_conversation_links_to_its_contact(harness, q, found):
    async with client(harness) as http:
        page = await http.get("/dashboard/", params={"q": q})
    assert page.status_code == 200
    assert "No conversations match." in page.text
    linked = re.findall(
        r'(\+\d+) is a contact: see <a href="[^"]*/dashboard/people/([^"]+)">', page.text
    )
    assert linked == [(number, number) for number in found]


async def test_a_number_with_a_conversation_lists_it_and_no_more(harness):
    async with client(harness) as http:
        page = await http.get("/dashboard/", params={"q": "0400 000 002"})
        elsewhere = await http.get("/dashboard/", params={"q": "0400 000 002", "bot": "nobot"})
    assert re.findall(r'/dashboard/threads/\d+">(\+\d+)</a>', page.text) == [BEN]
    assert "is a contact" not in page.text
    # Another filter keeps its conversations out: its page is still linked.
    assert f"{BEN} is a contact: see" in elsewhere.text
