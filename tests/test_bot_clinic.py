"""The dental clinic's two bots (bots/clinic.py and bots/promos.py), tested through
botkit.testing as their author would: the booking kept on the contact, its campaign (a
reminder at 9:00 the patient's time the day before, a survey after) moved and cancelled
with it, English and Spanish, interrupting keywords, a second conversation beside a
booking, on_end after STOP, and a failure."""

from __future__ import annotations

import logging
import shutil
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from conftest import ROOT

from botkit.testing import Harness, Phone, SentReply

pytestmark = pytest.mark.backends

BOTS, TEMPLATES = ROOT / "bots", ROOT / "templates"
# The harness's clock starts at 2026-01-05 09:00 UTC: Monday 8pm in Sydney (AEDT, +11).
# The visits offered are Tue 6, Wed 7 and Thu 8 January at 10am.
WEDNESDAY_10AM = datetime(2026, 1, 6, 23, 0, tzinfo=UTC)
# Wednesday's visit: its reminder at 9:00 on Tuesday, its survey at noon on Wednesday.
TUESDAY_9AM = datetime(2026, 1, 5, 22, 0, tzinfo=UTC)
WEDNESDAY_NOON = datetime(2026, 1, 7, 1, 0, tzinfo=UTC)
REMINDER, SURVEY = "campaign:visits:0", "campaign:visits:1"
ASKED = "How was your visit, from 1 (poor) to 5 (great)?"


async def events(phone: Phone) -> list[tuple[str, datetime]]:
    """The patient's pending campaign events: name and when, soonest first."""
    return [(event.name, event.due_at) for event in await phone.campaign_events()]


def sent(phone: Phone, start: str) -> list[SentReply]:
    """The replies the phone got that start with `start`."""
    return [reply for reply in phone.replies if reply.text.startswith(start)]


async def book(phone: Phone, choice: str) -> SentReply:
    """BOOK, then `choice`: the reply to the pick."""
    await phone.send("BOOK")
    (reply,) = await phone.send(choice)
    return reply


async def test_book_offers_three_visits_and_books_the_one_picked(database):
    async with Harness(BOTS, TEMPLATES, db=database) as harness:
        phone = harness.phone()
        (offer,) = await phone.send("book")
        assert offer.text == (
            "We can see you:\n1: Tue 06 Jan at 10:00am\n2: Wed 07 Jan at 10:00am\n"
            "3: Thu 08 Jan at 10:00am\nReply with the number of the visit you want."
        )
        await phone.send("tomorrow?")
        phone.expect("Please reply 1, 2 or 3.")
        await phone.send("2")
        phone.expect("Booked: Wednesday 07 January at 10:00am.")
        assert (await phone.contact()).fields["appointment_at"] == WEDNESDAY_10AM
        assert (await phone.thread()).data == {"offered": [
            "2026-01-06T10:00:00+11:00", "2026-01-07T10:00:00+11:00", "2026-01-08T10:00:00+11:00"
        ]}  # fmt: skip
        assert await events(phone) == [(REMINDER, TUESDAY_9AM), (SURVEY, WEDNESDAY_NOON)]


async def test_the_reminder_and_the_survey_come_once_at_their_time(database):
    async with Harness(BOTS, TEMPLATES, db=database) as harness:
        phone = harness.phone()
        await book(phone, "2")
        await harness.advance(hours=12, minutes=59)  # 8:59 on Tuesday in Sydney
        assert sent(phone, "Reminder") == []
        await harness.advance(minutes=1)
        reminder = phone.expect(
            "Reminder: your dental visit is tomorrow, Wednesday at 10:00am. "
            "Text RESCHEDULE to change it or UNBOOK to cancel."
        )
        assert (await harness.runtime.store.threads.get(reminder.thread_id)).status == "closed"
        await harness.advance(days=1, hours=2, minutes=59)  # 11:59 on Wednesday
        assert sent(phone, ASKED) == []
        await harness.advance(minutes=1)
        phone.expect(ASKED)
        await phone.send("5")
        phone.expect("Thank you for telling us. See you next time!")
        await harness.advance(days=30)
        assert (len(sent(phone, "Reminder")), len(sent(phone, ASKED))) == (1, 1)
        assert await events(phone) == []


