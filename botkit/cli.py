"""The `botkit` command: run, simulator, send."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import secrets
import sys
from collections.abc import Sequence

from .errors import GatewayError, ValidationError
from .settings import Settings, describe

EPILOG = """\
examples:
  botkit run                          serve the bots in ./bots (simulator mode without credentials)
  botkit simulator --mo-url http://127.0.0.1:8000/callbacks/TOKEN/mo \\
                   --dlr-url http://127.0.0.1:8000/callbacks/TOKEN/dlr --port 9000
  botkit send +61400000000 "hi"       send one SMS with the configured credentials

settings (environment variables, overriding botkit.toml):
"""


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return args.command(args)
    except ValidationError as exc:
        print(f"botkit: {exc}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    settings_help = "\n".join(
        f"  {env:28} {text} (default {default})" for env, default, text in describe()
    )
    parser = argparse.ArgumentParser(
        prog="botkit",
        description="Two-way SMS bots for the Mobile Gateway HTTPS API v2.",
        epilog=EPILOG + settings_help,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "run",
        help="serve the app (with the built-in simulator when no credentials are set)",
        description="Serve the callbacks and bots with uvicorn. Without BOTKIT_APPLICATION "
        "and BOTKIT_PASSWORD the built-in gateway simulator is the gateway, and its phone "
        "page is served at /simulator/.",
        epilog="example:\n  botkit run --bots bots --templates templates --port 8000",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("--bots", help="folder of bot modules (default: bots)")
    run.add_argument("--templates", help="folder of templates (default: templates)")
    run.add_argument("--db", help="SQLite database file (default: botkit.db)")
    run.add_argument("--host", help="address to listen on (default: 127.0.0.1)")
    run.add_argument("--port", type=int, help="port to listen on (default: 8000)")
    run.set_defaults(command=_run)

    sim = commands.add_parser(
        "simulator",
        help="run a standalone emulator of the gateway",
        description="Emulate the Mobile Gateway HTTPS API v2 (and v1 error codes): "
        "GET /message takes MTs and answers as the gateway would; DLRs and MOs from "
        "simulated handsets go to the callback URLs; the phone page is at /.",
        epilog="example:\n  botkit simulator --port 9000 \\\n"
        "    --mo-url http://127.0.0.1:8000/callbacks/TOKEN/mo \\\n"
        "    --dlr-url http://127.0.0.1:8000/callbacks/TOKEN/dlr",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sim.add_argument("--host", default="127.0.0.1", help="address to listen on")
    sim.add_argument("--port", type=int, default=9000, help="port to listen on")
    sim.add_argument("--mo-url", required=True, help="where to send MO callbacks")
    sim.add_argument("--dlr-url", required=True, help="where to send DLR callbacks")
    sim.add_argument("--application", default="botkit", help="application name to accept")
    sim.add_argument("--password", default="simulator", help="password to accept (a test one)")
    sim.set_defaults(command=_simulator)

    send = commands.add_parser(
        "send",
        help="send one SMS with the configured credentials",
        description="Send one MT through the gateway named by BOTKIT_GATEWAY_URL with "
        "BOTKIT_APPLICATION and BOTKIT_PASSWORD. Prints the message id; on an error "
        "prints the gateway's answer and exits non-zero.",
        epilog='example:\n  botkit send +61400000000 "Your table is ready" --reference table-12',
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    send.add_argument("destination", help="number in international format, e.g. +61400000000")
    send.add_argument("text", help="the message text")
    route = send.add_mutually_exclusive_group()
    route.add_argument("--class", dest="message_class", help="message class (default BOTKIT_CLASS)")
    route.add_argument("--source", help="source number or short code (instead of a class)")
    send.add_argument("--mask", help="sender mask (needs a class)")
    send.add_argument("--reference", help="your reference, up to 50 characters")
    send.add_argument("--expires", help="RFC 3339 expiry, e.g. 2026-12-01T10:00:00+11:00")
    send.set_defaults(command=_send)
    return parser


def _run(args: argparse.Namespace) -> int:
    import uvicorn

    from .app import create_app
    from .logs import setup_logging

    settings = Settings.load(
        bots=args.bots, templates=args.templates, db=args.db, host=args.host, port=args.port
    )
    setup_logging(settings.log_format)
    if settings.simulator_mode and settings.callback_token is None:
        settings = dataclasses.replace(settings, callback_token=secrets.token_urlsafe(16))
    app = create_app(settings)
    _announce(settings)
    uvicorn.run(app, host=settings.host, port=settings.port, access_log=False, log_config=None)
    return 0


def _announce(settings: Settings) -> None:
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
    base = f"http://{host}:{settings.port}"
    if settings.simulator_mode:
        print(
            "botkit: no gateway credentials (BOTKIT_APPLICATION, BOTKIT_PASSWORD): "
            "running against the built-in gateway simulator.",
            f"  phone simulator:  {base}/simulator/",
            f"  database:         {settings.db}",
            f"  callback token:   {settings.callback_token}",
            sep="\n",
            flush=True,
        )
    else:
        print(
            f"botkit: sending through {settings.gateway_url} as {settings.application}",
            "  MO callback URL:  https://<your host>/callbacks/<BOTKIT_CALLBACK_TOKEN>/mo",
            "  DLR callback URL: https://<your host>/callbacks/<BOTKIT_CALLBACK_TOKEN>/dlr",
            f"  listening on:     {base}",
            sep="\n",
            flush=True,
        )


def _simulator(args: argparse.Namespace) -> int:
    import uvicorn

    from .logs import setup_logging
    from .simulator import Simulator

    setup_logging()
    simulator = Simulator(
        application=args.application,
        password=args.password,
        mo_url=args.mo_url,
        dlr_url=args.dlr_url,
    )
    print(
        f"botkit simulator: gateway at http://{args.host}:{args.port}/message, "
        f"phone page at http://{args.host}:{args.port}/",
        flush=True,
    )
    uvicorn.run(simulator.app, host=args.host, port=args.port, access_log=False, log_config=None)
    return 0


def _send(args: argparse.Namespace) -> int:
    from .gateway import Gateway

    settings = Settings.load()
    if settings.simulator_mode:
        raise ValidationError(
            "BOTKIT_APPLICATION", "set BOTKIT_APPLICATION and BOTKIT_PASSWORD to send"
        )
    assert settings.application is not None and settings.password is not None
    source = args.source or (None if args.message_class else settings.source)
    message_class = args.message_class or (None if source else settings.message_class)

    async def send() -> int:
        async with Gateway(
            url=settings.gateway_url,
            application=settings.application,
            password=settings.password,
        ) as gateway:
            return await gateway.send(
                args.destination,
                args.text,
                message_class=message_class,
                source=source,
                mask=args.mask,
                reference=args.reference,
                expires=args.expires,
            )

    try:
        print(asyncio.run(send()))
    except GatewayError as exc:
        print(f"botkit: gateway error: {exc.text}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
