"""botkit run: serve the app with uvicorn."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import errno
import ipaddress
import os
import secrets
import socket
from collections.abc import Iterable

from .. import heap
from ..bot import Bot
from ..compliance import taken_keywords
from ..db import Database, DatabaseError, is_url, redact
from ..departures import take_sole_use
from ..errors import ValidationError
from ..serving import UVICORN_OPTIONS, raise_open_files
from ..settings import Settings
from .options import add_db

NAME = "run"
HELP = "serve the app (with the built-in simulator when no credentials are set)"
DESCRIPTION = (
    "Serve the callbacks and bots with uvicorn. Without BOTKIT_APPLICATION and "
    "BOTKIT_PASSWORD the built-in gateway simulator is the gateway, and its phone "
    "page is served at /simulator/."
)
EXAMPLES = """\
  botkit run
  botkit run --reload                 reload bots and templates as you edit them
  botkit run --bots bots --templates templates --db botkit.db --port 8000
  botkit run --host 127.0.0.1 --forwarded-allow-ips 127.0.0.1   behind nginx on this host"""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bots", help="folder of bot modules (default: bots)")
    parser.add_argument("--templates", help="folder of templates (default: templates)")
    add_db(parser)
    parser.add_argument("--host", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to listen on (default: 8000)")
    parser.add_argument(
        "--forwarded-allow-ips",
        metavar="IPS",
        help="comma-separated IPs/CIDRs of reverse proxies whose X-Forwarded-For is "
        "believed, * for any (default: 127.0.0.1)",
    )
    parser.add_argument(
        "--reload",
        action="store_true",
        help="reload bot modules and templates when they change (for development)",
    )


def main(args: argparse.Namespace) -> int:
    import uvicorn

    from ..app import create_app
    from ..logs import setup_logging

    settings = Settings.load(
        bots=args.bots,
        templates=args.templates,
        db=args.db,
        host=args.host,
        port=args.port,
        forwarded_allow_ips=args.forwarded_allow_ips,
    )
    listenable(settings.host, settings.port)  # before the banner says where it listens
    setup_logging(settings.log_format)
    if settings.simulator_mode and settings.callback_token is None:
        settings = dataclasses.replace(settings, callback_token=secrets.token_urlsafe(16))
    if is_url(settings.db):  # a server that is down or refuses the login: say so plainly
        asyncio.run(reachable(settings.db))
    elif take_sole_use(settings.db) is None:  # held until the process exits
        raise DatabaseError(
            f"another `botkit run` is serving {settings.db}: one process at a time may "
            "serve a SQLite file (PostgreSQL serves several: docs/scaling.md)"
        )
    app = create_app(settings, reload=args.reload)
    announce(settings, app.state.runtime.router.bots.values())
    if not args.reload:  # reloaded bots' old modules would stay frozen for good
        heap.freeze()
    raise_open_files()  # a connection is an open file: as many as the system allows us
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        forwarded_allow_ips=trusted_proxies(settings),
        **UVICORN_OPTIONS,
    )
    return 0


def listenable(host: str, port: int) -> None:
    """ValidationError, naming the setting to change, if `botkit run` could not listen
    on `host` and `port` because the port is taken or not ours to take (uvicorn would
    only log the error, after the banner). Anything else is left for uvicorn to say."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as sock:
        if os.name == "posix":  # as asyncio binds uvicorn's sockets
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            where = f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"
            if exc.errno == errno.EADDRINUSE:
                raise ValidationError(
                    "BOTKIT_PORT",
                    f"{where} is taken (another botkit run?): choose another port with "
                    "--port or BOTKIT_PORT",
                ) from None
            if exc.errno == errno.EACCES:
                raise ValidationError(
                    "BOTKIT_PORT", f"{where} is not ours to listen on: {exc.strerror}"
                ) from None


async def reachable(url: str) -> None:
    """Connect to the database at `url` once; DatabaseError if it cannot be."""
    db = await Database.open(url)
    await db.close()


def trusted_proxies(settings: Settings) -> list[str] | str:
    """BOTKIT_FORWARDED_ALLOW_IPS for uvicorn, CIDRs normalised (uvicorn parses them
    strictly and would quietly never match `10.0.0.1/8`)."""
    if settings.forwarded_allow_ips == ("*",):
        return "*"
    return [
        str(ipaddress.ip_network(entry, strict=False)) for entry in settings.forwarded_allow_ips
    ]


def announce(settings: Settings, bots: Iterable[Bot]) -> None:
    """Say on start-up what the app talks to, where to reach it, and which bots answer
    which keywords, warning of a keyword that compliance takes first."""
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
    base = f"http://{host}:{settings.port}"
    default, *others = settings.numbers
    numbers = f"{default} (default, by class {settings.message_class})" + "".join(
        f", {number}" for number in others
    )
    if settings.simulator_mode:
        lines = [
            "botkit: no gateway credentials (BOTKIT_APPLICATION, BOTKIT_PASSWORD): "
            "running against the built-in gateway simulator.",
            f"  phone simulator:  {base}/simulator/",
            f"  our numbers:      {numbers}",
            f"  dashboard:        {base}/dashboard/ {dashboard_access(settings)}",
            f"  database:         {redact(settings.db)}",
            f"  callback token:   {settings.callback_token}",
        ]
    else:
        lines = [
            f"botkit: sending through {redact(settings.gateway_url)} as {settings.application}",
            "  MO callback URL:  https://<your host>/callbacks/<BOTKIT_CALLBACK_TOKEN>/mo",
            "  DLR callback URL: https://<your host>/callbacks/<BOTKIT_CALLBACK_TOKEN>/dlr",
            f"  our numbers:      {numbers}",
            f"  listening on:     {base}",
            f"  dashboard:        {base}/dashboard/ {dashboard_access(settings)}",
        ]
    bots = list(bots)
    lines += bot_lines(bots)
    lines += [f"botkit: warning: {taken}" for taken in taken_keywords(bots, settings)]
    print(*lines, sep="\n", flush=True)


def bot_lines(bots: list[Bot]) -> list[str]:
    """One line a bot: its name and its keywords, aliases included."""
    if not bots:
        return ["  bots:             none"]
    listed = [f"{bot.name}: {', '.join(bot.keywords) or 'no keywords'}" for bot in bots]
    return [f"  {'bots:' if n == 0 else '':18}{line}" for n, line in enumerate(listed)]


def dashboard_access(settings: Settings) -> str:
    """Who may open the dashboard, as said on start-up."""
    if settings.dashboard_user and settings.dashboard_password:
        return f"(log in as {settings.dashboard_user})"
    return (
        "(only from this machine: set BOTKIT_DASHBOARD_USER and BOTKIT_DASHBOARD_PASSWORD "
        "for a login)"
    )
