"""clinic: a dental clinic's bookings. BOOK offers three visits and books the one
picked; RESCHEDULE and UNBOOK work at any point, even in the middle of a question;
a reminder goes at 9:00 the day before (Sydney time), and a short survey after.

Its conversation lives beside any other: texting OFFERS (bots/promos.py) in between
leaves the booking, its state and its reminder as they were. If the patient texts
STOP while booked, the clinic is told in its log and in the thread's data.
"""

import logging
from datetime import date, datetime, time, timedelta

from botkit import Bot, Context, Question, Survey

log = logging.getLogger(__name__)
bot = Bot("clinic", timezone="Australia/Sydney")
VISIT_TIME = time(10, 0)

feedback = Survey(
    "visit",
    [
        Question.rating(
            "rating",
            "How was your visit today, from 1 (poor) to 5 (great)?",
            next={1: "better", 2: "better", 3: "better"},
        ),
        Question.text("better", "Sorry to hear it. What could we do better?"),
    ],
    closing="Thank you for telling us. See you next time!",
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


def offer(ctx: Context) -> None:
    """Offer the next three visits and wait for the pick."""
    slots = [datetime.combine(day, VISIT_TIME) for day in next_weekdays(ctx.now().date())]
    ctx.data["offered"] = [slot.isoformat() for slot in slots]
    ctx.reply("clinic/offer.txt", slots=slots, again=False)
    ctx.state = "pick"


@bot.keyword("BOOK", interrupts=True)
async def book(ctx: Context) -> None:
    offer(ctx)


@bot.keyword("RESCHEDULE", interrupts=True)
async def reschedule(ctx: Context) -> None:
    if "visit" not in ctx.data:
        ctx.reply("clinic/no_booking.txt")
        return
    offer(ctx)  # the booking and its reminder stand until a new visit is picked


@bot.keyword("UNBOOK", interrupts=True)
async def unbook(ctx: Context) -> None:
    if "visit" not in ctx.data:
        ctx.reply("clinic/no_booking.txt")
        return
    ctx.reply("clinic/cancelled.txt", visit=datetime.fromisoformat(ctx.data["visit"]))
    ctx.end()


@bot.state("pick")
async def pick(ctx: Context) -> None:
    offered = ctx.data["offered"]
    choice = ctx.text.strip().rstrip(".")
    if choice not in {str(n) for n in range(1, len(offered) + 1)}:
        slots = [datetime.fromisoformat(slot) for slot in offered]
        ctx.reply("clinic/offer.txt", slots=slots, again=True)
        return
    visit = datetime.fromisoformat(offered[int(choice) - 1])  # naive: the clinic's time
    ctx.data["visit"] = visit.isoformat()
    ctx.cancel("reminder", feedback.entry)
    ctx.schedule("reminder", at=datetime.combine(visit.date() - timedelta(days=1), time(9)))
    ctx.schedule(feedback.entry, at=visit + timedelta(hours=2))
    ctx.reply("clinic/booked.txt", visit=visit)
    ctx.state = None


@bot.timer("reminder")
async def reminder(ctx: Context) -> None:
    ctx.reply("clinic/reminder.txt", visit=datetime.fromisoformat(ctx.data["visit"]))


@bot.on_end
async def ended(ctx: Context) -> None:
    """A booked patient who opted out can no longer be texted: tell the clinic."""
    if ctx.end_reason == "opted_out" and "visit" in ctx.data:
        visit = datetime.fromisoformat(ctx.data["visit"]).replace(tzinfo=ctx.zone)
        if visit > ctx.now():
            ctx.data["opted_out_before_visit"] = True
            log.warning(
                "patient %s opted out with a visit booked for %s: call them",
                ctx.thread.handset,
                ctx.data["visit"],
            )
