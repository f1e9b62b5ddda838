"""Online backup of the SQLite database: a consistent copy while the app keeps running.

    pages = backup("botkit.db", "/var/backups/botkit/2026-03-01.db")

sqlite3's backup API copies the database in steps of pages. Alone, a step starts the
copy over whenever another connection wrote since the last step, so under steady
traffic it might never end. One read transaction held across all the steps pins a WAL
snapshot instead: the app goes on writing, and the copy is the database as it was when
the backup began. The copy is written beside the target, checked with
`PRAGMA integrity_check`, and only then renamed into place.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
from collections.abc import Callable
from pathlib import Path

from .db import existing_file
from .errors import BackupError, ValidationError

PAGES_PER_STEP = 1024
Progress = Callable[[int, int], None]  # (pages copied, pages in all)


def backup(
    source: str,
    target: str | Path,
    *,
    force: bool = False,
    pages: int = PAGES_PER_STEP,
    progress: Progress | None = None,
) -> int:
    """Copy the database at `source` to `target` and check the copy; return its pages.

    An existing `target` is refused unless `force`; nothing is left at `target` (or
    beside it) unless the copy is whole and passed its integrity check.
    """
    database = existing_file(source)
    target = Path(target)
    if target.exists() and target.samefile(database):
        raise ValidationError(str(target), "is the database itself")
    if target.exists() and not force:
        raise ValidationError(str(target), "exists; pass --force to overwrite it")
    temporary = _temporary_beside(target)
    try:
        total = _copy(database, temporary, pages, progress)
        _check(temporary)
        _place(temporary, target, force)
    finally:
        temporary.unlink(missing_ok=True)
    return total


def _temporary_beside(target: Path) -> Path:
    """An empty file in the target's folder, so that the final rename stays atomic."""
    try:
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except FileNotFoundError:
        raise ValidationError(str(target), f"its folder {target.parent} does not exist") from None
    os.close(fd)
    return Path(name)


def _copy(database: Path, temporary: Path, pages: int, progress: Progress | None) -> int:
    """Copy `database` to `temporary` in steps of `pages`, inside one read transaction."""
    source = sqlite3.connect(
        f"{database.resolve().as_uri()}?mode=rw", uri=True, isolation_level=None
    )
    copy = sqlite3.connect(temporary)
    total = 0

    def step(status: int, remaining: int, count: int) -> None:
        nonlocal total
        total = count
        if progress is not None:
            progress(count - remaining, count)

    try:
        source.execute("PRAGMA busy_timeout = 5000")
        source.execute("BEGIN")
        source.execute("SELECT count(*) FROM sqlite_master")  # the snapshot starts here
        source.backup(copy, pages=pages, progress=step)
        source.execute("COMMIT")
        # One self-contained file: a backup should not need a -wal file beside it.
        copy.execute("PRAGMA journal_mode = DELETE")
    except sqlite3.Error as exc:
        raise BackupError(f"could not copy {database}: {exc}") from None
    finally:
        copy.close()
        source.close()
    return total


def _check(temporary: Path) -> None:
    """Refuse a copy that fails `PRAGMA integrity_check`."""
    with contextlib.closing(sqlite3.connect(temporary)) as copy:
        problems = [row[0] for row in copy.execute("PRAGMA integrity_check")]
    if problems != ["ok"]:
        raise BackupError(f"the copy failed its integrity check: {'; '.join(problems[:5])}")


def _place(temporary: Path, target: Path, force: bool) -> None:
    """Move the checked copy to `target`, durably; without `force`, never over a file
    that appeared meanwhile (a hard link, unlike a rename, fails if the name exists)."""
    if force:
        os.replace(temporary, target)
    else:
        try:
            os.link(temporary, target)
        except FileExistsError:
            raise ValidationError(str(target), "exists; pass --force to overwrite it") from None
    folder = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