async def test_the_clinics_crm_is_told_by_webhook(database):
    """As botkit.toml would subscribe it: the visit's events, the survey's answers, and
    an opt-out, each signed (the harness checks every signature)."""
    crm = {
        "webhook_url": "https://crm.clinic.example/botkit",
        "webhook_secret": "whsec_clinic-crm-0123456789",
        "webhook_events": "campaign.fired,survey.completed,contact.opted_out",
    }
    async with Harness(BOTS, TEMPLATES, db=database, **crm) as harness:
        phone = harness.phone()
        await book(phone, "2")
        await harness.advance(days=1, hours=16)  # Wednesday at noon: reminder and survey
        await phone.send("5")
        await phone.send("STOP")
        told = [(hook.type, hook.data) for hook in harness.webhooks]
        assert [(kind, data.get("campaign"), data.get("event")) for kind, data in told] == [
            ("campaign.fired", "visits", 0),
            ("campaign.fired", "visits", 1),
            ("survey.completed", None, None),
            ("contact.opted_out", None, None),
        ]
        assert told[2][1]["answers"] == {"rating": 5}
        assert {data["handset"] for _, data in told} == {phone.number}


async def test_the_reminder_goes_at_nine_the_patients_time_with_the_clinics_time(database):
    async with Harness(BOTS, TEMPLATES, db=database) as harness:
        phone = harness.phone()
        await phone.update_contact(timezone="Australia/Perth")  # three hours behind Sydney
        await book(phone, "2")
        assert await events(phone) == [
            (REMINDER, datetime(2026, 1, 6, 1, 0, tzinfo=UTC)),  # 9:00 on Tuesday in Perth
            (SURVEY, WEDNESDAY_NOON),  # two hours after the visit, wherever the patient is
        ]
        await harness.advance(hours=16)  # 9:00 on Tuesday in Perth
        phone.expect("Reminder: your dental visit is tomorrow, Wednesday at 10:00am.")


async def test_reschedule_and_unbook_interrupt_a_question(database):
    async with Harness(BOTS, TEMPLATES, db=database) as harness:
        phone = harness.phone()
        await phone.send("BOOK")
        await phone.send("RESCHEDULE")  # in the middle of the question: nothing to move
        phone.expect("You have no visit booked.")
        await phone.send("3")  # the question still waits
        phone.expect("Booked: Thursday 08 January")
        planned = await events(phone)
        await phone.send("RESCHEDULE")
        phone.expect("We can see you:")
        assert await events(phone) == planned  # they stand until a new visit is picked
        await phone.send("UNBOOK")  # in the middle of the new question
        phone.expect("Your visit on Thursday 08 January is cancelled.")
        thread = await phone.thread()
        assert thread.status == "closed"
        assert "appointment_at" not in (await phone.contact()).fields
        assert await events(phone) == []


async def test_rescheduling_moves_the_reminder_and_the_survey(database):
    async with Harness(BOTS, TEMPLATES, db=database) as harness:
        phone = harness.phone()
        await book(phone, "3")
        await phone.send("RESCHEDULE")
        await phone.send("2")
        phone.expect("Booked: Wednesday 07 January")
        assert await events(phone) == [(REMINDER, TUESDAY_9AM), (SURVEY, WEDNESDAY_NOON)]
        await harness.advance(days=5)
        assert [reply.text for reply in sent(phone, "Reminder")] == [
            "Reminder: your dental visit is tomorrow, Wednesday at 10:00am. "
            "Text RESCHEDULE to change it or UNBOOK to cancel."
        ]
        assert len(sent(phone, ASKED)) == 1


async def test_unbook_cancels_the_reminder_and_the_survey(database):
    async with Harness(BOTS, TEMPLATES, db=database) as harness:
        phone = harness.phone()
        await book(phone, "2")
        await phone.send("UNBOOK")
        phone.expect("Your visit on Wednesday 07 January is cancelled. Text BOOK to make")
        assert await events(phone) == []
        await harness.advance(days=3)
        assert sent(phone, "Reminder") == sent(phone, ASKED) == []
        await phone.send("UNBOOK")
        phone.expect("You have no visit booked. Text BOOK to make one.")


