"""The botkit ASGI app: the callbacks, health check and, in simulator mode, the simulator.

app = create_app(Settings.load())
uvicorn.run(app)
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import secrets
from collections.abc import AsyncIterator, Callable, Sequence

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from .access import Guard
from .api import api_routes
from .bot import Bot
from .callbacks import CallbackEndpoints
from .clock import Clock, system_clock
from .dashboard import dashboard_routes
from .db import DatabaseError
from .errors import ValidationError
from .gateway import Gateway
from .gateway_process import GatewayProcess
from .loader import load_bots
from .metrics import CONTENT_TYPE
from .phone import HandlingLookup
from .runtime import Runtime
from .sessions import Sessions
from .settings import Settings
from .simulator import Simulator
from .spool import Spool

log = logging.getLogger("botkit")

# In simulator mode the app and the simulator call each other in-process, at these hosts.
APP_ORIGIN = "http://botkit.internal"
SIMULATOR_ORIGIN = "http://simulator.internal"


def create_app(
    settings: Settings,
    *,
    bots: Sequence[Bot] | None = None,
    gateway: Gateway | GatewayProcess | None = None,
    clock: Clock = system_clock,
    reload: bool = False,
) -> Starlette:
    """Build the app. Without gateway credentials (and no `gateway` given) the built-in
    simulator is the gateway, mounted at /simulator with its phone page (as private as
    the dashboard: this machine only, or the dashboard's login). `reload`
    reloads bot modules and templates when their files change (for development)."""
    if settings.callback_token is None and not settings.simulator_mode:
        raise ValidationError(
            "BOTKIT_CALLBACK_TOKEN", "is required when a gateway application is set"
        )
    if settings.callback_token is None:
        settings = dataclasses.replace(settings, callback_token=secrets.token_urlsafe(16))
    token = settings.callback_token
    assert token is not None
    if bots is None:
        bots = load_bots(settings.bots)
    simulator: Simulator | None = None
    clients: list[httpx.AsyncClient] = []
    if gateway is None and settings.simulator_mode:
        simulator, gateway, clients = _in_process_simulator(
            token,
            settings,
            clock,
            lambda: app,
            handling=lambda ids: runtime.store.conversations.handling(ids),
        )
    elif gateway is None:
        assert settings.application is not None and settings.password is not None
        # Its requests cost most of an MT's CPU: a process of its own runs them.
        gateway = GatewayProcess(
            url=settings.gateway_url,
            application=settings.application,
            password=settings.password,
            log_format=settings.log_format,
            log_level=logging.getLogger().getEffectiveLevel(),
        )
    runtime = Runtime(settings, bots, gateway, clock=clock, reload=reload)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            # Inside the try: a start that fails half way closes what it opened.
            await runtime.start()
            yield
        finally:
            await runtime.stop()
            if simulator is not None:
                await simulator.aclose()
            for client in clients:
                await client.aclose()

    routes: list[BaseRoute] = [
        Route("/", _home, methods=["GET"]),
        Route("/healthz", _healthz, methods=["GET"]),
        Route("/metrics", _metrics, methods=["GET"]),
        api_routes(settings, runtime),
        dashboard_routes(settings, runtime),
    ]
    if simulator is not None:
        # Its phone page shows every message and sends MOs: as private as the dashboard.
        # (The app's gateway client calls simulator.app itself, not through this mount.)
        guard = [
            Middleware(Sessions, runtime=runtime),
            Middleware(Guard, runtime=runtime, login="dashboard:login"),
        ]
        routes.append(Mount("/simulator", app=simulator.app, name="simulator", middleware=guard))
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        # The gateway's callbacks, the hot path, are served ahead of routing.
        middleware=[Middleware(CallbackEndpoints, runtime=runtime, token=token)],
        exception_handlers={ValidationError: _bad_parameter, DatabaseError: _database_away},
    )
    app.state.runtime = runtime
    app.state.settings = settings
    app.state.simulator = simulator
    return app


def _in_process_simulator(
    token: str,
    settings: Settings,
    clock: Clock,
    get_app: Callable[[], ASGIApp],
    *,
    handling: HandlingLookup,
) -> tuple[Simulator, Gateway, list[httpx.AsyncClient]]:
    """A simulator wired to the app in-process: the gateway client reaches the simulator,
    and the simulator's callbacks reach the app, through ASGI transports (no sockets). It
    plays an account with our numbers and class, tells expiry by the app's clock, and
    shows how the app handled each MO (`handling`, read from the app's store)."""

    async def forward(scope: Scope, receive: Receive, send: Send) -> None:
        await get_app()(scope, receive, send)

    password = secrets.token_urlsafe(16)
    to_app = httpx.AsyncClient(transport=httpx.ASGITransport(app=forward))
    simulator = Simulator(
        application="botkit",
        password=password,
        mo_url=f"{APP_ORIGIN}/callbacks/{token}/mo",
        dlr_url=f"{APP_ORIGIN}/callbacks/{token}/dlr",
        http=to_app,
        numbers=settings.numbers,
        classes=(settings.message_class,),
        clock=clock,
        dashboard="../dashboard/",  # from the phone page at /simulator/
        handling=handling,
    )
    to_simulator = httpx.AsyncClient(transport=httpx.ASGITransport(app=simulator.app))
    gateway = Gateway(
        url=f"{SIMULATOR_ORIGIN}/message",
        application="botkit",
        password=password,
        http=to_simulator,
    )
    return simulator, gateway, [to_app, to_simulator]


async def _home(request: Request) -> Response:
    if request.app.state.simulator is not None:
        return RedirectResponse(request.url_for("simulator", path="/"))
    return PlainTextResponse("botkit is running")


async def _bad_parameter(request: Request, exc: Exception) -> Response:
    """A page or /api request with a malformed parameter: 400, naming it."""
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": str(exc)}, status_code=400)
    return PlainTextResponse(f"Bad request: {exc}", status_code=400)


async def _database_away(request: Request, exc: Exception) -> Response:
    """A page or /api request while the database cannot be reached: 503, saying so
    (and what waits in the spool meanwhile), not a 500 and a closed connection."""
    runtime: Runtime = request.app.state.runtime
    log.error("%s %s: the database is away: %s", request.method, request.url.path, exc)
    text = f"The database is away: try again in a moment.{spool_state(runtime.spool)}"
    headers = {"Retry-After": "5"}
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": text}, status_code=503, headers=headers)
    return PlainTextResponse(text, status_code=503, headers=headers)


async def _healthz(request: Request) -> Response:
    """200 `OK` while the database answers and every worker runs, else 503; either way
    saying what waits in the spool, if anything does."""
    runtime: Runtime = request.app.state.runtime
    spool = spool_state(runtime.spool)
    try:
        await runtime.store.db.fetchval("SELECT 1")
    except Exception as exc:
        log.error("health check failed: %s", exc)
        return PlainTextResponse(f"ERROR database unreachable{spool}", status_code=503)
    if stopped := runtime.stopped_workers():
        return PlainTextResponse(f"ERROR not running: {', '.join(stopped)}{spool}", status_code=503)
    return PlainTextResponse(f"OK{spool}")


def spool_state(spool: Spool) -> str:
    """What waits in the spool, for /healthz: empty when nothing does."""
    said = []
    if spool.waiting:
        said.append(f"{spool.waiting} callbacks waiting to be stored, the oldest {spool.age:.0f}s")
    if spool.set_aside_count:
        said.append(f"{spool.set_aside_count} records set aside, not stored: see {spool.folder}")
    if foreign := sum(spool.foreign.values()):
        said.append(f"{foreign} records of another database left alone")
    if spool.broken is not None:
        said.append(f"cannot be written: {spool.broken.strerror}")
    return f" (spool: {'; '.join(said)})" if said else ""


async def _metrics(request: Request) -> Response:
    """Prometheus metrics: the app's counters, the queue depths read now (NaN while the
    database cannot be read: the spool's figures matter most then), and the spool's."""
    runtime: Runtime = request.app.state.runtime
    try:
        inbox_depth = await runtime.store.inbox.depth()
        outbox_depth = await runtime.store.outbox.depth()
        webhooks_pending = await runtime.store.webhooks.pending()
    except Exception as exc:
        log.error("metrics: could not read the queue depths: %s", exc)
        inbox_depth = outbox_depth = webhooks_pending = math.nan
    body = runtime.metrics.render(
        inbox_depth=inbox_depth,
        outbox_depth=outbox_depth,
        webhooks_pending=webhooks_pending,
        spool_depth=runtime.spool.waiting,
        spool_age_seconds=runtime.spool.age,
        spool_set_aside=runtime.spool.set_aside_count,
    )
    return Response(body, media_type=CONTENT_TYPE)
