"""Dashboard sessions, kept in the database: a browser's cookie holds only a random id.

Signing in makes a new id, sent in the `botkit_session` cookie (HttpOnly, SameSite=Lax,
Secure over HTTPS), and a row under the id's SHA-256 (store/sessions.py) with the user,
when it began, a new CSRF token, and a fingerprint of the login: scrypt, salted with the
secret key, so that neither the cookie nor the row tells the password to anyone without
the key, and guessing at it with the key is slow. A request is signed in while its row
is there, began less than SESSION_AGE ago, and holds the fingerprint of the login as it
is now. So logging out (which deletes the row) ends a copy of the cookie too, changing
the password ends every session, and the processes sharing a database share them.

A browser without a session (at the login form, or on a dashboard without a login) has
its CSRF token from the `botkit_csrf` cookie: a random nonce there, the token its HMAC
under the secret key. Nothing is written for it: a visitor writes no row until they
sign in.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .settings import Settings

if TYPE_CHECKING:
    from .runtime import Runtime

COOKIE = "botkit_session"
CSRF_COOKIE = "botkit_csrf"
SESSION_AGE = 12 * 3600
VISIT = "botkit.visit"
# What our cookies hold (secrets.token_urlsafe(32)); another value is not looked up.
TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")


@dataclass(frozen=True)
class Session:
    """A signed-in browser: its row's key, its user and its CSRF token."""

    id_hash: str
    user: str
    csrf: str


@dataclass
class Visit:
    """What a request's cookies say of its browser, and the cookies to send back."""

    secret: bytes = field(repr=False)
    secure: bool
    session: Session | None = None
    nonce: str | None = None
    cookies: dict[str, str] = field(default_factory=dict)

    def csrf_token(self) -> str:
        """The token this browser's forms carry: its session's, else its nonce's HMAC. A
        browser without a nonce gets one; its cookie is sent again with each page, so it
        lasts SESSION_AGE past the page (whose forms carry the token)."""
        if self.session is not None:
            return self.session.csrf
        if self.nonce is None:
            self.nonce = secrets.token_urlsafe(32)
        self.set_cookie(CSRF_COOKIE, self.nonce, SESSION_AGE)
        return self._sign(self.nonce)

    def expected_csrf(self) -> str | None:
        """The token a form from this browser must carry; None if it has none yet."""
        if self.session is not None:
            return self.session.csrf
        return None if self.nonce is None else self._sign(self.nonce)

    def _sign(self, nonce: str) -> str:
        return hmac.new(self.secret, nonce.encode(), hashlib.sha256).hexdigest()

    def set_cookie(self, name: str, value: str, max_age: int) -> None:
        """Send `name` back as `value` for `max_age` seconds (0: the browser forgets it),
        instead of what was to be sent for it before."""
        secure = "; Secure" if self.secure else ""
        self.cookies[name] = (
            f"{name}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}"
        )


class Sessions:
    """ASGI middleware that tells each request's session (a `Visit` in its scope) from
    its cookies, and sends back the cookies that changed."""

    def __init__(self, app: ASGIApp, runtime: Runtime) -> None:
        self.app = app
        self.runtime = runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        visit = scope[VISIT] = await self._visit(scope)

        async def send_cookies(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for cookie in visit.cookies.values():
                    headers.append("set-cookie", cookie)
            await send(message)

        await self.app(scope, receive, send_cookies)

    async def _visit(self, scope: Scope) -> Visit:
        runtime = self.runtime
        if runtime.secret_key is None:
            raise RuntimeError("the app is not started (its lifespan has not run)")
        cookies = Request(scope).cookies
        visit = Visit(
            secret=runtime.secret_key.encode(),
            secure=scope.get("scheme") in ("https", "wss"),
            nonce=_token(cookies.get(CSRF_COOKIE)),
        )
        if COOKIE in cookies:
            visit.session = await self._find(cookies[COOKIE])
            if visit.session is None:  # ended, expired, or never ours: forget it
                visit.set_cookie(COOKIE, "", 0)
        return visit

    async def _find(self, session_id: str) -> Session | None:
        """The session of a cookie's id, if it holds (see the module's docstring)."""
        if _token(session_id) is None:
            return None
        return await _holding(self.runtime, _hash(session_id))


async def _holding(runtime: Runtime, id_hash: str) -> Session | None:
    """The session stored under `id_hash`, if it holds: not ended, not older than
    SESSION_AGE, and signed in under the login as it is now."""
    fingerprint = runtime.login_fingerprint
    if fingerprint is None:
        return None
    row = await runtime.store.sessions.find(id_hash, SESSION_AGE)
    if row is None or not secrets.compare_digest(row["credentials"], fingerprint):
        return None
    return Session(id_hash, row["username"], row["csrf"])


async def still_signed_in(runtime: Runtime, request: Request) -> bool:
    """False once the session a request came with has ended (logged out, the password
    changed, SESSION_AGE passed): for a request that lasts, such as live updates. True
    for one that came without a session (Basic auth, or no login)."""
    session = visit_of(request).session
    return session is None or await _holding(runtime, session.id_hash) is not None


def visit_of(request: Request) -> Visit:
    """The request's Visit (set by `Sessions`, which every dashboard mount has)."""
    return request.scope[VISIT]


def session_user(request: Request) -> str | None:
    """The user the request's session signed in as; None without one."""
    visit = request.scope.get(VISIT)
    return None if visit is None or visit.session is None else visit.session.user


async def sign_in(request: Request, runtime: Runtime) -> None:
    """Start a new session for the dashboard user: a new id and a new CSRF token (nothing
    chosen before signing in survives it); a session the browser had ends."""
    visit = visit_of(request)
    assert runtime.settings.dashboard_user is not None
    assert runtime.login_fingerprint is not None
    if visit.session is not None:
        await runtime.store.sessions.end(visit.session.id_hash)
    session_id, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    session = Session(_hash(session_id), runtime.settings.dashboard_user, csrf)
    await runtime.store.sessions.start(
        session.id_hash, session.user, csrf, runtime.login_fingerprint, SESSION_AGE
    )
    visit.session, visit.nonce = session, None
    visit.set_cookie(COOKIE, session_id, SESSION_AGE)
    visit.set_cookie(CSRF_COOKIE, "", 0)


async def sign_out(request: Request, runtime: Runtime) -> None:
    """End the request's session, wherever its cookie was copied to."""
    visit = visit_of(request)
    if visit.session is not None:
        await runtime.store.sessions.end(visit.session.id_hash)
        visit.session = None
        visit.set_cookie(COOKIE, "", 0)


async def login_fingerprint(settings: Settings, secret_key: str) -> str | None:
    """The fingerprint of the dashboard login kept with each session (None without a
    login): scrypt (slow on purpose; a thread computes it) salted with the secret key."""
    if not login_required(settings):
        return None
    login = f"{settings.dashboard_user}\n{settings.dashboard_password}".encode()
    digest = await asyncio.to_thread(
        hashlib.scrypt, login, salt=secret_key.encode(), n=2**14, r=8, p=1, dklen=32
    )
    return digest.hex()


def login_required(settings: Settings) -> bool:
    """True when dashboard credentials are set (else the dashboard is loopback-only)."""
    return bool(settings.dashboard_user and settings.dashboard_password)


def _token(value: str | None) -> str | None:
    """`value` if it is what our cookies hold, else None."""
    return value if value is not None and TOKEN.fullmatch(value) else None


def _hash(session_id: str) -> str:
    """The key of a session's row: what the cookie holds cannot be read back from it."""
    return hashlib.sha256(session_id.encode()).hexdigest()
