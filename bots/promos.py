"""promos: text OFFERS to get the clinic's offers by SMS, confirmed with YES.

A conversation of its own: texting OFFERS in the middle of a booking (bots/clinic.py)
leaves the booking as it was.
"""

from datetime import timedelta

from botkit import Bot, DoubleOptIn

bot = Bot("promos")

offers = DoubleOptIn(
    list="offers",
    keyword="OFFERS",
    confirm="promos/confirm.txt",
    welcome="promos/welcome.txt",
    already="promos/already.txt",
    declined="promos/declined.txt",
    expired="promos/expired.txt",
    timeout=timedelta(hours=24),
).attach(bot)
