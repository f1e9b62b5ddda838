"""The dashboard: conversations, transcripts, contacts, takeover, consent, surveys,
campaigns, deliveries and webhooks, server-rendered with autoescaping Jinja templates
(templates/dashboard/).

Private like /api (see access.py): loopback only, or a login with
BOTKIT_DASHBOARD_USER/PASSWORD. Pages escape everything a handset sent, and a
Content-Security-Policy allows no inline script. Each page module holds its routes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles

from .. import params  # noqa: F401  (registers the {name:id} path convertor)
from ..access import Guard
from ..sessions import Sessions
from ..settings import Settings
from . import (
    campaigns,
    consent,
    contact_list,
    conversations,
    deliveries,
    live,
    login,
    people,
    surveys,
    takeover,
    webhooks,
)
from .pages import STATIC, Pages

if TYPE_CHECKING:
    from ..runtime import Runtime


def dashboard_routes(settings: Settings, runtime: Runtime) -> Mount:
    """The dashboard, mounted at /dashboard: the login form and static files open, every
    other page behind the guard."""
    pages = Pages(settings, runtime.spool)
    private: list[BaseRoute] = [
        *conversations.routes(pages, runtime),
        *people.routes(pages, runtime),
        *contact_list.routes(pages, runtime),
        *takeover.routes(pages, runtime),
        *live.routes(pages, runtime),
        *surveys.routes(pages, runtime),
        *campaigns.routes(pages, runtime),
        *deliveries.routes(pages, runtime),
        *consent.routes(pages, runtime),
        *webhooks.routes(pages, runtime),
    ]
    return Mount(
        "/dashboard",
        name="dashboard",
        routes=[
            *login.routes(pages, runtime),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
            Mount(
                "",
                routes=private,
                middleware=[Middleware(Guard, runtime=runtime, login="dashboard:login")],
            ),
        ],
        middleware=[Middleware(Sessions, runtime=runtime)],
    )
