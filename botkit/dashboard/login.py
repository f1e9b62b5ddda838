"""Signing in and out of the dashboard (when BOTKIT_DASHBOARD_USER/PASSWORD are set).

GET  /dashboard/login     the form
POST /dashboard/login     user, password, csrf, next: a session on success
POST /dashboard/logout    csrf: the session ends (a copy of its cookie with it)
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from ..access import client_address, credentials_match, too_many
from ..csrf import checked_form
from ..sessions import login_required, sign_in, sign_out
from .pages import Pages

if TYPE_CHECKING:
    from ..runtime import Runtime

log = logging.getLogger("botkit.dashboard")


def routes(pages: Pages, runtime: Runtime) -> list[Route]:
    settings, throttle = runtime.settings, runtime.logins

    def form(request: Request, next_url: str, error: str = "", status: int = 200) -> Response:
        context = {"next": next_url, "error": error, "enabled": login_required(settings)}
        return pages.render(request, "login.html", context, status_code=status)

    async def show(request: Request) -> Response:
        return form(request, _local(request, request.query_params.get("next", "")))

    async def log_in(request: Request) -> Response:
        data = await checked_form(request)
        next_url = _local(request, str(data.get("next", "")))
        address = client_address(request)
        if not login_required(settings):
            return form(
                request,
                next_url,
                "There is no login: set BOTKIT_DASHBOARD_USER and BOTKIT_DASHBOARD_PASSWORD.",
                400,
            )
        if (wait := throttle.wait(address)) > 0:
            return form(request, next_url, too_many(wait), 429)
        user, password = str(data.get("user", "")), str(data.get("password", ""))
        if not credentials_match(user, password, settings):
            throttle.failed(address)
            log.warning("dashboard login failed from %s", address)
            return form(request, next_url, "Wrong user name or password.", 401)
        throttle.succeeded(address)
        await sign_in(request, runtime)
        log.info("dashboard login: %s from %s", user, address)
        return RedirectResponse(next_url, 303)

    async def log_out(request: Request) -> Response:
        await checked_form(request)
        await sign_out(request, runtime)
        return RedirectResponse(request.url_for("dashboard:login"), 303)

    return [
        Route("/login", show, methods=["GET"], name="login"),
        Route("/login", log_in, methods=["POST"]),
        Route("/logout", log_out, methods=["POST"], name="logout"),
    ]


def _local(request: Request, target: str) -> str:
    """`target` if it is a path of the dashboard or the simulator's phone page on this
    site, else the conversations page (a login link must not send anyone elsewhere)."""
    for private in ("/dashboard/", "/simulator/"):
        if target.startswith(private) and not target.startswith(f"{private}/"):
            return target
    return str(request.url_for("dashboard:conversations").path)
