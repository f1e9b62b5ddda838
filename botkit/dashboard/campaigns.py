"""Campaigns: what each one does, its next events and those that fired.

GET /dashboard/campaigns/    every campaign the loaded bots carry: its field, number and
                             quiet hours; each event in words with how many are pending,
                             fired and cancelled; the next events to fire, and the
                             latest that fired or were cancelled (and why), with the
                             contact each is for
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .pages import Pages

if TYPE_CHECKING:
    from ..runtime import Runtime

# Events listed per campaign, next and latest.
SHOWN = 20


def routes(pages: Pages, runtime: Runtime) -> list[Route]:
    async def campaigns(request: Request) -> Response:
        store = runtime.store
        counts = await store.campaigns.counts()
        shown: list[dict[str, Any]] = []
        for campaign in runtime.router.campaigns:
            events = [
                {"what": event.describe(), "counts": counts.get(campaign.timer(index), {})}
                for index, event in enumerate(campaign.events)
            ]
            quiet = campaign.quiet
            shown.append(
                {
                    "campaign": campaign,
                    "quiet": f"{quiet.start:%H:%M}-{quiet.end:%H:%M}" if quiet else None,
                    "events": events,
                    "upcoming": await store.campaigns.upcoming(campaign.name, SHOWN),
                    "fired": await store.campaigns.fired(campaign.name, SHOWN),
                }
            )
        return pages.render(request, "campaigns.html", {"campaigns": shown})

    return [Route("/campaigns/", campaigns, methods=["GET"], name="campaigns")]
