"""The person page's contact: its values, editing them (CSRF, login), a bad value shown by
its input with nothing saved, a change made meanwhile refused, the ledger in words, a
hostile name escaped, and the page of a contact with no messages."""

from __future__ import annotations

import html
import re
from datetime import date, datetime

import httpx
import pytest
from signin import OUTSIDE, log_in

from botkit import Bot, Context
from botkit.fields import Field, Fields
from botkit.store.contacts import Author
from botkit.testing import Harness

pytestmark = pytest.mark.backends

ANA = "+61400000001"
PAGE = f"/dashboard/people/{ANA}"
FIELDS = {
    "appointment_at": datetime,
    "born": date,
    "clinic": str,
    "reminders": bool,
    "visits": int,
}
bot = Bot("dental", fields=FIELDS)


@bot.keyword("HI")
async def hi(ctx: Context) -> None:
    ctx.reply("Hi")


def client(harness: Harness) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=harness.app, client=OUTSIDE)
    return httpx.AsyncClient(transport=transport, base_url="http://localhost")


def run(database, tmp_path, bots=(bot,)) -> Harness:
    return Harness(
        list(bots),
        tmp_path,
        db=database,
        timezone="Australia/Sydney",
        dashboard_user="ops",
        dashboard_password="s3cret!",
    )


def form(page: httpx.Response, **changes: str) -> dict[str, str]:
    """The contact form's inputs as the page fills them, with `changes` (by key)."""
    section = page.text[page.text.index('id="contact-form"') :]
    section = section[: section.index("</form>")]
    values = {
        name: html.unescape(value)
        for name, value in re.findall(r'<input[^>]* name="([^"]+)"[^>]* value="([^"]*)"', section)
    }
    for name, options in re.findall(r'<select[^>]* name="([^"]+)"[^>]*>(.*?)</select>', section):
        chosen = re.search(r'<option value="([^"]*)" selected>', options, re.S)
        values[name] = chosen.group(1) if chosen else ""
    return {**values, **changes}


def text(page: httpx.Response) -> str:
    """The page's text, tags and all, with entities read."""
    return html.unescape(page.text)


async def test_an_operator_edits_a_contact_and_the_ledger_says_so(database, tmp_path):
    async with run(database, tmp_path) as harness, client(harness) as http:
        await harness.phone(ANA).send("HI")
        await log_in(http)
        page = await http.get(PAGE)
        assert page.status_code == 200
        # Every declared field, empty, with its kind; the zone is the number's.
        for name, kind in [("appointment_at", "datetime"), ("born", "date"), ("visits", "number")]:
            assert re.search(
                rf"<dt>{name} <small>{kind}</small></dt><dd class=\"empty\">", page.text
            )
        assert "from the number: Australia/Sydney" in page.text
        assert 'type="datetime-local"' in page.text and 'type="date"' in page.text
        given = form(
            page,
            **{
                "name": "Ana",
                "timezone": "Pacific/Auckland",
                "field.appointment_at": "2026-12-10T14:30",
                "field.born": "1990-02-03",
                "field.reminders": "yes",
                "field.visits": "1,000",
            },
        )
        saved = await http.post(f"{PAGE}/contact", data=given)
        assert saved.status_code == 303
        assert saved.headers["location"] == f"/dashboard/people/{ANA}?saved=1#contact"
        page = await http.get(saved.headers["location"])
        assert "Saved." in page.text
        assert '<span class="name">Ana</span>' in page.text
        # A time typed with a zone is read in it, and shown in it.
        assert "2026-12-10 14:30 NZDT" in page.text
        assert 'value="2026-12-10T14:30"' in page.text
        assert "<dt>reminders <small>bool</small></dt><dd>yes</dd>" in page.text
        ledger = page.text[page.text.index('class="ledger"') :]
        for line in [
            "<td>name</td><td>(none)</td><td>Ana</td><td>operator ops</td>",
            "<td>timezone</td><td>(none)</td><td>Pacific/Auckland</td>",
            "<td>appointment_at</td><td>(none)</td><td>2026-12-10 14:30 NZDT</td>",
            "<td>reminders</td><td>(none)</td><td>yes</td>",
            "<td>visits</td><td>(none)</td><td>1000</td>",
        ]:
            assert line in ledger, line

        contact = await harness.runtime.store.contacts.get(ANA)
        assert contact.fields["appointment_at"] == datetime.fromisoformat("2026-12-10T14:30+13:00")
        assert contact.fields["visits"] == 1000 and contact.fields["reminders"] is True

        # The zone changed alone: an untouched time keeps its instant, not its digits.
        again = await http.post(f"{PAGE}/contact", data=form(page, timezone="Australia/Perth"))
        assert again.headers["location"].endswith("?saved=1#contact")
        contact = await harness.runtime.store.contacts.get(ANA)
        assert contact.fields["appointment_at"] == datetime.fromisoformat("2026-12-10T14:30+13:00")
        page = await http.get(PAGE)
        assert "2026-12-10 09:30 AWST" in page.text

        # Sent back as shown: nothing changes; cleared: the value goes, and the ledger
        # says from what.
        unchanged = await http.post(f"{PAGE}/contact", data=form(page))
        assert unchanged.headers["location"].endswith("?saved=0#contact")
        assert "Nothing to save" in (await http.get(unchanged.headers["location"])).text
        cleared = await http.post(f"{PAGE}/contact", data=form(page, **{"field.reminders": ""}))
        assert cleared.status_code == 303
        page = await http.get(PAGE)
        assert "<td>reminders</td><td>yes</td><td>(none)</td><td>operator ops</td>" in page.text
        assert "reminders" not in (await harness.runtime.store.contacts.get(ANA)).fields


