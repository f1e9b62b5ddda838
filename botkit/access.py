"""Who may see the dashboard and /api, and the safeguards of its forms.

Without BOTKIT_DASHBOARD_USER and BOTKIT_DASHBOARD_PASSWORD only loopback clients get in
(behind a reverse proxy, uvicorn gives the real client from X-Forwarded-For). With both
set, a request must carry a signed session cookie from the login form, or the
credentials by HTTP Basic auth (for scripts); they are compared in constant time.
Every form carries a CSRF token bound to the session, checked on every POST.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import secrets
import time
from collections import deque
from typing import TYPE_CHECKING
from urllib.parse import quote

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from .settings import Settings

if TYPE_CHECKING:
    from .runtime import Runtime

REALM = 'Basic realm="botkit", charset="UTF-8"'
COOKIE = "botkit_session"
SESSION_AGE = 12 * 3600


class Sessions:
    """Starlette's signed-cookie sessions, keyed by the runtime's secret key, which is
    read from the database when the app starts (so it is looked up on first use)."""

    def __init__(self, app: ASGIApp, runtime: Runtime) -> None:
        self.app = app
        self.runtime = runtime
        self.inner: SessionMiddleware | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.inner is None:
            if self.runtime.secret_key is None:
                raise RuntimeError("the app is not started (its lifespan has not run)")
            self.inner = SessionMiddleware(
                self.app,
                secret_key=self.runtime.secret_key,
                session_cookie=COOKIE,
                max_age=SESSION_AGE,
                same_site="lax",
            )
        await self.inner(scope, receive, send)


class Guard:
    """ASGI middleware that lets in only the requests `refusal` does not refuse; with
    `login` (a route name), a browser without a session is sent to that form instead."""

    def __init__(self, app: ASGIApp, settings: Settings, login: str | None = None) -> None:
        self.app = app
        self.settings = settings
        self.login = login

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            request = Request(scope)
            refused = refusal(request, self.settings)
            if refused is not None and self.login is not None and refused.status_code == 401:
                # A person at a browser is sent to the login form, and back afterwards.
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                login = request.url_for(self.login).path
                refused = RedirectResponse(f"{login}?next={quote(target)}", 303)
            if refused is not None:
                await refused(scope, receive, send)
                return
        await self.app(scope, receive, send)


def refusal(request: Request, settings: Settings) -> Response | None:
    """None if the request may see the dashboard and /api; else the response refusing it."""
    if login_required(settings):
        if signed_in(request, settings) or _basic_matches(request, settings):
            return None
        return JSONResponse(
            {"error": "authentication required"},
            status_code=401,
            headers={"WWW-Authenticate": REALM},
        )
    if _is_loopback(request):
        return None
    return JSONResponse(
        {
            "error": "only open to this machine; set BOTKIT_DASHBOARD_USER and "
            "BOTKIT_DASHBOARD_PASSWORD to open it to others with a login"
        },
        status_code=403,
    )


def login_required(settings: Settings) -> bool:
    """True when dashboard credentials are set (else the dashboard is loopback-only)."""
    return bool(settings.dashboard_user and settings.dashboard_password)


def signed_in(request: Request, settings: Settings) -> bool:
    """True if the request's session was signed in as the configured user."""
    user = request.scope.get("session", {}).get("user")
    return user is not None and secrets.compare_digest(
        str(user).encode(), (settings.dashboard_user or "").encode()
    )


def credentials_match(user: str, password: str, settings: Settings) -> bool:
    """True if `user` and `password` are the dashboard's. Both are compared every time,
    so the time taken tells nothing about which was wrong."""
    user_ok = secrets.compare_digest(user.encode(), (settings.dashboard_user or "").encode())
    password_ok = secrets.compare_digest(
        password.encode(), (settings.dashboard_password or "").encode()
    )
    return login_required(settings) and user_ok and password_ok


def _basic_matches(request: Request, settings: Settings) -> bool:
    """True if the Authorization header carries the dashboard credentials (Basic)."""
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, ValueError):
        return False
    user, _, password = decoded.partition(":")
    return scheme.lower() == "basic" and credentials_match(user, password, settings)


def _is_loopback(request: Request) -> bool:
    host = request.client.host if request.client else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def csrf_token(request: Request) -> str:
    """The session's CSRF token, made on first use; every form carries it."""
    token = request.session.get("csrf")
    if token is None:
        token = request.session["csrf"] = secrets.token_urlsafe(32)
    return token


async def checked_form(request: Request) -> FormData:
    """The POSTed form, once its CSRF token is the session's; else 403."""
    form = await request.form()
    given = form.get("csrf")
    expected = request.session.get("csrf")
    if not isinstance(given, str) or expected is None:
        raise HTTPException(403, "missing CSRF token: reload the page and try again")
    if not secrets.compare_digest(given.encode(), expected.encode()):
        raise HTTPException(403, "wrong CSRF token: reload the page and try again")
    return form


class LoginThrottle:
    """Refuses logins from an address after `limit` failures within `window` seconds."""

    def __init__(self, limit: int = 10, window: float = 900.0) -> None:
        self.limit = limit
        self.window = window
        self.failures: dict[str, deque[float]] = {}

    def wait(self, address: str) -> float:
        """Seconds until `address` may try again (0: now)."""
        recent = self._recent(address)
        if not recent:
            del self.failures[address]  # forgotten once its failures are old
        if len(recent) < self.limit:
            return 0.0
        return recent[0] + self.window - time.monotonic()

    def failed(self, address: str) -> None:
        self._recent(address).append(time.monotonic())

    def succeeded(self, address: str) -> None:
        self.failures.pop(address, None)

    def _recent(self, address: str) -> deque[float]:
        recent = self.failures.setdefault(address, deque())
        while recent and recent[0] < time.monotonic() - self.window:
            recent.popleft()
        return recent
