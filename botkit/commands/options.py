"""Options, and the store, that several commands share."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..store import Store


def add_db(parser: argparse.ArgumentParser) -> None:
    """The --db option of a command that opens the database."""
    parser.add_argument(
        "--db", help="SQLite file or postgresql:// URL (default: BOTKIT_DB, else botkit.db)"
    )


@contextlib.asynccontextmanager
async def opened_store(database: str) -> AsyncIterator[Store]:
    """The store of `database`, its schema brought up to date first."""
    from ..db import Database
    from ..migrations import migrate
    from ..store import Store

    db = await Database.open(database)
    try:
        await migrate(db)
        yield Store(db)
    finally:
        await db.close()