async def test_an_appointment_set_by_the_api_gets_the_reminder_too(database):
    async with Harness(BOTS, TEMPLATES, db=database) as harness:
        phone = harness.phone()
        # As an import or the API sets it: the contact's time (Sydney, for this number).
        await phone.update_contact(fields={"appointment_at": "2026-01-07 10:00"})
        assert await events(phone) == [(REMINDER, TUESDAY_9AM), (SURVEY, WEDNESDAY_NOON)]
        await harness.advance(hours=13)
        phone.expect("Reminder: your dental visit is tomorrow, Wednesday at 10:00am.")
        await phone.send("RESCHEDULE")  # it is a booking like one made by text
        phone.expect("We can see you:\n1: Wed 07 Jan at 10:00am\n2: Thu 08 Jan")
        await phone.send("2")
        phone.expect("Booked: Thursday 08 January at 10:00am.")
        assert [name for name, _ in await events(phone)] == [REMINDER, SURVEY]


async def test_a_spanish_patient_gets_every_text_in_spanish(database):
    async with Harness(BOTS, TEMPLATES, db=database) as harness:
        phone = harness.phone(language="es")
        (offer,) = await phone.send("CITA")  # BOOK, in Spanish
        assert (offer.template, offer.text) == (
            "clinic/offer.es.txt",
            "Podemos atenderle:\n1: mar 6 ene a las 10:00\n2: mié 7 ene a las 10:00\n"
            "3: jue 8 ene a las 10:00\nResponda con el número de la cita que quiera.",
        )
        await phone.send("mañana")
        phone.expect("Responda 1, 2 o 3.")
        await phone.send("3")
        phone.expect("Cita reservada: jueves 8 de enero a las 10:00. Se la recordaremos")
        await phone.send("CAMBIAR")  # RESCHEDULE
        phone.expect("Podemos atenderle:")
        await phone.send("2")
        phone.expect("Cita reservada: miércoles 7 de enero a las 10:00.")
        await harness.advance(hours=13)
        phone.expect(
            "Recordatorio: su cita en el dentista es mañana, miércoles, a las 10:00. "
            "Escriba CAMBIAR para cambiarla o ANULAR para anularla."
        )
        await harness.advance(days=1, hours=3)  # noon on Wednesday: the survey
        phone.expect("¿Qué tal fue su visita, del 1 (mal) al 5 (muy bien)?")
        await phone.send("bien")
        phone.expect("Responda con un número del 1 al 5.\n¿Qué tal fue su visita")
        await phone.send("2")
        phone.expect("Lo sentimos. ¿Qué podríamos mejorar?")
        await phone.send("La espera")
        phone.expect("Gracias por contárnoslo. ¡Hasta la próxima!")
        await phone.send("STOP")
        phone.expect("Ha dejado de recibir mensajes de")


async def test_espanol_and_english_choose_the_language_at_once(database):
    async with Harness(BOTS, TEMPLATES, db=database) as harness:
        phone = harness.phone()
        await phone.send("BOOK")
        # In the middle of the question: the answer, and the question again, in Spanish.
        language, offer = await phone.send("Español")
        assert language.text == (
            "Le escribiremos en español. Escriba ENGLISH para recibir los mensajes en inglés."
        )
        assert offer.template == "clinic/offer.es.txt"
        assert (await phone.contact()).language == "es"
        await phone.send("2")
        phone.expect("Cita reservada: miércoles 7 de enero")
        await phone.send("ENGLISH")
        phone.expect("We'll text you in English. Text ESPAÑOL for Spanish.")
        assert (await phone.contact()).language is None
        await harness.advance(hours=13)
        phone.expect("Reminder: your dental visit is tomorrow, Wednesday at 10:00am.")
        (again,) = await phone.send("espanol")  # without the tilde too
        assert again.template == "clinic/language.es.txt"
        await phone.send("ANULAR")  # UNBOOK
        phone.expect(
            "Su cita del miércoles 7 de enero queda anulada. Escriba CITA para pedir otra."
        )


