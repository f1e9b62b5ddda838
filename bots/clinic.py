"""clinic: a dental clinic's bookings, in English or Spanish. BOOK offers three visits
and books the one picked; RESCHEDULE and UNBOOK work at any point, even in the middle
of a question; ESPAÑOL and ENGLISH choose the language of every text after.

The booking is the patient's contact field `appointment_at` (a handler, an import or
the API may set it): the campaign "visits" reminds the patient at 9:00 the day before,
their time, and asks about the visit two hours after it. Moving the visit moves them;
UNBOOK, or a STOP, cancels them.

Its conversation lives beside any other: texting OFFERS (bots/promos.py) in between
leaves the booking as it was. If the patient texts STOP while booked, the clinic is
told in its log and in the thread's data.
"""

import logging
from datetime import date, datetime, time, timedelta

from botkit import Bot, Campaign, Context, Question, Survey

log = logging.getLogger(__name__)
bot = Bot("clinic", timezone="Australia/Sydney", fields={"appointment_at": datetime})
VISIT_TIME = time(10, 0)  # the clinic's time (Sydney)

feedback = Survey(
    "visit",
    [
        Question.rating(
            "rating",
            {
                "en": "How was your visit, from 1 (poor) to 5 (great)?",
                "es": "¿Qué tal fue su visita, del 1 (mal) al 5 (muy bien)?",
            },
            next={4: Survey.END, 5: Survey.END},  # 1 to 3: what could be better
        ),
        Question.text(
            "better",
            {
                "en": "Sorry to hear it. What could we do better?",
                "es": "Lo sentimos. ¿Qué podríamos mejorar?",
            },
        ),
    ],
    closing={
        "en": "Thank you for telling us. See you next time!",
        "es": "Gracias por contárnoslo. ¡Hasta la próxima!",
    },
    expiry=timedelta(days=2),
).attach(bot)


def next_weekdays(today: date, count: int = 3) -> list[date]:
    """The next `count` working days after `today`."""
    days, day = [], today
    while len(days) < count:
        day += timedelta(days=1)
        if day.weekday() < 5:
            days.append(day)
    return days


def booked(ctx: Context) -> datetime | None:
    """The patient's visit to come, in the clinic's time; None if none is booked."""
    visit = ctx.contact.fields.get("appointment_at")
    if visit is None or visit <= ctx.now():
        return None
    return visit.astimezone(ctx.zone)


def offered(ctx: Context) -> list[datetime]:
    """The visits offered in this conversation, as kept in its data."""
    return [datetime.fromisoformat(slot) for slot in ctx.data["offered"]]


def offer(ctx: Context) -> None:
    """Offer the next three visits and wait for the pick."""
    days = next_weekdays(ctx.now().date())
    slots = [datetime.combine(day, VISIT_TIME, tzinfo=ctx.zone) for day in days]
    ctx.data["offered"] = [slot.isoformat() for slot in slots]
    ctx.reply("clinic/offer.txt", slots=slots, again=False)
    ctx.state = "pick"


def speak(ctx: Context, language: str | None) -> None:
    """Text the patient in `language` (None: the default, English) from this reply on;
    a question being asked is asked again in it."""
    ctx.contact.language = language
    ctx.reply("clinic/language.txt")
    if ctx.state == "pick":
        ctx.reply("clinic/offer.txt", slots=offered(ctx), again=False)


@bot.keyword("BOOK", aliases=["CITA"], interrupts=True)
async def book(ctx: Context) -> None:
    offer(ctx)


@bot.keyword("RESCHEDULE", aliases=["CAMBIAR"], interrupts=True)
async def reschedule(ctx: Context) -> None:
    if booked(ctx) is None:
        ctx.reply("clinic/no_booking.txt")
        return
    offer(ctx)  # the booking and its reminder stand until a new visit is picked


@bot.keyword("UNBOOK", aliases=["ANULAR"], interrupts=True)
async def unbook(ctx: Context) -> None:
    visit = booked(ctx)
    if visit is None:
        ctx.reply("clinic/no_booking.txt")
        return
    ctx.contact.fields["appointment_at"] = None  # the campaign's events are cancelled
    ctx.reply("clinic/cancelled.txt", visit=visit)
    ctx.end()


@bot.keyword("ESPAÑOL", aliases=["ESPANOL"], interrupts=True)
async def spanish(ctx: Context) -> None:
    speak(ctx, "es")


@bot.keyword("ENGLISH", aliases=["INGLES", "INGLÉS"], interrupts=True)
async def english(ctx: Context) -> None:
    speak(ctx, None)


@bot.state("pick")
async def pick(ctx: Context) -> None:
    slots = offered(ctx)
    choice = ctx.text.strip().rstrip(".")
    if choice not in {str(n) for n in range(1, len(slots) + 1)}:
        ctx.reply("clinic/offer.txt", slots=slots, again=True)
        return
    visit = slots[int(choice) - 1]
    ctx.contact.fields["appointment_at"] = visit  # the campaign's events follow it
    ctx.reply("clinic/booked.txt", visit=visit)
    ctx.state = None


async def remind(ctx: Context) -> None:
    """The day before the visit: a reminder, in a conversation that ends with it."""
    visit = ctx.contact.fields["appointment_at"].astimezone(ctx.zone)
    ctx.reply("clinic/reminder.txt", visit=visit)
    ctx.end()


visits = (
    Campaign("visits", field="appointment_at", quiet_hours="21:00-08:00")
    .event(days=-1, at="09:00", start=remind)
    .event(hours=2, start=feedback)
    .attach(bot)
)


@bot.on_end
async def ended(ctx: Context) -> None:
    """A booked patient who opted out can no longer be texted: tell the clinic."""
    visit = booked(ctx)
    if ctx.end_reason == "opted_out" and visit is not None:
        ctx.data["opted_out_before_visit"] = True
        log.warning(
            "patient %s opted out with a visit booked for %s: call them",
            ctx.thread.handset,
            visit.isoformat(),
        )
