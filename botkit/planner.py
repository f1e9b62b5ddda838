"""`Planner`: campaigns planned for their contacts in the background.

A campaign new or changed since it was last planned (a deploy that adds one, or moves
an event) plans every contact with its field anew: 100,000 contacts take half a minute
on SQLite and minutes on PostgreSQL, too long to hold up the start (the gateway's
callbacks wait for it). So the app starts, and the planner works through them a batch
at a time, going on after a restart where it stopped; a reload of the bots wakes it.
"""

from __future__ import annotations

import asyncio
import logging

from .store.contacts import Contacts
from .worker import Worker

log = logging.getLogger("botkit.planner")

# Nothing to do between reloads; a wake-up (Runtime.install) starts a round at once.
IDLE_SECONDS = 3600.0


class Planner(Worker):
    """Plans the campaigns that need it, then waits to be woken."""

    name = "campaign planner"

    def __init__(self, contacts: Contacts) -> None:
        super().__init__()
        self.contacts = contacts
        # Set when a round has planned everything it found: the test harness waits on it.
        self.idle = asyncio.Event()

    def wake(self) -> None:
        self.idle.clear()
        super().wake()

    async def _run(self) -> None:
        while not self.stopping:
            self.ready()
            for name, count in (await self.contacts.plan_campaigns()).items():
                log.info(
                    "campaign %s: planned anew for %d contacts",
                    name,
                    count,
                    extra={"event": "campaign.planned", "campaign": name, "contacts": count},
                )
            self.idle.set()
            await self.sleep(IDLE_SECONDS)
