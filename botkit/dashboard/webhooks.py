"""The webhooks page: the webhooks in force, and the deliveries, the latest first.

    GET  /dashboard/webhooks                  ?state= (pending, delivered, failed) filters,
                                              ?before= pages on
    GET  /dashboard/webhooks/{id}             one delivery: its event and every attempt
    POST /dashboard/webhooks/{id}/retry       a failed delivery tried once more, now

A webhook shows its URL without query or password, and no more of its secret than
the last 4 characters.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from ..csrf import checked_form
from ..errors import ValidationError
from ..params import whole
from ..store.webhooks import STATES
from ..webhooks.subscriptions import shown_url
from .pages import Pages
from .takeover import operator

if TYPE_CHECKING:
    from ..runtime import Runtime

log = logging.getLogger("botkit.dashboard")


def routes(pages: Pages, runtime: Runtime) -> list[Route]:
    async def webhooks(request: Request) -> Response:
        return await _page(request)

    async def _page(request: Request, error: str | None = None, status: int = 200) -> Response:
        state = request.query_params.get("state") or None
        if state is not None and state not in STATES:
            raise ValidationError("state", f"must be one of {', '.join(STATES)}")
        before = whole(request.query_params, "before")
        rows, next_before = await runtime.store.webhooks.page(state, before)
        context = {
            "hooks": _in_force(runtime),
            "rows": [_shown(row) for row in rows],
            "states": STATES,
            "state": state,
            "before": before,
            "next_before": next_before,
            "error": error,
        }
        return pages.render(request, "webhooks.html", context, status_code=status)

    async def delivery(request: Request) -> Response:
        delivery_id = request.path_params["delivery_id"]
        row = await runtime.store.webhooks.delivery(delivery_id)
        if row is None:
            raise HTTPException(404, f"no webhook delivery {delivery_id}")
        context = {
            "row": _shown(row),
            "payload": json.dumps(json.loads(row["payload"]), indent=2, ensure_ascii=False),
            "attempts": await runtime.store.webhooks.attempts(delivery_id),
        }
        return pages.render(request, "webhook.html", context)

    async def retry(request: Request) -> Response:
        await checked_form(request)
        delivery_id = request.path_params["delivery_id"]
        if not await runtime.store.webhooks.retry(delivery_id):
            if await runtime.store.webhooks.delivery(delivery_id) is None:
                return await _page(request, f"There is no delivery {delivery_id}.", 404)
            error = f"Delivery {delivery_id} has not failed: only a failed one can be retried."
            return await _page(request, error, 409)
        if runtime.webhooks is not None:
            runtime.webhooks.wake()
        log.info("webhook delivery %s: retried by %s", delivery_id, operator(request))
        url = request.url_for("dashboard:webhooks").path
        return RedirectResponse(f"{url}#d{delivery_id}", 303)

    return [
        Route("/webhooks", webhooks, methods=["GET"], name="webhooks"),
        Route("/webhooks/{delivery_id:id}", delivery, methods=["GET"], name="webhook_delivery"),
        Route("/webhooks/{delivery_id:id}/retry", retry, methods=["POST"], name="webhook_retry"),
    ]


def _in_force(runtime: Runtime) -> list[dict[str, Any]]:
    """The webhooks in force, as shown: never more of a secret than its hint."""
    if runtime.webhooks is None:
        return []
    return [
        {"source": hook.source, "url": hook.shown, "events": hook.events, "hint": hook.hint}
        for hook in runtime.webhooks.registry.webhooks
    ]


def _shown(row: Any) -> dict[str, Any]:
    """A delivery's row as shown: its URL without query or password, and "sending"
    while an attempt is under way."""
    shown = dict(row)
    shown["url"] = shown_url(row["url"])
    shown["state"] = "sending" if row["sending"] else row["state"]
    return shown
