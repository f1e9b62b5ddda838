"""`botkit run --reload`: bot modules reloaded in-process when their files change.

Only the routing table is swapped, so the database, the outbox, the simulator's
conversations and the MOs being handled all carry on. A module that no longer
loads (a syntax error, two bots claiming a keyword) is reported and the bots
already running are kept. Templates reload on their own (Jinja's auto_reload).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from .loader import load_bots
from .router import Router
from .worker import Worker

log = logging.getLogger("botkit.reload")

POLL_SECONDS = 0.5


def snapshot(folder: Path) -> dict[Path, tuple[float, int]]:
    """Modification time and size of every bot module in `folder`."""
    found = {}
    for path in folder.glob("*.py"):
        try:
            info = path.stat()
        except FileNotFoundError:
            continue
        found[path] = (info.st_mtime, info.st_size)
    return found


class Reloader(Worker):
    """Watches the bots folder and hands a new Router to `install` after a change."""

    name = "reloader"

    def __init__(self, folder: str | Path, install: Callable[[Router], None]) -> None:
        super().__init__()
        self.folder = Path(folder)
        self.install = install
        self._seen = snapshot(self.folder)

    async def _run(self) -> None:
        while True:
            await self.sleep(POLL_SECONDS)
            self.check()

    def check(self) -> bool:
        """Reload if a module changed since the last look; True if new bots went in."""
        now = snapshot(self.folder)
        if now == self._seen:
            return False
        self._seen = now
        try:
            router = Router(load_bots(self.folder))
        except Exception:
            log.exception("bots not reloaded: keeping the ones already running")
            return False
        self.install(router)
        log.info("reloaded bots: %s", ", ".join(router.bots) or "none")
        return True