async def test_a_bad_value_is_shown_by_its_input_and_nothing_is_saved(database, tmp_path):
    async with run(database, tmp_path) as harness, client(harness) as http:
        await harness.phone(ANA).send("HI")
        await log_in(http)
        page = await http.get(PAGE)
        given = form(
            page,
            **{"name": "Bea", "field.visits": "three", "field.born": "2026-02-30"},
            timezone="Mars/Olympus",
        )
        refused = await http.post(f"{PAGE}/contact", data=given)
        assert refused.status_code == 400
        shown = text(refused)
        for key, error in [
            ("field-visits", "field 'visits': 'three' is not a whole number"),
            ("field-born", "field 'born': '2026-02-30' is not a date (YYYY-MM-DD)"),
            ("timezone", "timezone 'Mars/Olympus' is not an IANA zone"),
        ]:
            assert f'aria-describedby="{key}-error"' in shown
            assert re.search(rf'id="{key}-error" role="alert">{re.escape(error)}', shown), key
        # What was typed is still in the form, to correct; none of it is saved.
        assert form(refused)["field.visits"] == "three"
        assert form(refused)["name"] == "Bea"
        assert '<details class="edit" open>' in refused.text
        contact = await harness.runtime.store.contacts.get(ANA)
        assert (contact.stored, contact.name) == (False, None)
        assert await harness.runtime.store.contacts.ledger(ANA) == []


async def test_the_form_needs_its_csrf_token_and_a_login(database, tmp_path):
    async with run(database, tmp_path) as harness, client(harness) as http:
        await harness.phone(ANA).send("HI")
        await log_in(http)
        page = await http.get(PAGE)
        forged = form(page, name="Eve")
        del forged["csrf"]
        assert (await http.post(f"{PAGE}/contact", data=forged)).status_code == 403
        wrong = await http.post(f"{PAGE}/contact", data={**forged, "csrf": "x" * 43})
        assert wrong.status_code == 403
        async with client(harness) as stranger:
            assert (await stranger.get(PAGE)).status_code == 303  # to the login form
            posted = await stranger.post(f"{PAGE}/contact", data=form(page, name="Eve"))
            assert posted.status_code == 303
            assert posted.headers["location"].startswith("/dashboard/login")
        # A form from before a change made meanwhile (a bot, an import) is refused, so
        # that what it showed does not overwrite the change.
        contact = await harness.runtime.store.contacts.get(ANA)
        contact.fields["clinic"] = "Glebe"
        await harness.runtime.store.contacts.save(contact, Author("bot", "dental"))
        stale = await http.post(f"{PAGE}/contact", data=form(page, name="Ana"))
        assert stale.status_code == 409
        assert "It changed while you were editing it" in stale.text
        assert "<td>clinic</td><td>(none)</td><td>Glebe</td><td>bot dental</td>" in stale.text
        contact = await harness.runtime.store.contacts.get(ANA)
        assert (contact.name, contact.fields["clinic"]) == (None, "Glebe")
        # The form now holds the values as they are, and saves.
        saved = await http.post(f"{PAGE}/contact", data=form(stale, name="Ana"))
        assert saved.status_code == 303
        assert (await harness.runtime.store.contacts.get(ANA)).name == "Ana"


