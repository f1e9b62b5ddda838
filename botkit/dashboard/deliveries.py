"""The delivery overview.

GET /dashboard/deliveries    messages per day, how MTs fared, and the MTs not delivered,
                             over the last ?days= days (30 by default); ?before= pages on
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..params import whole
from .charts import bar_chart, grouped_bar_chart
from .pages import Pages

if TYPE_CHECKING:
    from ..runtime import Runtime

DAYS, MAX_DAYS = 30, 366


def routes(pages: Pages, runtime: Runtime) -> list[Route]:
    async def deliveries(request: Request) -> Response:
        overview = runtime.store.overview
        days = whole(request.query_params, "days", default=DAYS, high=MAX_DAYS)
        before = whole(request.query_params, "before")
        zone = runtime.settings.zone
        per_day = await overview.per_day(days, zone)
        sent, delivered = await overview.outcomes(days, zone)
        rows, next_before = await overview.undelivered(days, before, zone=zone)
        context = {
            "days": days,
            "per_day": grouped_bar_chart(
                "Messages per day", ("MO", "MT"), [(day, (mo, mt)) for day, mo, mt in per_day]
            ),
            "totals": (sum(row[1] for row in per_day), sum(row[2] for row in per_day)),
            "sent": bar_chart("MTs by send status", list(sent.items())),
            "delivered": bar_chart("MTs by latest delivery receipt", list(delivered.items())),
            "rows": rows,
            "before": before,
            "next_before": next_before,
        }
        return pages.render(request, "deliveries.html", context)

    return [Route("/deliveries", deliveries, methods=["GET"], name="deliveries")]
