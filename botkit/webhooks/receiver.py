"""A webhook receiver for tests: an ASGI app that checks each delivery's signature, as
an integration would, and keeps what it got (the test harness sends every webhook to
one, through an httpx transport: nothing leaves the process).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.types import Receive, Scope, Send

from .signing import DELIVERY_HEADER, SIGNATURE_HEADER, SignatureError, verify
from .subscriptions import Webhook, shown_url


@dataclass(frozen=True)
class ReceivedWebhook:
    """A delivery that reached the receiver, its signature good: the webhook's `url`,
    the event's `type`, `id` and `data`, the whole `payload`, and the delivery's id."""

    url: str
    type: str
    id: str
    data: dict[str, Any]
    payload: dict[str, Any]
    delivery: str


class Receiver:
    """Takes webhooks POSTed to any of `webhooks()`'s URLs: answers 200 to one signed
    with that webhook's secret (and keeps it in `received`), 400 to any other (and keeps
    why in `errors`). `now` is the clock signatures are checked against."""

    def __init__(
        self, webhooks: Callable[[], tuple[Webhook, ...]], now: Callable[[], datetime]
    ) -> None:
        self.webhooks = webhooks
        self.now = now
        self.received: list[ReceivedWebhook] = []
        self.errors: list[SignatureError] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        response = await self._take(request)
        await response(scope, receive, send)

    async def _take(self, request: Request) -> PlainTextResponse:
        url = str(request.url)
        body = await request.body()
        hook = self._find(url)
        try:
            if hook is None:
                raise SignatureError(f"a delivery to {shown_url(url)}, which is no webhook")
            verify(body, request.headers.get(SIGNATURE_HEADER), hook.secret, now=self.now())
        except SignatureError as exc:
            self.errors.append(exc)
            return PlainTextResponse(str(exc), status_code=400)
        payload = json.loads(body)
        self.received.append(
            ReceivedWebhook(
                url=hook.url,
                type=payload["type"],
                id=payload["id"],
                data=payload["data"],
                payload=payload,
                delivery=request.headers.get(DELIVERY_HEADER, ""),
            )
        )
        return PlainTextResponse("OK")

    def _find(self, url: str) -> Webhook | None:
        """The webhook of a URL as the request carried it (normalised as httpx does)."""
        wanted = httpx.URL(url)
        return next((hook for hook in self.webhooks() if httpx.URL(hook.url) == wanted), None)

    def client(self) -> httpx.AsyncClient:
        """An HTTP client whose every request comes here."""
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self))
