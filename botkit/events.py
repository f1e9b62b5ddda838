"""The events an integration can subscribe to by webhook (docs/webhooks.md shows each
one's `data`).

    mo.received        an MO was stored (once per gateway id: a repeated callback is not)
    contact.opted_out  a handset opted out of one of our numbers, or of all ('*')
    survey.completed   a respondent answered a survey's last question
    thread.ended       a conversation ended: ended, expired, opted_out or operator
    campaign.fired     a campaign's event fired for a contact

Each is written, if anyone subscribes to it, in the transaction that makes it happen
(store/webhooks.py, `emit`), and sent from there (botkit/webhooks/).
"""

from __future__ import annotations

MO_RECEIVED = "mo.received"
CONTACT_OPTED_OUT = "contact.opted_out"
SURVEY_COMPLETED = "survey.completed"
THREAD_ENDED = "thread.ended"
CAMPAIGN_FIRED = "campaign.fired"

EVENTS = (MO_RECEIVED, CONTACT_OPTED_OUT, SURVEY_COMPLETED, THREAD_ENDED, CAMPAIGN_FIRED)
