"""botkit webhooks: add, list and remove the webhooks kept in the database."""

from __future__ import annotations

import argparse
import asyncio
import secrets

from ..errors import ValidationError
from ..events import EVENTS
from ..settings import Settings
from ..webhooks.subscriptions import (
    Webhook,
    event_names,
    from_row,
    webhook_secret,
    webhook_url,
)
from .options import add_db, opened_store

NAME = "webhooks"
HELP = "add, list or remove webhooks: URLs told of events by a signed POST"
DESCRIPTION = (
    "add URL --events E1,E2 [--secret S]: keep a webhook in the database (BOTKIT_DB, or "
    "--db); with no --secret one is made and printed, this once: give it to the "
    "receiver, which checks each delivery's signature with it. The events are "
    f"{', '.join(EVENTS)}. A URL is https, or http to this machine. "
    "list: every webhook, those of the settings (BOTKIT_WEBHOOK_URL, BOTKIT_WEBHOOKS) "
    "and those of the database, with the last 4 characters of its secret. "
    "remove ID: forget a webhook of the database; what it still had to send fails. "
    "A running app picks up a change within 10 seconds. See docs/webhooks.md."
)
EXAMPLES = """\
  botkit webhooks add https://crm.example/botkit --events survey.completed,contact.opted_out
  botkit webhooks list
  botkit webhooks remove 3"""

SECRET_BYTES = 32


def configure(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(title="actions", required=True, metavar="ACTION")
    adder = actions.add_parser("add", help="keep a webhook in the database")
    adder.add_argument("url", metavar="URL", help="where to POST the events")
    adder.add_argument("--events", required=True, help=f"comma-separated, of {', '.join(EVENTS)}")
    adder.add_argument("--secret", help="the signing secret (default: made and printed)")
    adder.set_defaults(action=_add)
    lister = actions.add_parser("list", help="every webhook, of the settings and the database")
    lister.set_defaults(action=_list)
    remover = actions.add_parser("remove", help="forget a webhook of the database")
    remover.add_argument("id", metavar="ID", type=int, help="its number, as `list` shows it")
    remover.set_defaults(action=_remove)
    for sub in (adder, lister, remover):
        add_db(sub)


def main(args: argparse.Namespace) -> int:
    return args.action(args)


def _add(args: argparse.Namespace) -> int:
    settings = Settings.load(db=args.db)
    made = args.secret is None
    secret = f"whsec_{secrets.token_urlsafe(SECRET_BYTES)}" if made else args.secret
    hook = Webhook(
        webhook_url(args.url, "URL"),
        webhook_secret(secret, "--secret"),
        event_names(args.events, "--events"),
    )
    if any(given.url == hook.url for given in settings.all_webhooks()):
        raise ValidationError("URL", f"{hook.shown} is a webhook of the settings already")
    added = asyncio.run(_stored(settings.db, hook))
    if added is None:
        raise ValidationError("URL", f"{hook.shown} is a webhook already: remove it first")
    print(f"webhook {added}: {hook.shown} ({', '.join(hook.events)})")
    if made:
        print(f"secret (shown this once): {secret}")
    return 0


async def _stored(database: str, hook: Webhook) -> int | None:
    async with opened_store(database) as store:
        return await store.webhooks.add(hook.url, hook.secret, hook.events)


def _list(args: argparse.Namespace) -> int:
    settings = Settings.load(db=args.db)
    hooks = [*settings.all_webhooks(), *asyncio.run(_from_database(settings.db))]
    if not hooks:
        print("no webhooks")
    for hook in hooks:
        number = "-" if hook.id is None else str(hook.id)
        print(f"{number:>4}  {hook.shown}  {','.join(hook.events)}  secret {hook.hint}")
    return 0


async def _from_database(database: str) -> list[Webhook]:
    async with opened_store(database) as store:
        rows = await store.webhooks.stored()
    return [from_row(row) for row in rows]


def _remove(args: argparse.Namespace) -> int:
    settings = Settings.load(db=args.db)

    async def remove() -> bool:
        async with opened_store(settings.db) as store:
            return await store.webhooks.remove(args.id)

    if not asyncio.run(remove()):
        raise ValidationError("ID", f"no webhook {args.id} in the database (see `list`)")
    print(f"webhook {args.id} removed")
    return 0
