"""botkit send: send one MT with the configured credentials."""

from __future__ import annotations

import argparse
import asyncio
import sys

from ..errors import GatewayError, ValidationError
from ..localtime import parse_local
from ..settings import Settings

NAME = "send"
HELP = "send one SMS with the configured credentials"
DESCRIPTION = (
    "Send one MT through the gateway named by BOTKIT_GATEWAY_URL with BOTKIT_APPLICATION "
    "and BOTKIT_PASSWORD. Prints the message id; on an error prints the gateway's answer "
    "and exits non-zero."
)
EXAMPLES = """\
  botkit send +61400000000 "Your table is ready" --reference table-12
  botkit send +64211234567 "Sale on now" --class mt_message --mask ACME"""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("destination", help="number in international format, e.g. +61400000000")
    parser.add_argument("text", help="the message text")
    route = parser.add_mutually_exclusive_group()
    route.add_argument("--class", dest="message_class", help="message class (default BOTKIT_CLASS)")
    route.add_argument("--source", help="source number or short code (instead of a class)")
    parser.add_argument("--mask", help="sender mask (needs a class)")
    parser.add_argument("--reference", help="your reference, up to 50 characters")
    parser.add_argument(
        "--expires",
        help="expiry, e.g. 2026-12-01T10:00 (in BOTKIT_TIMEZONE) or 2026-12-01T10:00:00+11:00",
    )


def main(args: argparse.Namespace) -> int:
    from ..gateway import Gateway

    settings = Settings.load()
    if settings.application is None or settings.password is None:
        raise ValidationError(
            "BOTKIT_APPLICATION", "set BOTKIT_APPLICATION and BOTKIT_PASSWORD to send"
        )
    source = args.source
    expires = parse_local(args.expires, settings.zone, "--expires") if args.expires else None
    message_class = args.message_class or (None if source else settings.message_class)
    gateway = Gateway(
        url=settings.gateway_url, application=settings.application, password=settings.password
    )

    async def send() -> int:
        # Without --source it goes from the default number (when BOTKIT_NUMBERS says which).
        sender = source or (settings.numbers[0] if settings.numbers else None)
        await _refuse_if_opted_out(settings, args.destination, sender)
        async with gateway:
            return await gateway.send(
                args.destination,
                args.text,
                message_class=message_class,
                source=source,
                mask=args.mask,
                reference=args.reference,
                expires=expires,
            )

    try:
        print(asyncio.run(send()))
    except GatewayError as exc:
        print(f"botkit: gateway error: {exc.text}", file=sys.stderr)
        return 1
    except OptedOut as exc:
        print(f"botkit: not sent: {exc}", file=sys.stderr)
        return 1
    return 0


class OptedOut(Exception):
    """The destination opted out of messages from us."""


async def _refuse_if_opted_out(settings: Settings, destination: str, source: str | None) -> None:
    """Consent holds here too: a number that opted out (in BOTKIT_DB) gets nothing."""
    from pathlib import Path

    from ..db import Database, is_url
    from ..numbers import international
    from ..store import Store

    if not is_url(settings.db) and not Path(settings.db).is_file():
        return
    number = international(destination, "destination")
    db = await Database.open(settings.db)
    try:
        consent = Store(db).consent
        if await (
            consent.suppressed(number, source) if source else consent.suppressed_anywhere(number)
        ):
            raise OptedOut(f"{number} opted out of messages from {source or 'us'}")
    finally:
        await db.close()
