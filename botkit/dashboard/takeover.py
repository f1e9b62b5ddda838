"""Human takeover, from a transcript's forms (each with its CSRF token).

    POST /dashboard/threads/{id}/reply    text: an operator's MT, through the outbox
    POST /dashboard/threads/{id}/pause    the thread's bot stops answering
    POST /dashboard/threads/{id}/resume   the bot has the thread back
    POST /dashboard/threads/{id}/close    the conversation ends (its bot's on_end runs)

The operator is the signed-in user, or `localhost` on a dashboard without a login.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from ..access import operator
from ..csrf import checked_form
from ..sms import measure
from .conversations import show_transcript
from .pages import Pages

if TYPE_CHECKING:
    from ..runtime import Runtime

log = logging.getLogger("botkit.dashboard")

# Longer than this and some handsets show the parts apart, or not at all.
MAX_SEGMENTS = 6


def routes(pages: Pages, runtime: Runtime) -> list[Route]:

    async def reply(request: Request) -> Response:
        form = await checked_form(request)
        thread_id = request.path_params["thread_id"]
        text = str(form.get("text", "")).strip()
        problem = _problem(text)
        if problem is not None:
            return await show_transcript(
                pages, runtime, request, thread_id, error=problem, draft=text, status_code=400
            )
        message_id = await runtime.store.takeover.reply(
            thread_id, text, operator(request), runtime.numbers
        )
        if message_id is None:
            return await show_transcript(pages, runtime, request, thread_id)
        if runtime.sender is not None:
            runtime.sender.wake()
        log.info(
            "thread %s: %s replied (mt %s)",
            thread_id,
            operator(request),
            message_id,
            extra={"event": "mt.operator", "thread_id": thread_id, "message_id": message_id},
        )
        return _back(request, thread_id, f"#m{message_id}")

    async def pause(request: Request) -> Response:
        await checked_form(request)
        thread_id = request.path_params["thread_id"]
        if not await runtime.store.takeover.pause(thread_id, operator(request)):
            return await show_transcript(
                pages,
                runtime,
                request,
                thread_id,
                error="Only an open conversation can be taken over.",
                status_code=409,
            )
        log.info("thread %s: taken over by %s", thread_id, operator(request))
        return _back(request, thread_id)

    async def resume(request: Request) -> Response:
        await checked_form(request)
        thread_id = request.path_params["thread_id"]
        await runtime.store.takeover.resume(thread_id)
        log.info("thread %s: handed back to its bot by %s", thread_id, operator(request))
        return _back(request, thread_id)

    async def close(request: Request) -> Response:
        await checked_form(request)
        thread_id = request.path_params["thread_id"]
        if not await runtime.store.takeover.close(thread_id, runtime.router.on_end):
            return await show_transcript(
                pages,
                runtime,
                request,
                thread_id,
                error="This conversation has ended already.",
                status_code=409,
            )
        if runtime.dispatcher is not None:
            runtime.dispatcher.wake()  # its on_end hook is due
        log.info("thread %s: closed by %s", thread_id, operator(request))
        return _back(request, thread_id)

    return [
        Route("/threads/{thread_id:id}/reply", reply, methods=["POST"], name="reply"),
        Route("/threads/{thread_id:id}/close", close, methods=["POST"], name="close"),
        Route("/threads/{thread_id:id}/pause", pause, methods=["POST"], name="pause"),
        Route("/threads/{thread_id:id}/resume", resume, methods=["POST"], name="resume"),
    ]


def _problem(text: str) -> str | None:
    """Why `text` cannot be sent as a reply; None if it can."""
    if not text:
        return "Write a reply first."
    segments = measure(text).segments
    if segments > MAX_SEGMENTS:
        return f"That reply is {segments} SMS long; keep it to {MAX_SEGMENTS} at most."
    return None


def _back(request: Request, thread_id: int, anchor: str = "") -> Response:
    """See-other to the transcript (so a reload does not post the form again)."""
    url = request.url_for("dashboard:transcript", thread_id=thread_id)
    return RedirectResponse(f"{url.path}{anchor}", 303)
