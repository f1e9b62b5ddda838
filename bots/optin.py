"""optin: text JOIN to get the weekly deals, confirmed with YES (a double opt-in).

Anything but YES declines; no answer within a day lets the request lapse. STOP, as
always, unsubscribes.
"""

from datetime import timedelta

from botkit import Bot, DoubleOptIn

bot = Bot("optin")

deals = DoubleOptIn(
    list="deals",
    keyword="JOIN",
    confirm="optin/confirm.txt",
    welcome="optin/welcome.txt",
    already="optin/already.txt",
    declined="optin/declined.txt",
    expired="optin/expired.txt",
    timeout=timedelta(hours=24),
).attach(bot)