async def test_book_interrupts_the_survey_after_a_visit(database):
    async with Harness(BOTS, TEMPLATES, db=database) as harness:
        phone = harness.phone()
        await book(phone, "1")
        await harness.advance(days=1)  # the survey, at noon on Tuesday
        phone.expect(ASKED)
        await phone.send("BOOK again please")  # not "please answer with a number"
        phone.expect("We can see you:")
        await phone.send("4")
        phone.expect("Please reply 1, 2 or 3.")  # the booking's question, not a rating


async def test_offers_leaves_the_booking_its_state_and_its_reminder(database):
    async with Harness(BOTS, TEMPLATES, db=database) as harness:
        phone = harness.phone()
        booked = await book(phone, "2")
        booking = await harness.runtime.store.threads.get(booked.thread_id)

        (confirm,) = await phone.send("OFFERS")  # the promotions bot: its own thread
        assert confirm.thread_id != booked.thread_id
        await phone.send("yes")
        phone.expect("Thanks! You'll get our offers.")
        assert await harness.runtime.store.lists.is_subscribed("offers", phone.number)

        kept = await harness.runtime.store.threads.get(booked.thread_id)
        assert (kept.status, kept.state, kept.data) == ("open", None, booking.data)
        assert (await events(phone))[0] == (REMINDER, TUESDAY_9AM)
        await harness.advance(hours=13)
        phone.expect("Reminder: your dental visit is tomorrow, Wednesday at 10:00am.")


async def test_stop_with_a_visit_booked_tells_the_clinic(database, caplog):
    caplog.set_level(logging.WARNING, logger="clinic")
    async with Harness(BOTS, TEMPLATES, db=database) as harness:
        phone = harness.phone()
        booked = await book(phone, "2")
        await phone.send("STOP")
        phone.expect("You have been unsubscribed")
        thread = await harness.runtime.store.threads.get(booked.thread_id)
        assert thread.status == "closed"
        assert thread.data["opted_out_before_visit"] is True
        assert (
            f"patient {phone.number} opted out with a visit booked for "
            "2026-01-07T10:00:00+11:00: call them"
        ) in caplog.text
        assert await events(phone) == []  # no reminder, no survey
        assert (await phone.contact()).fields["appointment_at"] == WEDNESDAY_10AM
        await harness.advance(days=3)
        phone.expect("You have been unsubscribed")


def broken_booked(tmp_path: Path, text: str) -> Path:
    """The example templates, with clinic/booked.txt as `text`."""
    templates = tmp_path / "templates"
    shutil.copytree(TEMPLATES, templates)
    (templates / "clinic" / "booked.txt").write_text(text)
    return templates


async def test_a_broken_template_gets_the_patient_an_apology(database, tmp_path):
    templates = broken_booked(tmp_path, "Booked with {{ dentist.name }}.\n")
    async with Harness(BOTS, templates, db=database, raise_errors=False) as harness:
        phone = harness.phone()
        apology = await book(phone, "1")
        assert apology.template == "errors/failed.txt"
        assert apology.text.startswith("this service: sorry, something went wrong")
        error = await harness.runtime.store.db.fetchval(
            "SELECT error FROM messages WHERE direction = 'mo' AND status = 'failed'"
        )
        assert "dentist" in error
        assert (await phone.thread()).state == "pick"  # the booking was not half made
        assert "appointment_at" not in (await phone.contact()).fields
        assert await events(phone) == []


async def test_the_failure_shows_in_the_dashboard(database, tmp_path):
    templates = broken_booked(tmp_path, "Booked <b>{{ dentist.name }}</b>.\n")
    async with Harness(BOTS, templates, db=database, raise_errors=False) as harness:
        apology = await book(harness.phone(), "1")
        transport = httpx.ASGITransport(app=harness.app, client=("127.0.0.1", 1234))
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as c:
            page = await c.get(f"/dashboard/threads/{apology.thread_id}")
            listed = await c.get("/dashboard/", params={"failed": "1"})
    assert '<span class="badge failed">failed</span>' in page.text
    assert "clinic/booked.txt, line 1: &#39;dentist&#39; is undefined" in page.text
    assert f"/dashboard/threads/{apology.thread_id}" in listed.text
