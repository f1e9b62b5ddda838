"""Campaigns: events timed from a contact's date field, in the contact's zone, each fired
once; moved when the field changes, cancelled when it is cleared or the contact opts
out, never scheduled for a time already past. On both backends."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from postgres import drop_database, fresh_database

from botkit import Bot, Context
from botkit.addresses import OurNumbers
from botkit.campaign import Campaign, sending_from
from botkit.db import Database
from botkit.migrations import migrate
from botkit.router import Router
from botkit.store import Effects, Store
from botkit.store.campaigns import progressed, replan
from botkit.store.contacts import Author
from botkit.testing import FakeClock, Harness

pytestmark = pytest.mark.backends

AU, NZ = "+61400000001", "+64211234567"
SYDNEY, AUCKLAND = ZoneInfo("Australia/Sydney"), ZoneInfo("Pacific/Auckland")
# Monday 7 December 2026, 09:00 in Sydney.
START = datetime(2026, 12, 7, 9, 0, tzinfo=SYDNEY)


async def aftercare(ctx: Context) -> None:
    ctx.reply(f"How are you feeling after your visit, {ctx.contact.name}?")
    ctx.state = "feeling"


def dental(aftercare_hours: float = 2) -> Bot:
    bot = Bot("dental", fields={"appointment_at": datetime})

    @bot.state("feeling")
    async def feeling(ctx: Context) -> None:
        ctx.reply("Thanks, noted.")
        ctx.end()

    (
        Campaign("appointments", field="appointment_at", quiet_hours="21:00-08:00")
        .event(days=-1, at="09:00", template="dental/reminder.txt")
        .event(hours=aftercare_hours, start=aftercare)
        .attach(bot)
    )
    return bot


@pytest.fixture
def templates(tmp_path: Path) -> Path:
    (tmp_path / "dental").mkdir()
    (tmp_path / "dental" / "reminder.txt").write_text(
        "Hi {{ contact.name }}, see you tomorrow at "
        "{{ contact.fields.appointment_at.strftime('%H:%M') }}. Reply STOP to opt out."
    )
    return tmp_path


def harness(database: str, templates: Path) -> Harness:
    return Harness(
        [dental()], templates, db=database, clock=FakeClock(START), timezone="Australia/Sydney"
    )


@contextlib.asynccontextmanager
async def planning(database: str, bot: Bot) -> AsyncIterator[Store]:
    """A store on `database` that plans `bot`'s campaigns as contacts are saved, as the
    runtime sets one up."""
    db = await Database.open(database)
    try:
        await migrate(db)
        store = Store(db, FakeClock(START))
        router = Router([bot])
        store.contacts.fields = router.fields
        numbers = OurNumbers(["4433"], message_class="x")
        store.contacts.campaigns = sending_from(router.campaigns, numbers)
        yield store
    finally:
        await db.close()


async def test_events_fire_once_in_the_contacts_zone(database, templates):
    async with harness(database, templates) as h:
        au, nz = h.phone(AU), h.phone(NZ)
        # Thursday 10 December at 14:30, each in their own zone.
        for phone in (au, nz):
            await phone.update_contact(name="Ana", fields={"appointment_at": "2026-12-10 14:30"})
        events = await au.campaign_events()
        assert [(e.name, e.due_at.astimezone(SYDNEY)) for e in events] == [
            ("campaign:appointments:0", datetime(2026, 12, 9, 9, 0, tzinfo=SYDNEY)),
            ("campaign:appointments:1", datetime(2026, 12, 10, 16, 30, tzinfo=SYDNEY)),
        ]
        (first, _) = await nz.campaign_events()
        assert first.due_at == datetime(2026, 12, 9, 9, 0, tzinfo=AUCKLAND)
        # Auckland's 09:00 on the 9th comes two hours before Sydney's.
        await h.advance(days=1, hours=22)
        assert [r.text for r in nz.replies] == [
            "Hi Ana, see you tomorrow at 14:30. Reply STOP to opt out."
        ]
        assert au.replies == []
        await h.advance(hours=2)
        au.expect("see you tomorrow at 14:30")
        # The day after: the aftercare flow starts in a conversation of its own.
        await h.advance(days=1, hours=8)
        au.expect("How are you feeling after your visit, Ana?")
        await au.send("Much better")
        au.expect("Thanks, noted.")
        await h.advance(days=30)
        assert (len(au.replies), len(nz.replies)) == (3, 2)  # each event once
        assert await au.campaign_events() == []


async def test_a_change_moves_the_events_and_clearing_cancels_them(database, templates):
    async with harness(database, templates) as h:
        phone = h.phone(AU)
        await phone.update_contact(fields={"appointment_at": "2026-12-10 14:30"})
        await phone.update_contact(fields={"appointment_at": "2026-12-17 10:00"})
        assert [e.due_at.astimezone(SYDNEY) for e in await phone.campaign_events()] == [
            datetime(2026, 12, 16, 9, 0, tzinfo=SYDNEY),
            datetime(2026, 12, 17, 12, 0, tzinfo=SYDNEY),
        ]
        await h.advance(days=4)  # past the old dates: nothing fires for them
        assert phone.replies == []
        await phone.update_contact(fields={"appointment_at": None})
        assert await phone.campaign_events() == []
        await h.advance(days=30)
        assert phone.replies == []


async def test_a_time_already_past_schedules_nothing_and_quiet_hours_wait(database, templates):
    async with harness(database, templates) as h:
        phone = h.phone(AU)
        # Tomorrow at 07:00: its reminder (today at 09:00, now) has passed; the
        # aftercare, tomorrow at 09:00, is to come.
        await phone.update_contact(fields={"appointment_at": "2026-12-08 07:00"})
        assert [e.name for e in await phone.campaign_events()] == ["campaign:appointments:1"]
        # The aftercare of an appointment at 20:00 would be at 22:00: it waits for 08:00.
        await phone.update_contact(fields={"appointment_at": "2026-12-09 20:00"})
        (_, aftercare) = await phone.campaign_events()
        assert aftercare.due_at == datetime(2026, 12, 10, 8, 0, tzinfo=SYDNEY)


async def test_an_opt_out_cancels_and_no_event_fires_after_it(database, templates):
    async with harness(database, templates) as h:
        phone = h.phone(AU)
        await phone.update_contact(fields={"appointment_at": "2026-12-10 14:30"})
        await phone.send("STOP")
        assert await phone.campaign_events() == []
        # Changing the date while opted out schedules nothing either.
        await phone.update_contact(fields={"appointment_at": "2026-12-11 14:30"})
        assert await phone.campaign_events() == []
        await h.advance(days=10)
        assert [r.text for r in phone.replies][1:] == []


async def test_an_event_that_fired_does_not_fire_again_when_its_time_moves(database, templates):
    async with harness(database, templates) as h:
        phone = h.phone(AU)
        await phone.update_contact(fields={"appointment_at": "2026-12-10 14:30"})
        await h.advance(days=2, minutes=30)  # the reminder went at 09:00 on the 9th
        phone.expect("see you tomorrow")
        # Moved to Perth, the reminder's 09:00 the day before is three hours later, still
        # to come; it went already, for this appointment: it is not sent again.
        await phone.update_contact(timezone="Australia/Perth")
        assert [e.name for e in await phone.campaign_events()] == ["campaign:appointments:1"]
        await h.advance(hours=6)
        assert len(phone.replies) == 1
        # A new appointment is a new reminder.
        await phone.update_contact(fields={"appointment_at": "2026-12-20 14:30"})
        await h.advance(days=12)
        assert [r.template for r in phone.replies].count("dental/reminder.txt") == 2


async def test_events_follow_the_date_as_stored_when_a_contact_read_before_it_is_saved(
    database,
):
    """A handler reads its contact before it runs: an operator who moves the date
    meanwhile, then the handler's change of the time zone, leave the events on the new
    date, not on the one the handler read."""
    async with planning(database, dental()) as store:
        booked = await store.contacts.get(AU)
        booked.fields["appointment_at"] = datetime(2026, 12, 10, 14, 30)
        await store.contacts.save(booked, Author("api", "test"))
        handler = await store.contacts.get(AU)
        operator = await store.contacts.get(AU)
        operator.fields["appointment_at"] = datetime(2026, 12, 17, 14, 30)
        await store.contacts.save(operator, Author("operator", "ops"))
        handler.timezone = "Australia/Melbourne"
        await store.contacts.save(handler, Author("bot", "dental"))
        events = await store.timers.campaign_events(AU)
        assert [e.due_at.astimezone(SYDNEY) for e in events] == [
            datetime(2026, 12, 16, 9, 0, tzinfo=SYDNEY),
            datetime(2026, 12, 17, 16, 30, tzinfo=SYDNEY),
        ]


async def test_a_date_fields_events_keep_the_wall_clock_across_daylight_saving(database):
    """A date's events count days on the wall clock from its midnight, as a time's do:
    a week before a date after the clocks go forward is that midnight, not 23:00 the
    day before; a date whose midnight the clocks skip (Chile) is planned, not refused."""
    bot = Bot("clinic", fields={"visit_on": date})
    (
        Campaign("visits", field="visit_on")
        .event(days=-7, template="clinic/week.txt")
        .event(days=-1, at="09:00", template="clinic/eve.txt")
        .attach(bot)
    )
    async with planning(database, bot) as store:
        santiago = ZoneInfo("America/Santiago")
        # Sydney's clocks go forward on 3 October 2027; Santiago's skip 5 September's
        # midnight.
        for handset, zone, day in ((AU, SYDNEY, 9), (NZ, santiago, 5)):
            contact = await store.contacts.get(handset)
            contact.timezone = zone.key
            contact.fields["visit_on"] = date(2027, 10 if zone is SYDNEY else 9, day)
            await store.contacts.save(contact, Author("api", "test"))
        assert [e.due_at.astimezone(SYDNEY) for e in await store.timers.campaign_events(AU)] == [
            datetime(2027, 10, 2, 0, 0, tzinfo=SYDNEY),
            datetime(2027, 10, 8, 9, 0, tzinfo=SYDNEY),
        ]
        week, eve = await store.timers.campaign_events(NZ)
        assert eve.due_at == datetime(2027, 9, 4, 9, 0, tzinfo=santiago)
        assert week.due_at == datetime(2027, 8, 29, 0, 0, tzinfo=santiago)


async def test_an_event_past_the_end_of_the_calendar_is_not_planned(database):
    """9999-12-31 (a date some systems write for "never"): an event after it has no
    time, and is left out; the contact is saved, with the events before it."""
    async with planning(database, dental()) as store:
        contact = await store.contacts.get(AU)
        contact.fields["appointment_at"] = datetime(9999, 12, 31, 23, 0)
        await store.contacts.save(contact, Author("api", "test"))
        (reminder,) = await store.timers.campaign_events(AU)
        assert reminder.due_at == datetime(9999, 12, 30, 9, 0, tzinfo=SYDNEY)


async def test_an_event_due_while_the_app_was_down_fires_when_a_change_replans_it(
    database, templates
):
    """A deploy that changes a campaign plans every contact's events anew at start-up:
    one that came due while the app was down still fires (once), for the same date."""
    clock = FakeClock(START)
    async with Harness([dental()], templates, db=database, clock=clock) as h:
        await h.phone(AU).update_contact(name="Ana", fields={"appointment_at": "2026-12-10 14:30"})
    clock.advance(days=2, minutes=30)  # down over the reminder, 09:00 on the 9th
    async with Harness([dental(aftercare_hours=3)], templates, db=database, clock=clock) as h:
        phone = h.phone(AU)
        await h.advance()  # its timers fire, and its phones see what they sent
        phone.expect("Hi Ana, see you tomorrow at 14:30.")
        (moved,) = await phone.campaign_events()
        assert moved.due_at == datetime(2026, 12, 10, 17, 30, tzinfo=SYDNEY)
        await h.advance(days=1, hours=12)
        assert [r.template for r in phone.replies].count("dental/reminder.txt") == 1


async def test_an_event_fired_late_in_quiet_hours_waits_for_their_end(database, templates):
    """An event due before the quiet hours that comes to fire in them (the app was down,
    or busy) waits for their end, then fires once."""
    async with harness(database, templates) as h:
        phone = h.phone(AU)
        # The aftercare of a visit at 18:30 is due at 20:30, before the 21:00 quiet.
        await phone.update_contact(name="Ana", fields={"appointment_at": "2026-12-07 18:30"})
        await h.advance(hours=14)  # 23:00: nothing ran since 09:00
        assert phone.replies == []
        (waiting,) = await phone.campaign_events()
        assert waiting.due_at == datetime(2026, 12, 8, 8, 0, tzinfo=SYDNEY)
        await h.advance(hours=9)
        phone.expect("How are you feeling after your visit, Ana?")
        assert len(phone.replies) == 1 and await phone.campaign_events() == []


def test_a_campaign_needs_a_date_field_and_a_unique_name():
    bot = Bot("a", fields={"seen": str})
    Campaign("c", field="seen").event(days=1, template="a/x.txt").attach(bot)
    with pytest.raises(ValueError, match="field 'seen' must be declared as a date or datetime"):
        Router([bot])
    with pytest.raises(ValueError, match="sends a template or starts a flow"):
        Campaign("c", field="seen").event(days=1)
    with pytest.raises(ValueError, match="at a time of day moves by days"):
        Campaign("c", field="seen").event(hours=1, at="09:00", template="a/x.txt")
    with pytest.raises(ValueError, match="use lower-case letters"):
        Campaign("Appointments!", field="seen")


async def test_processes_on_one_database_plan_and_fire_each_event_once(postgres):
    """Three "processes" change the same contacts at once and plan at start-up at once:
    each contact has one pending event of each kind, and each fires in one of them."""
    url = await fresh_database(postgres)
    clock = FakeClock(START)
    dbs = [await Database.open(url) for _ in range(3)]
    try:
        await migrate(dbs[0])
        router = Router([dental()])
        campaigns = sending_from(router.campaigns, OurNumbers(["4433"], message_class="x"))
        stores = [Store(db, clock) for db in dbs]
        for store in stores:
            store.contacts.fields, store.contacts.campaigns = router.fields, campaigns
        handsets = [f"+6140000{n:04d}" for n in range(20)]

        async def book(store: Store, day: int) -> None:
            for handset in handsets:
                contact = await store.contacts.get(handset)
                contact.fields["appointment_at"] = datetime(2026, 12, day, 14, 30)
                await store.contacts.save(contact, Author("api", "test"))

        await asyncio.gather(*(book(store, 10 + n) for n, store in enumerate(stores)))
        await asyncio.gather(*(store.contacts.plan_campaigns(batch=7) for store in stores))
        rows = await dbs[0].fetchall(
            """SELECT handset, name, count(*) AS n FROM timers WHERE state = 'pending'
               GROUP BY handset, name"""
        )
        assert len(rows) == 2 * len(handsets) and {row["n"] for row in rows} == {1}
        clock.advance(days=30)
        fired: list[int] = []
        while claims := await asyncio.gather(*(s.timers.claim(50, lease=60) for s in stores)):
            if not any(claims):
                break
            for store, claimed in zip(stores, claims, strict=True):
                for timer in claimed:
                    await store.timers.finish(timer, Effects(None))
                    fired.append(timer.id)
        assert len(fired) == len(set(fired)) == 2 * len(handsets)
    finally:
        for db in dbs:
            await db.close()
        await drop_database(postgres, url)


async def test_a_campaign_new_or_changed_is_planned_for_its_contacts_at_start_up(
    database, templates
):
    plain = Bot("dental", fields={"appointment_at": datetime})
    clock = FakeClock(START)
    async with Harness([plain], templates, db=database, clock=clock) as h:
        await h.phone(AU).update_contact(fields={"appointment_at": "2026-12-10 14:30"})
        assert await h.phone(AU).campaign_events() == []
    async with Harness([dental()], templates, db=database, clock=clock) as h:
        planned = await h.phone(AU).campaign_events()
        assert [e.name for e in planned] == ["campaign:appointments:0", "campaign:appointments:1"]
    async with Harness([dental()], templates, db=database, clock=clock) as h:
        # The same campaign: left as it was planned.
        assert await h.phone(AU).campaign_events() == planned
    changed = Bot("dental", fields={"appointment_at": datetime})
    Campaign("appointments", field="appointment_at").event(
        days=-2, at="10:00", template="dental/reminder.txt"
    ).attach(changed)
    async with Harness([changed], templates, db=database, clock=clock) as h:
        (event,) = await h.phone(AU).campaign_events()
        assert event.due_at == datetime(2026, 12, 8, 10, 0, tzinfo=SYDNEY)


async def test_a_fired_event_is_told_to_the_webhooks_once(database, templates):
    async with Harness(
        [dental()],
        templates,
        db=database,
        clock=FakeClock(START),
        timezone="Australia/Sydney",
        webhook_url="https://crm.example/hooks",
        webhook_secret="whsec_0123456789abcdef",
        webhook_events="campaign.fired",
    ) as h:
        phone = h.phone(AU)
        await phone.update_contact(fields={"appointment_at": "2026-12-10 14:30"})
        await h.advance(days=2)  # the reminder, at 09:00 on the 9th
        await h.advance(days=1, hours=7, minutes=30)  # the aftercare, at 16:30 on the 10th
        fired = [hook.data for hook in h.webhooks]
        threads = [reply.thread_id for reply in phone.replies]
        assert fired == [
            {
                "campaign": "appointments",
                "event": event,
                "handset": AU,
                "number": "4433",
                "thread_id": thread_id,
                "fired_at": at,
            }
            for event, thread_id, at in (
                (0, threads[0], "2026-12-08T22:00:00.000000Z"),
                (1, threads[1], "2026-12-10T05:30:00.000000Z"),
            )
        ]


async def test_a_reminder_is_one_off_and_an_answer_goes_to_the_flow_still_open(database, templates):
    async with harness(database, templates) as h:
        phone = h.phone(AU)
        await phone.update_contact(name="Ana", fields={"appointment_at": "2026-12-07 14:30"})
        await h.advance(hours=7, minutes=30)  # 16:30: the aftercare asks, and waits
        phone.expect("How are you feeling after your visit, Ana?")
        await phone.update_contact(fields={"appointment_at": "2026-12-09 10:00"})
        await h.advance(days=1)  # the next reminder, at 09:00 on the 8th
        reminder = phone.expect("see you tomorrow at 10:00")
        assert (await h.runtime.store.threads.get(reminder.thread_id)).status == "closed"
        await phone.send("Much better")
        phone.expect("Thanks, noted.")


def test_quiet_hours_never_push_a_reminder_past_what_it_reminds_of():
    campaign = Campaign("c", field="at", quiet_hours="21:00-08:00")
    campaign.event(hours=-10, template="a/x.txt").event(hours=14, template="a/x.txt")
    before, after = campaign.events
    appointment = datetime(2026, 12, 10, 7, 30, tzinfo=SYDNEY)
    # 10 hours before is 21:30, in the quiet hours: their end (08:00) is after the
    # appointment, so the reminder goes just before they begin.
    assert campaign.due(before, appointment, SYDNEY) == datetime(2026, 12, 9, 20, 59, tzinfo=SYDNEY)
    # After it, an event waits for their end as ever.
    assert campaign.due(after, appointment, SYDNEY) == datetime(2026, 12, 11, 8, 0, tzinfo=SYDNEY)
    with pytest.raises(ValueError, match="at='9am' is not a time of day like '09:00'"):
        campaign.event(days=-1, at="9am", template="a/x.txt")
    with pytest.raises(ValueError, match="quiet_hours='8pm-8am' is not like '21:00-08:00'"):
        Campaign("d", field="at", quiet_hours="8pm-8am")
    with pytest.raises(TypeError):
        campaign.event(day=-1, template="a/x.txt")  # a typo is not a template variable


async def test_planning_at_start_up_goes_on_where_a_stop_cut_it_short(database, templates):
    plain = Bot("dental", fields={"appointment_at": datetime})
    clock = FakeClock(START)
    handsets = [f"+6140000{n:04d}" for n in range(7)]
    async with Harness([plain], templates, db=database, clock=clock) as h:
        for handset in handsets:
            await h.phone(handset).update_contact(fields={"appointment_at": "2026-12-10 14:30"})
        # A planner stopped after its first batch of three: the mark says where it was.
        contacts = h.runtime.store.contacts
        contacts.campaigns = sending_from(Router([dental()]).campaigns, h.runtime.numbers)
        (campaign,) = contacts.campaigns
        signature = campaign.signature()
        first = handsets[:3]

        async def one_batch(tx):
            for handset in first:
                await replan(tx, await contacts.read(tx, handset), campaign, contacts.now())
            await progressed(tx, campaign, signature, first[-1])

        await h.runtime.store.db.write(one_batch)
    async with Harness([dental()], templates, db=database, clock=clock) as h:
        planned = await h.runtime.store.db.fetchall(
            "SELECT handset, count(*) FROM timers WHERE state = 'pending' GROUP BY handset"
        )
        # Each contact has its two events once: the first three were not planned again.
        assert sorted(tuple(row) for row in planned) == [(handset, 2) for handset in handsets]
        replanned = await h.runtime.store.db.fetchval(
            "SELECT count(*) FROM timers WHERE error = 'replanned'"
        )
        assert replanned == 0
