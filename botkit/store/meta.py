"""Values the app makes once and keeps, such as the dashboard's session key."""

from __future__ import annotations

from collections.abc import Callable

from ..db import Tx
from .base import Part


async def value(tx: Tx, name: str) -> str | None:
    """The value stored under `name`, if any."""
    return await tx.fetchval("SELECT value FROM meta WHERE name = ?", (name,))


async def remember(tx: Tx, name: str, value: str | None) -> None:
    """Store `value` under `name`, over any there; None forgets it."""
    if value is None:
        await tx.execute("DELETE FROM meta WHERE name = ?", (name,))
        return
    await tx.execute(
        """INSERT INTO meta (name, value) VALUES (?, ?)
           ON CONFLICT (name) DO UPDATE SET value = excluded.value""",
        (name, value),
    )


class Meta(Part):
    """One row a name; the first process to ask for a name makes its value."""

    async def get_or_create(self, name: str, make: Callable[[], str]) -> str:
        """The value stored under `name`, storing `make()` first if there is none."""

        async def write(tx: Tx) -> str:
            await tx.execute(
                "INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
                (name, make()),
            )
            found = await value(tx, name)
            assert found is not None  # inserted just now, or already there
            return found

        return await self.db.write(write)
