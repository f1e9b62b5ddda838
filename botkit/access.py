"""Who may see the dashboard and /api.

Without BOTKIT_DASHBOARD_USER and BOTKIT_DASHBOARD_PASSWORD only loopback clients that
ask for this machine by name get in (behind a reverse proxy, uvicorn gives the real
client from X-Forwarded-For; a proxy that sends none makes every request loopback, so
set a login there). With both set, a request must carry a session cookie from the
login form (sessions.py), or the credentials by HTTP Basic auth (for scripts). Failed
attempts of either kind count against the address they came from.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import secrets
from typing import TYPE_CHECKING
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from .sessions import login_required, session_user
from .settings import Settings
from .throttle import LoginThrottle

if TYPE_CHECKING:
    from .runtime import Runtime

REALM = 'Basic realm="botkit", charset="UTF-8"'
# Who the request acts as (the signed-in or Basic user; None on a dashboard without a
# login), set by the Guard for the pages (an operator's reply records it).
USER = "botkit.user"
# A page's fetch() of JSON without a session (logged out, or the session expired).
LOGGED_OUT = "not logged in: log in again"


class Guard:
    """ASGI middleware that lets in only the requests `refusal` does not refuse; with
    `login` (a route name), a browser without a session is sent to that form instead,
    but for the JSON its pages fetch (under the mount's /api/, as the simulator's):
    fetch() would follow the redirect to the form, a 200, and take it for an answer."""

    def __init__(self, app: ASGIApp, runtime: Runtime, login: str | None = None) -> None:
        self.app = app
        self.runtime = runtime
        self.login = login

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            request = Request(scope)
            refused = refusal(request, self.runtime.settings, self.runtime.logins)
            if refused is not None and self.login is not None and refused.status_code == 401:
                refused = _to_login(request, self.login)
            if refused is not None:
                await refused(scope, receive, send)
                return
        await self.app(scope, receive, send)


def operator(request: Request) -> str:
    """Who is acting: the signed-in (or Basic) user, or `localhost` on a dashboard
    without a login."""
    return request.scope.get(USER) or "localhost"


def _to_login(request: Request, login: str) -> Response:
    """A person at a browser is sent to the `login` form, and back afterwards; a page's
    fetch() of JSON is told to log in again (401, without Basic's challenge, which would
    have the browser ask for a password itself)."""
    below_mount = request.scope["path"].removeprefix(request.scope.get("root_path", ""))
    if below_mount.startswith("/api/"):
        return JSONResponse({"error": LOGGED_OUT}, status_code=401)
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"{request.url_for(login).path}?next={quote(target)}", 303)


def refusal(request: Request, settings: Settings, logins: LoginThrottle) -> Response | None:
    """None if the request may see the dashboard and /api (noting who it acts as in its
    scope); else the response refusing it."""
    if not login_required(settings):
        if _is_loopback(request) and _host_is_local(request):
            return None
        return JSONResponse(
            {
                "error": "only open to this machine (as localhost or 127.0.0.1); set "
                "BOTKIT_DASHBOARD_USER and BOTKIT_DASHBOARD_PASSWORD to open it to others"
            },
            status_code=403,
        )
    if (user := session_user(request)) is not None:
        request.scope[USER] = user
        return None
    basic = _basic_credentials(request)
    if basic is not None:
        address = client_address(request)
        if (wait := logins.wait(address)) > 0:
            return JSONResponse({"error": too_many(wait)}, status_code=429)
        if credentials_match(*basic, settings):
            request.scope[USER] = settings.dashboard_user
            return None
        logins.failed(address)
    return JSONResponse(
        {"error": "authentication required"},
        status_code=401,
        headers={"WWW-Authenticate": REALM},
    )


def credentials_match(user: str, password: str, settings: Settings) -> bool:
    """True if `user` and `password` are the dashboard's. Both are compared, as digests
    of equal length, every time: the time taken tells nothing of either."""
    user_ok = _same(user, settings.dashboard_user or "")
    password_ok = _same(password, settings.dashboard_password or "")
    return login_required(settings) and user_ok and password_ok


def _same(given: str, expected: str) -> bool:
    digest = hashlib.sha256
    return secrets.compare_digest(
        digest(given.encode()).digest(), digest(expected.encode()).digest()
    )


def _basic_credentials(request: Request) -> tuple[str, str] | None:
    """The user and password of a Basic Authorization header; None if it has none."""
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, ValueError):
        return ("", "")  # an attempt all the same
    user, _, password = decoded.partition(":")
    return user, password


def client_address(request: Request) -> str:
    return request.client.host if request.client else ""


def too_many(wait: float) -> str:
    """The refusal of a throttled address, saying for how long."""
    minutes = int(wait // 60) + 1
    return f"Too many failed attempts; try again in {minutes} minute{'s' if minutes > 1 else ''}."


def _host_is_local(request: Request) -> bool:
    """True if the request names this machine (localhost, 127.0.0.1, [::1]). Another
    name from a loopback client is a web page that had its name re-pointed at us
    (DNS rebinding) to read the dashboard from a browser on this machine."""
    host = request.headers.get("host", "")
    name = host if host.endswith("]") else host.rsplit(":", 1)[0]
    name = name.removeprefix("[").removesuffix("]")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _is_loopback(request: Request) -> bool:
    try:
        return ipaddress.ip_address(client_address(request)).is_loopback
    except ValueError:
        return False
