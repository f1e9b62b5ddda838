"""The dental clinic's two bots (bots/clinic.py and bots/promos.py), tested through
botkit.testing as their author would: interrupting keywords, a second conversation
beside a booking, a reminder at 9:00 Sydney time, on_end after STOP, and a failure."""

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
TUESDAY_9AM = datetime(2026, 1, 5, 22, 0, tzinfo=UTC)


async def pending(harness: Harness, thread_id: int) -> dict[str, datetime]:
    timers = await harness.runtime.store.timers.pending(thread_id)
    return {timer.name: timer.due_at for timer in timers}


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
        assert await pending(harness, offer.thread_id) == {
            "reminder": TUESDAY_9AM,
            "survey:visit": WEDNESDAY_10AM.replace(hour=1, day=7),  # noon in Sydney
        }


async def test_reschedule_and_unbook_interrupt_a_question(database):
    async with Harness(BOTS, TEMPLATES, db=database) as harness:
        phone = harness.phone()
        await phone.send("BOOK")
        await phone.send("RESCHEDULE")  # in the middle of the question: nothing to move
        phone.expect("You have no visit booked.")
        await phone.send("3")  # the question still waits
        phone.expect("Booked: Thursday 08 January")
        await phone.send("RESCHEDULE")
        phone.expect("We can see you:")
        await phone.send("UNBOOK")  # in the middle of the new question
        phone.expect("Your visit on Thursday 08 January is cancelled.")
        thread = await phone.thread()
        assert thread.status == "closed"
        assert await pending(harness, thread.id) == {}


async def test_book_interrupts_the_survey_after_a_visit(database):
    async with Harness(BOTS, TEMPLATES, db=database) as harness:
        phone = harness.phone()
        await phone.send("BOOK")
        await phone.send("1")
        await harness.advance(days=1)  # the survey, at noon on Tuesday
        phone.expect("How was your visit today")
        await phone.send("BOOK again please")  # not "please answer with a number"
        phone.expect("We can see you:")
        await phone.send("4")
        phone.expect("Please reply 1, 2 or 3.")  # the booking's question, not a rating


async def test_offers_leaves_the_booking_its_state_and_its_reminder(database):
    async with Harness(BOTS, TEMPLATES, db=database) as harness:
        phone = harness.phone()
        await phone.send("BOOK")
        (booked,) = await phone.send("2")
        booking = await harness.runtime.store.threads.get(booked.thread_id)

        (confirm,) = await phone.send("OFFERS")  # the promotions bot: its own thread
        assert confirm.thread_id != booked.thread_id
        await phone.send("yes")
        phone.expect("Thanks! You'll get our offers.")
        assert await harness.runtime.store.lists.is_subscribed("offers", phone.number)

        kept = await harness.runtime.store.threads.get(booked.thread_id)
        assert (kept.status, kept.state, kept.data) == ("open", None, booking.data)
        assert (await pending(harness, booked.thread_id))["reminder"] == TUESDAY_9AM

        await harness.advance(hours=12, minutes=59)  # 8:59 on Tuesday in Sydney
        assert not phone.last.text.startswith("Reminder")
        await harness.advance(minutes=1)
        reminder = phone.expect("Reminder: your dental visit is tomorrow, Wednesday at 10:00am.")
        assert reminder.thread_id == booked.thread_id


async def test_stop_with_a_visit_booked_tells_the_clinic(database, caplog):
    caplog.set_level(logging.WARNING, logger="clinic")
    async with Harness(BOTS, TEMPLATES, db=database) as harness:
        phone = harness.phone()
        await phone.send("BOOK")
        (booked,) = await phone.send("2")
        await phone.send("STOP")
        phone.expect("You have been unsubscribed")
        thread = await harness.runtime.store.threads.get(booked.thread_id)
        assert thread.status == "closed"
        assert thread.data["opted_out_before_visit"] is True
        assert f"patient {phone.number} opted out with a visit booked" in caplog.text
        await harness.advance(days=3)  # no reminder, no survey: the thread ended
        phone.expect("You have been unsubscribed")


def broken_booked(tmp_path: Path, text: str) -> Path:
    """The example templates, with clinic/booked.txt as `text`."""
    templates = tmp_path / "templates"
    shutil.copytree(TEMPLATES, templates)
    (templates / "clinic" / "booked.txt").write_text(text)
    return templates


async def book_the_first_visit(phone: Phone) -> SentReply:
    """BOOK, then 1: the reply to the pick."""
    await phone.send("BOOK")
    (reply,) = await phone.send("1")
    return reply


async def test_a_broken_template_gets_the_patient_an_apology(database, tmp_path):
    templates = broken_booked(tmp_path, "Booked with {{ dentist.name }}.\n")
    async with Harness(BOTS, templates, db=database, raise_errors=False) as harness:
        phone = harness.phone()
        apology = await book_the_first_visit(phone)
        assert apology.template == "errors/failed.txt"
        assert apology.text.startswith("this service: sorry, something went wrong")
        error = await harness.runtime.store.db.fetchval(
            "SELECT error FROM messages WHERE direction = 'mo' AND status = 'failed'"
        )
        assert "dentist" in error
        assert (await phone.thread()).state == "pick"  # the booking was not half made


async def test_the_failure_shows_in_the_dashboard(database, tmp_path):
    templates = broken_booked(tmp_path, "Booked <b>{{ dentist.name }}</b>.\n")
    async with Harness(BOTS, templates, db=database, raise_errors=False) as harness:
        apology = await book_the_first_visit(harness.phone())
        transport = httpx.ASGITransport(app=harness.app, client=("127.0.0.1", 1234))
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as c:
            page = await c.get(f"/dashboard/threads/{apology.thread_id}")
            listed = await c.get("/dashboard/", params={"failed": "1"})
    assert '<span class="badge failed">failed</span>' in page.text
    assert "clinic/booked.txt, line 1: &#39;dentist&#39; is undefined" in page.text
    assert f"/dashboard/threads/{apology.thread_id}" in listed.text
