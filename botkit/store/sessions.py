"""Dashboard sessions: a row for each signed-in browser (botkit/sessions.py says what
the cookie holds), so that every process of a deployment knows them and logging out
ends one for good."""

from __future__ import annotations

from ..clock import later
from ..db import Row, Tx
from .base import Part


class Sessions(Part):
    """Starting, finding and ending dashboard sessions, each under a hash of its id."""

    async def start(
        self, id_hash: str, username: str, csrf: str, credentials: str, age: float
    ) -> None:
        """Keep a new session; those begun more than `age` seconds ago go (signing in is
        when they are swept: nothing else adds a row)."""

        async def write(tx: Tx) -> None:
            await tx.execute(
                "DELETE FROM dashboard_sessions WHERE created_at < ?", (later(self.clock, -age),)
            )
            await tx.execute(
                """INSERT INTO dashboard_sessions
                       (id_hash, username, csrf, credentials, created_at)
                   VALUES (?, ?, ?, ?, ?)""",
                (id_hash, username, csrf, credentials, self.now()),
            )

        await self.db.write(write)

    async def find(self, id_hash: str, age: float) -> Row | None:
        """The session's user, CSRF token and credentials; None if there is no such
        session, or it began more than `age` seconds ago."""
        return await self.db.fetchone(
            """SELECT username, csrf, credentials FROM dashboard_sessions
               WHERE id_hash = ? AND created_at >= ?""",
            (id_hash, later(self.clock, -age)),
        )

    async def end(self, id_hash: str) -> None:
        """Forget the session (logging out)."""
        await self.db.write(
            lambda tx: tx.execute("DELETE FROM dashboard_sessions WHERE id_hash = ?", (id_hash,))
        )
