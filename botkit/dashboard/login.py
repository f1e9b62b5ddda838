"""Signing in and out of the dashboard (when BOTKIT_DASHBOARD_USER/PASSWORD are set).

GET  /dashboard/login     the form
POST /dashboard/login     user, password, csrf, next: a signed session on success
POST /dashboard/logout    csrf: the session ends
"""

from __future__ import annotations

import logging
import secrets

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from ..access import LoginThrottle, checked_form, credentials_match, login_required
from ..settings import Settings
from .pages import Pages

log = logging.getLogger("botkit.dashboard")


def routes(pages: Pages, settings: Settings) -> list[Route]:
    throttle = LoginThrottle()

    def form(request: Request, next_url: str, error: str = "", status: int = 200) -> Response:
        context = {"next": next_url, "error": error, "enabled": login_required(settings)}
        return pages.render(request, "login.html", context, status_code=status)

    async def show(request: Request) -> Response:
        return form(request, _local(request, request.query_params.get("next", "")))

    async def sign_in(request: Request) -> Response:
        data = await checked_form(request)
        next_url = _local(request, str(data.get("next", "")))
        address = request.client.host if request.client else ""
        if not login_required(settings):
            return form(
                request,
                next_url,
                "There is no login: set BOTKIT_DASHBOARD_USER and BOTKIT_DASHBOARD_PASSWORD.",
                400,
            )
        if (wait := throttle.wait(address)) > 0:
            minutes = int(wait // 60) + 1
            return form(
                request,
                next_url,
                f"Too many failed attempts; try again in "
                f"{minutes} minute{'s' if minutes != 1 else ''}.",
                429,
            )
        user, password = str(data.get("user", "")), str(data.get("password", ""))
        if not credentials_match(user, password, settings):
            throttle.failed(address)
            log.warning("dashboard login failed from %s", address)
            return form(request, next_url, "Wrong user name or password.", 401)
        throttle.succeeded(address)
        # A new session (and CSRF token) on signing in: none chosen before it survives.
        request.session.clear()
        request.session.update(user=user, csrf=secrets.token_urlsafe(32))
        log.info("dashboard login: %s from %s", user, address)
        return RedirectResponse(next_url, 303)

    async def sign_out(request: Request) -> Response:
        await checked_form(request)
        request.session.clear()
        return RedirectResponse(request.url_for("dashboard:login"), 303)

    return [
        Route("/login", show, methods=["GET"], name="login"),
        Route("/login", sign_in, methods=["POST"]),
        Route("/logout", sign_out, methods=["POST"], name="logout"),
    ]


def _local(request: Request, target: str) -> str:
    """`target` if it is a dashboard path on this site, else the conversations page
    (a login link must not send anyone elsewhere)."""
    if target.startswith("/dashboard/") and not target.startswith("/dashboard//"):
        return target
    return str(request.url_for("dashboard:conversations").path)
