"""Contacts: typed fields, `ctx.contact` in handlers and timers, its changes committed with
the handler's other effects and written to the ledger, on both backends."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from botkit import Bot, Context
from botkit.contacts import language_code
from botkit.fields import Field, FieldError, Fields
from botkit.router import Router
from botkit.store.contacts import Author
from botkit.testing import Harness

pytestmark = pytest.mark.backends

AU, NZ = "+61400000001", "+64211234567"
SYDNEY, AUCKLAND = ZoneInfo("Australia/Sydney"), ZoneInfo("Pacific/Auckland")

bot = Bot(
    "dental",
    fields={"appointment_at": datetime, "clinic": str, "visits": int, "reminders": bool},
)


@bot.keyword("NAME")
async def name(ctx: Context) -> None:
    ctx.contact.name = ctx.text.split(maxsplit=1)[1]
    ctx.contact.fields["visits"] = (ctx.contact.fields.get("visits") or 0) + 1
    ctx.reply(f"Thanks {ctx.contact.name}, visit {ctx.contact.fields['visits']}")


@bot.keyword("WHEN", interrupts=True)
async def when(ctx: Context) -> None:
    at = ctx.contact.fields.get("appointment_at")
    ctx.reply(f"{at:%a %d %b %H:%M %Z}" if at else "no appointment")


@bot.keyword("BOOK")
async def book(ctx: Context) -> None:
    # A naive time is the contact's own: 14:30 where the handset is.
    ctx.contact.fields["appointment_at"] = datetime(2026, 12, 10, 14, 30)
    ctx.state = "confirm"
    ctx.schedule("remind", hours=1)
    ctx.reply("Booked")


@bot.state("confirm")
async def confirm(ctx: Context) -> None:
    ctx.contact.fields["reminders"] = ctx.text.strip().upper() == "YES"
    ctx.end()
    ctx.reply("ok")


@bot.timer("remind")
async def remind(ctx: Context) -> None:
    ctx.contact.fields["clinic"] = "reminded from a timer"


@bot.keyword("BAD")
async def bad(ctx: Context) -> None:
    ctx.contact.fields["visits"] = "many"


@bot.keyword("TYPO")
async def typo(ctx: Context) -> None:
    ctx.contact.fields["apointment_at"] = datetime(2026, 12, 10)


@bot.keyword("CRASH")
async def crash(ctx: Context) -> None:
    ctx.contact.name = "Never saved"
    raise RuntimeError("boom")


def harness(database: str, tmp_path: Path, **settings: object) -> Harness:
    return Harness(
        [bot], tmp_path, db=database, raise_errors=False, timezone="Australia/Sydney", **settings
    )


async def test_a_handler_changes_the_contact_and_the_ledger_says_which_bot(database, tmp_path):
    async with harness(database, tmp_path) as h:
        phone = h.phone(AU)
        assert not (await phone.contact()).stored
        await phone.send("NAME Ana")
        await phone.send("NAME Ana María")
        phone.expect("Thanks Ana María, visit 2")
        contact = await phone.contact()
        assert (contact.name, contact.fields["visits"]) == ("Ana María", 2)
        ledger = await h.runtime.store.contacts.ledger(AU)
        assert [(r["what"], r["old"], r["new"], r["source"], r["actor"]) for r in ledger] == [
            ("visits", "1", "2", "bot", "dental"),
            ("name", "Ana", "Ana María", "bot", "dental"),
            ("visits", None, "1", "bot", "dental"),
            ("name", None, "Ana", "bot", "dental"),
        ]


async def test_times_are_the_contacts_own_and_its_zone_comes_from_the_number(database, tmp_path):
    async with harness(database, tmp_path) as h:
        nz, au = h.phone(NZ), h.phone(AU)
        for phone in (nz, au):
            await phone.send("BOOK")
        # A New Zealand number is in Auckland; Australia has several zones, so an
        # Australian mobile is in BOTKIT_TIMEZONE's.
        assert (await nz.contact()).zone == AUCKLAND
        assert (await au.contact()).zone == SYDNEY
        assert (await nz.contact()).fields["appointment_at"] == datetime(
            2026, 12, 10, 14, 30, tzinfo=AUCKLAND
        )
        await nz.send("WHEN")
        nz.expect("Thu 10 Dec 14:30 NZDT")
        # Moved to Perth: the same instant, shown in the new zone.
        await nz.update_contact(timezone="Australia/Perth")
        await nz.send("WHEN")
        nz.expect("Thu 10 Dec 09:30 AWST")


async def test_a_state_and_a_timer_change_the_contact_too(database, tmp_path):
    async with harness(database, tmp_path) as h:
        phone = h.phone(AU)
        await phone.send("BOOK")
        await h.advance(hours=1)
        assert (await phone.contact()).fields["clinic"] == "reminded from a timer"
        await phone.send("yes")
        assert (await phone.contact()).fields["reminders"] is True


async def test_a_failed_handler_changes_nothing_and_bad_values_fail_it(database, tmp_path):
    async with harness(database, tmp_path) as h:
        phone = h.phone(AU)
        for text in ("CRASH", "BAD", "TYPO"):
            await phone.send(text)
        assert not (await phone.contact()).stored
        errors = await h.runtime.store.db.fetchall(
            "SELECT error FROM messages WHERE direction = 'mo' ORDER BY id"
        )
        assert "boom" in errors[0][0]
        assert "field 'visits': 'many' is a str, not a whole number" in errors[1][0]
        assert "no field 'apointment_at' is declared" in errors[2][0]
        assert "appointment_at" in errors[2][0]


async def test_the_contact_lists_what_it_is_subscribed_to(database, tmp_path):
    async with harness(database, tmp_path) as h:
        await h.runtime.store.lists.create("news")
        from botkit.messages import ConsentChange

        await h.runtime.store.consent.record(
            ConsentChange(AU, "4433", "opt-in", "web", list="news")
        )
        assert (await h.phone(AU).contact()).lists == ("news",)


@pytest.mark.parametrize(
    ("kind", "text", "value"),
    [
        ("text", " Newtown ", "Newtown"),
        ("number", "3", 3),
        ("number", "1,200", 1200),
        ("number", "-12,345.5", -12345.5),
        ("number", "2.50", 2.5),
        ("bool", "Yes", True),
        ("bool", "0", False),
        ("date", "2026-12-10", date(2026, 12, 10)),
        ("datetime", "2026-12-10 14:30", datetime(2026, 12, 10, 14, 30, tzinfo=SYDNEY)),
        (
            "datetime",
            "2026-12-10T14:30+13:00",
            datetime(2026, 12, 10, 1, 30, tzinfo=UTC),
        ),
        ("text", "  ", None),
    ],
)
def test_a_field_reads_text_as_its_kind(kind, text, value):
    assert Field("f", kind).parse(text, SYDNEY) == value


@pytest.mark.parametrize(
    ("kind", "text", "why"),
    [
        ("number", "three", "'three' is not a number"),
        ("number", "inf", "not a number"),
        # A decimal comma, or commas that do not part thousands: not read as 15 or 123.
        ("number", "1,5", "'1,5' is not a number"),
        ("number", "1,2,3", "'1,2,3' is not a number"),
        ("bool", "maybe", "is not yes or no"),
        ("date", "10/12/2026", "is not a date (YYYY-MM-DD)"),
        ("datetime", "tomorrow", "is not a date and time"),
        ("datetime", "2026-12-10", "is not a date and time (YYYY-MM-DD HH:MM)"),
        # Clocks skip 02:00-03:00 in Sydney on 2026-10-04: that time never happens.
        ("datetime", "2026-10-04 02:30", "does not exist in Australia/Sydney"),
        ("text", "x" * 1001, "is longer than 1000 characters"),
        ("text", "a\ud800", "holds half of a surrogate pair"),
        ("number", "9" * 400, "is not a finite number of at most 1.8e+308"),
        # Midnight of 1 January of year 1 in Sydney is in year 0 in UTC.
        ("datetime", "0001-01-01 00:00", "is outside the years 1 to 9999 in UTC"),
    ],
)
def test_a_field_refuses_text_it_cannot_read_and_says_why(kind, text, why):
    with pytest.raises(FieldError, match=re.escape(why)):
        Field("f", kind).parse(text, SYDNEY)


def test_declarations_are_checked_when_the_bots_load():
    with pytest.raises(FieldError, match="'Appointment' cannot name a field"):
        Bot("a", fields={"Appointment": date})
    with pytest.raises(FieldError, match="'name' cannot name a field"):
        Bot("a", fields={"name": str})
    with pytest.raises(FieldError, match="is not one of str, int"):
        Bot("a", fields={"x": list})
    with pytest.raises(FieldError, match="declared as date and as text"):
        Router([Bot("a", fields={"due": date}), Bot("b", fields={"due": str})])
    both = Router([Bot("a", fields={"due": date}), Bot("b", fields={"due": date})])
    assert both.fields == Fields([Field("due", "date")])


def test_language_codes_are_kept_lower_case_and_junk_is_refused():
    assert language_code("pt_BR") == "pt-br"
    assert language_code(" es ") == "es"
    for junk in ("../x", "e s", "english", ""):
        with pytest.raises(FieldError, match="is not a language code"):
            language_code(junk)


async def test_two_writers_of_one_contact_keep_each_others_changes(database, tmp_path):
    async with harness(database, tmp_path) as h:
        contacts = h.runtime.store.contacts
        first, second = await contacts.get(AU), await contacts.get(AU)
        first.name, second.language = "Ana", "es"
        first.fields["clinic"], second.fields["visits"] = "Newtown", 2
        await contacts.save(first, Author("api", "one"))
        await contacts.save(second, Author("api", "two"))
        both = await contacts.get(AU)
        assert (both.name, both.language, both.fields["clinic"], both.fields["visits"]) == (
            "Ana",
            "es",
            "Newtown",
            2,
        )


def test_a_declared_field_without_a_value_reads_as_none_in_templates_too(tmp_path):
    from botkit.contacts import Contact
    from botkit.templates import SMSTemplates

    contact = Contact(AU, declared=Router([bot]).fields, number_zone=SYDNEY)
    assert contact.fields["clinic"] is None and "clinic" not in contact.fields
    assert dict(contact.fields) == {}
    with pytest.raises(KeyError):
        contact.fields["nope"]
    (tmp_path / "t.txt").write_text('At {{ contact.fields.clinic or "our clinic" }}')
    assert SMSTemplates(tmp_path).render("t.txt", contact=contact) == "At our clinic"


async def test_the_ledger_says_what_a_change_replaced_as_stored_when_it_was_made(
    database, tmp_path
):
    """A handler reads its contact before it runs: the ledger line of its change names
    the value an operator set meanwhile, not the one the handler read; a change to what
    is stored already writes no line."""
    async with harness(database, tmp_path) as h:
        contacts = h.runtime.store.contacts
        named = await contacts.get(AU)
        named.name = "Ana"
        await contacts.save(named, Author("api", "one"))
        handler, operator = await contacts.get(AU), await contacts.get(AU)
        operator.name, operator.fields["clinic"] = "Ana María", "Newtown"
        await contacts.save(operator, Author("operator", "ops"))
        handler.name, handler.fields["clinic"] = "Annie", "Newtown"
        await contacts.save(handler, Author("bot", "dental"))
        lines = [tuple(row)[:5] for row in await contacts.ledger(AU)]
        assert lines == [
            ("name", "Ana María", "Annie", "bot", "dental"),
            ("clinic", None, "Newtown", "operator", "ops"),
            ("name", "Ana", "Ana María", "operator", "ops"),
            ("name", None, "Ana", "api", "one"),
        ]


def test_an_int_field_takes_whole_numbers_and_an_int_and_a_float_are_two_types():
    counted = Fields(Fields.declared({"visits": int, "weight": float}))
    assert counted["visits"].parse("1,200") == 1200
    with pytest.raises(FieldError, match=r"2\.5 is not a whole number"):
        counted["visits"].parse("2.5")
    with pytest.raises(FieldError, match="is a str, not a whole number"):
        counted["visits"].check("two")
    with pytest.raises(FieldError, match="is an int, not text"):
        Field("name_", "text").check(5)
    assert counted["weight"].parse("2.5") == 2.5
    with pytest.raises(FieldError, match="declared as whole number and as number"):
        Router([Bot("a", fields={"n": int}), Bot("b", fields={"n": float})])


@pytest.mark.parametrize("text", ["a\x00b", "Ana\u202emiT", "bell\x07", "del\x7f"])
def test_control_characters_are_refused_in_names_and_text(text):
    from botkit.contacts import Contact

    contact = Contact(AU, declared=Router([bot]).fields, number_zone=SYDNEY)
    with pytest.raises(FieldError, match="holds a control character"):
        contact.name = text
    with pytest.raises(FieldError, match="holds a control character"):
        contact.fields["clinic"] = text
    contact.fields["clinic"] = "Line one\nline two\ttabbed"  # not controls to refuse
