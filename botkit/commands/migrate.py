"""botkit migrate: bring the database's schema up to date."""

from __future__ import annotations

import argparse
import asyncio

from ..db import redact
from ..settings import Settings
from .options import add_db

NAME = "migrate"
HELP = "apply the schema migrations the database lacks"
DESCRIPTION = (
    "Apply, in order, the numbered schema migrations the database (BOTKIT_DB, or --db) "
    "has not had yet, each in its own transaction, and say which. `botkit run` does the "
    "same when it starts; run this first to upgrade a database while the app is stopped, "
    "or to see that it is up to date."
)
EXAMPLES = """\
  botkit migrate
  botkit migrate --db /var/lib/botkit/botkit.db"""


def configure(parser: argparse.ArgumentParser) -> None:
    add_db(parser)


def main(args: argparse.Namespace) -> int:
    from ..db import Database
    from ..migrations import MIGRATIONS, migrate

    settings = Settings.load(db=args.db)

    async def upgrade() -> list[int]:
        db = await Database.open(settings.db)
        try:
            return await migrate(db)
        finally:
            await db.close()

    applied = asyncio.run(upgrade())
    names = {migration.version: migration.name for migration in MIGRATIONS}
    for version in applied:
        print(f"applied {version}: {names[version]}")
    latest = max(names)
    print(
        f"{redact(settings.db)}: schema version {latest}, "
        + ("up to date" if applied else "already up to date")
    )
    return 0
