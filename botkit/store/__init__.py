"""The storage interface: every read and write of botkit's tables, in parts.

    store.inbox       MOs from the callback to their handler's commit
    store.threads     conversations, their state and data
    store.outbox      MTs from the handler's commit to the gateway's answer
    store.deliveries  delivery receipts and the status history of MTs
    store.consent     opt-outs (suppressions) and the ledger of every change
    store.lists       subscription lists and their members
    store.contacts    a person per handset: name, language, time zone, fields
    store.campaigns   campaign events, as the dashboard shows them
    store.timers      reminders and expiries of threads, each fired once
    store.broadcasts  one message or conversation per recipient, resumable
    store.conversations  threads and transcripts as the dashboard shows them
    store.surveys     survey respondents, their answers, and the results
    store.overview    messages per day and how MTs fared, for the delivery overview
    store.transcripts every message with its thread, streamed for exports
    store.takeover    operators pausing a thread's bot and replying in its place
    store.meta        values made once and kept (the dashboard's session key)
    store.sessions    the dashboard's signed-in browsers
    store.webhooks    events queued for webhooks, their attempts, the webhooks added

Routing, the sender and the callbacks call these and write no SQL of their own, so
that another backend can stand behind the same interface. Once-only handling and
per-handset order are properties of the rows (a unique key on the gateway id, one
claimed inbox row per handset), not of one process's memory.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Mapping

from ..clock import Clock, system_clock
from ..db import Database
from .broadcasts import Broadcasts
from .campaigns import CampaignEvents
from .consent import Consent
from .contacts import Contacts
from .conversations import Conversations
from .deliveries import Deliveries, DeliveryOutcome
from .effects import Effects
from .inbox import Inbox
from .lists import Lists
from .meta import Meta
from .outbox import Outbox
from .overview import Overview
from .sessions import Sessions
from .surveys import Surveys
from .takeover import Takeover
from .threads import Threads
from .timers import Timers
from .transcripts import Transcripts
from .webhooks import Webhooks

__all__ = ["DeliveryOutcome", "Effects", "Store"]


class Store:
    """All database access of botkit, over one `Database`."""

    def __init__(self, db: Database, clock: Clock = system_clock) -> None:
        self.db = db
        self.clock = clock
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.inbox = Inbox(db, clock, self.owner)
        self.threads = Threads(db, clock)
        self.outbox = Outbox(db, clock, self.owner)
        self.deliveries = Deliveries(db, clock)
        self.consent = Consent(db, clock)
        self.lists = Lists(db, clock)
        self.contacts = Contacts(db, clock)
        self.campaigns = CampaignEvents(db, clock)
        self.timers = Timers(db, clock, self.owner)
        self.broadcasts = Broadcasts(db, clock)
        self.surveys = Surveys(db, clock)
        self.transcripts = Transcripts(db, clock)
        self.conversations = Conversations(db, clock)
        self.overview = Overview(db, clock)
        self.meta = Meta(db, clock)
        self.takeover = Takeover(db, clock)
        self.sessions = Sessions(db, clock)
        self.webhooks = Webhooks(db, clock, self.owner)

    async def recover(
        self, *, resend_uncertain: bool, departed: Mapping[str, set[int]] | None = None
    ) -> tuple[int, int, int]:
        """At start-up: settle the claims of a process that died.

        On a database of one process (SQLite) every claim is freed now: MOs and timers
        are handled again (their effects were never committed); MTs left `sending` whose
        requests never left, their sender's departure log shows (`departed`, see
        botkit/departures.py), are queued again; the rest are settled as
        `Outbox.recover` says. On a shared one (PostgreSQL) the claims of processes still
        running are theirs: a dead one's MOs and timers are claimable once their leases
        run out, and the sender settles its MTs then.
        Returns (MOs released, MTs queued again, MTs that may have been sent).
        """
        if self.db.shared:
            sending = await self.outbox.recover(resend_uncertain=resend_uncertain, expired=True)
            return 0, 0, sending
        released = await self.inbox.release_all()
        await self.timers.release_all()
        requeued = await self.outbox.requeue_unsent(departed or {})
        sending = await self.outbox.recover(resend_uncertain=resend_uncertain)
        return released, requeued, sending
