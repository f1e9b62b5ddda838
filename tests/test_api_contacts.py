"""/api/contacts/{number}: read a contact and change it, behind the dashboard's login;
every bad value a clear 400, and every change in the ledger as the API's by its user."""

from __future__ import annotations

import base64
from datetime import date, datetime

import httpx
import pytest

from botkit import Bot, Context
from botkit.testing import Harness

pytestmark = pytest.mark.backends

ANA = "+61400000001"
bot = Bot("dental", fields={"appointment_at": datetime, "born": date, "visits": int, "clinic": str})


@bot.keyword("HI")
async def hi(ctx: Context) -> None:
    ctx.reply(f"Hi {ctx.contact.name or 'there'}")


def client(harness: Harness, **headers: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=harness.app, client=("127.0.0.1", 50000))
    return httpx.AsyncClient(transport=transport, base_url="http://localhost", headers=headers)


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


async def test_a_patch_sets_what_it_gives_and_the_bot_sees_it(database, tmp_path):
    async with Harness([bot], tmp_path, db=database, timezone="Australia/Sydney") as harness:
        phone = harness.phone(ANA)
        async with client(harness) as http:
            assert (await http.get(f"/api/contacts/{ANA}")).status_code == 404
            await phone.send("HI")
            phone.expect("Hi there")
            # A handset that has texted is a contact, with nothing set yet.
            got = (await http.get("/api/contacts/%2B61400000001")).json()
            assert got == {
                "number": ANA,
                "name": None,
                "language": None,
                "timezone": None,
                "zone": "Australia/Sydney",
                "fields": {},
                "lists": [],
                "created_at": None,
            }
            response = await http.patch(
                f"/api/contacts/{ANA}",
                json={
                    "name": "Ana",
                    "language": "es",
                    "timezone": "Pacific/Auckland",
                    "fields": {
                        "appointment_at": "2026-12-10 14:30",
                        "born": "1990-02-03",
                        "visits": 3,
                    },
                },
            )
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["name"], body["language"], body["zone"]) == ("Ana", "es", "Pacific/Auckland")
        # A time without an offset is the contact's own (the zone given with it).
        assert body["fields"] == {
            "appointment_at": "2026-12-10T14:30:00+13:00",
            "born": "1990-02-03",
            "visits": 3,
        }
        await phone.send("HI")
        phone.expect("Hi Ana")
        ledger = await harness.runtime.store.contacts.ledger(ANA)
        assert {(row["what"], row["source"], row["actor"]) for row in ledger} == {
            (what, "api", "localhost")
            for what in ("name", "language", "timezone", "appointment_at", "born", "visits")
        }
        async with client(harness) as http:
            cleared = await http.patch(
                f"/api/contacts/{ANA}", json={"name": None, "fields": {"visits": None}}
            )
        assert cleared.json()["name"] is None
        assert "visits" not in cleared.json()["fields"]


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        ({"fields": {"visits": "three"}}, 400, "field 'visits': 'three' is not a whole number"),
        ({"fields": {"visits": True}}, 400, "field 'visits': True is a bool, not a whole number"),
        ({"fields": {"vists": 1}}, 400, "no field 'vists' is declared"),
        ({"nickname": "A"}, 400, "'nickname': a contact has name, language, timezone"),
        ({"timezone": "Mars/Olympus"}, 400, "'Mars/Olympus' is not an IANA zone"),
        ({"language": 7}, 400, "language 7 is not text"),
        ({"fields": ["visits"]}, 400, "fields is not an object"),
        ({"fields": {"visits": 10**400}}, 400, "is not a finite number"),
        (
            {"timezone": "Australia/Sydney", "fields": {"appointment_at": "0001-01-01 00:00"}},
            400,
            "is outside the years 1 to 9999 in UTC",
        ),
        ({"timezone": "A" * 300}, 400, "is not an IANA zone"),
        (["name"], 400, "the body is not a JSON object"),
    ],
)
async def test_a_bad_patch_changes_nothing_and_says_why(database, tmp_path, body, status, error):
    async with Harness([bot], tmp_path, db=database) as harness, client(harness) as http:
        response = await http.patch(
            f"/api/contacts/{ANA}",
            json={"name": "Ana", **body} if isinstance(body, dict) else body,
        )
        assert response.status_code == status
        assert error in response.json()["error"]
        assert (await http.get(f"/api/contacts/{ANA}")).status_code == 404


async def test_text_that_is_no_unicode_gets_a_400(database, tmp_path):
    """JSON may escape half of a surrogate pair, which no database takes as text."""
    async with Harness([bot], tmp_path, db=database) as harness, client(harness) as http:
        for body in ('{"name": "Ana \\ud83e"}', '{"fields": {"clinic": "\\udc00"}}'):
            response = await http.patch(
                f"/api/contacts/{ANA}", content=body, headers={"content-type": "application/json"}
            )
            assert response.status_code == 400
            assert "holds half of a surrogate pair" in response.json()["error"]


async def test_a_patch_must_be_json_and_the_number_international(database, tmp_path):
    async with Harness([bot], tmp_path, db=database) as harness, client(harness) as http:
        form = await http.patch(f"/api/contacts/{ANA}", data={"name": "Ana"})
        assert form.status_code == 415
        national = await http.get("/api/contacts/0400000001")
        assert national.status_code == 400
        assert "is not in international format" in national.json()["error"]


async def test_contacts_need_the_login_and_the_ledger_names_the_user(database, tmp_path):
    login = {"dashboard_user": "ops", "dashboard_password": "correct horse battery"}
    async with Harness([bot], tmp_path, db=database, **login) as harness:
        async with client(harness) as http:
            refused = await http.patch(f"/api/contacts/{ANA}", json={"name": "Ana"})
            assert refused.status_code == 401
        auth = basic("ops", "correct horse battery")
        async with client(harness, Authorization=auth) as http:
            response = await http.patch(f"/api/contacts/{ANA}", json={"name": "Ana"})
            assert response.status_code == 200
        (row,) = await harness.runtime.store.contacts.ledger(ANA)
        assert (row["what"], row["source"], row["actor"]) == ("name", "api", "ops")