async def test_a_hostile_name_and_value_stay_text(database, tmp_path):
    hostile = "<script>alert(1)</script>"
    async with run(database, tmp_path) as harness, client(harness) as http:
        await harness.phone(ANA).send("HI")
        contacts = harness.runtime.store.contacts
        contact = await contacts.get(ANA)
        contact.update({"name": hostile, "fields": {"clinic": '"><img src=x onerror=alert(2)>'}})
        await contacts.save(contact, Author("import", "people.csv"))
        await log_in(http)
        page = await http.get(PAGE)
        listing = await http.get("/dashboard/")
    assert page.status_code == 200
    for shown in (page.text, listing.text):
        assert "<script>alert" not in shown and "<img src=x" not in shown
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert form(page)["name"] == hostile
    assert form(page)["field.clinic"] == '"><img src=x onerror=alert(2)>'
    assert "<td>import people.csv</td>" in page.text


async def test_a_contact_with_no_messages_has_its_page(database, tmp_path):
    legacy = Field("legacy_code", "number")
    async with run(database, tmp_path) as harness, client(harness) as http:
        contacts = harness.runtime.store.contacts
        declared = contacts.fields
        # A value of a field no bot declares any more: shown, read-only.
        contacts.fields = Fields([*declared.values(), legacy])
        contact = await contacts.get(ANA)
        contact.update({"name": "Ana", "fields": {"legacy_code": "7", "clinic": "Newtown"}})
        await contacts.save(contact, Author("import", "people.csv"))
        contacts.fields = declared
        await log_in(http)
        page = await http.get(PAGE)
        missing = await http.get("/dashboard/people/%2B61400000099")
        assert page.status_code == 200
        assert "No messages." in page.text
        assert "<dt>clinic <small>text</small></dt><dd>Newtown</dd>" in page.text
        assert "legacy_code <small>number, no bot declares it: read-only</small>" in page.text
        assert 'name="field.legacy_code"' not in page.text
        # The read-only value is kept by a save of the others.
        saved = await http.post(f"{PAGE}/contact", data=form(page, **{"field.clinic": "Glebe"}))
        assert saved.status_code == 303
        assert (await contacts.get(ANA)).fields.texts() == {"clinic": "Glebe", "legacy_code": "7"}
        assert missing.status_code == 404
        assert "has no conversations" in missing.text


async def test_a_form_with_more_fields_than_other_forms(database, tmp_path):
    many = Bot("many", fields={f"note{n}": str for n in range(30)})
    async with run(database, tmp_path, bots=(many,)) as harness, client(harness) as http:
        await log_in(http)
        contacts = harness.runtime.store.contacts
        contact = await contacts.get(ANA)
        contact.name = "Ana"
        await contacts.save(contact, Author("api", "ops"))
        page = await http.get(PAGE)
        long = "é" * 1000  # the longest text, each character 6 bytes in the form
        given = form(page, **{f"field.note{n}": long for n in range(30)})
        assert len(given) == 35
        saved = await http.post(f"{PAGE}/contact", data=given)
        assert saved.status_code == 303, saved.text
        assert (await contacts.get(ANA)).fields["note29"] == long
        extra = await http.post(f"{PAGE}/contact", data={**given, "more": "x"})
        assert extra.status_code == 413
