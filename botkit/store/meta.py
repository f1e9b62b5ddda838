"""Values the app makes once and keeps, such as the dashboard's session key."""

from __future__ import annotations

from collections.abc import Callable

from ..db import Tx
from .base import Part


class Meta(Part):
    """One row a name; the first process to ask for a name makes its value."""

    async def get_or_create(self, name: str, make: Callable[[], str]) -> str:
        """The value stored under `name`, storing `make()` first if there is none."""

        async def write(tx: Tx) -> str:
            await tx.execute(
                "INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
                (name, make()),
            )
            return await tx.fetchval("SELECT value FROM meta WHERE name = ?", (name,))

        return await self.db.write(write)
