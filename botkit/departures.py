"""Departure logs: which claimed MTs' requests left, so that after a crash the MTs a
sender had marked `sending` but never sent are queued again, not kept uncertain.

The sender commits many MTs `sending` in one transaction, before their requests leave:
a crash in between used to leave the gateway's answer unknowable for all of them. Now,
in the same step as the first byte of an MT's request goes to the socket
(botkit/streams.py), its id is appended to a log beside the SQLite file, by the process
that makes the request (the app's gateway process, botkit/gateway_process.py; the log
is named after the app's process, whose claims it speaks for): one write(), no fsync. A
killed process's writes are in the page cache, so its log is complete after a crash of
the process, not after one of the machine: each log names the boot it was written in
(Linux's boot id), and one of another boot, or none, tells nothing (every such MT stays
uncertain, as it would without a log).
"""

from __future__ import annotations

import contextlib
import contextvars
import fcntl
import logging
import os
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

log = logging.getLogger("botkit.sender")

# What the request being made on this task calls as its first byte leaves (None: no
# request of an MT). botkit/streams.py calls it; the sender sets it around each request.
DEPARTING: contextvars.ContextVar[Callable[[], None] | None] = contextvars.ContextVar(
    "botkit_departing", default=None
)

BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
MAGIC = "botkit-departures 1"
# A log is rewritten with only the MTs still in flight once it has grown this much.
COMPACT_AT = 1 << 20
_ID = re.compile(rb"[0-9]+")


class Unlogged(Exception):
    """An MT's departure could not be logged: its request must not leave (it surely
    never reached the gateway, and may be sent again)."""


def directory_for(db: str) -> Path:
    """Where the departure logs of the senders of the SQLite database `db` are kept."""
    return Path(f"{db}-departures")


def take_sole_use(db: str) -> int | None:
    """Lock the SQLite database `db` for this `botkit run`, until the process exits:
    the file descriptor of the lock (its departures directory, locked), or None if
    another process holds it. A start settles every claim it finds as a dead process's,
    so two processes serving one file would take each other's MTs and MOs."""
    directory = directory_for(db)
    directory.mkdir(mode=0o700, exist_ok=True)
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    if _flocked(fd):
        return fd
    os.close(fd)
    return None


def boot_id() -> str | None:
    """This boot of the machine, or None where the system does not say (not Linux)."""
    try:
        return BOOT_ID.read_text().strip() or None
    except OSError:
        return None


class DepartureLog:
    """One sending process's log, appended to as its MTs' requests leave."""

    def __init__(self, path: Path, header: bytes) -> None:
        self.path = path
        self._header = header
        self._size = 0
        self._in_flight: set[int] = set()  # left, their outcome not committed yet
        self._broken = False  # a write failed and the log could not be emptied
        self._fd: int | None = _locked(path)
        try:
            self._write(header)
        except BaseException:
            os.close(self._fd)
            path.unlink(missing_ok=True)
            raise

    @property
    def active(self) -> bool:
        """Whether departures are being logged (not after a failed write)."""
        return self._fd is not None

    @classmethod
    def open(cls, directory: Path, owner: str, carried: Iterable[int] = ()) -> DepartureLog | None:
        """A new log for the process `owner`; None where a log could tell nothing (no
        boot id) or cannot be written (it is said why). `carried`: MTs an earlier log of
        the same owner lists whose outcomes are not committed yet (its writer died), listed
        again as in flight."""
        boot = boot_id()
        if boot is None:
            return None
        carried = sorted(set(carried))
        try:
            directory.mkdir(mode=0o700, exist_ok=True)
            departures = cls(log_path(directory, owner), f"{MAGIC} {boot} {owner}\n".encode())
        except OSError as exc:
            log.error("no departure log (%s): MTs a crash interrupts stay uncertain", exc)
            return None
        for message_id in carried:
            departures.left(message_id)
        return departures

    def left(self, message_id: int) -> None:
        """MT `message_id`'s request is leaving: called before its first byte does."""
        if self._broken:
            raise Unlogged("the departure log could not be written nor emptied")
        if self._fd is None or message_id in self._in_flight:
            return
        self._in_flight.add(message_id)
        try:
            self._write(b"%d\n" % message_id)
        except OSError as exc:
            self._give_up(exc)  # raises when the log could still mislead

    def settled(self, message_id: int) -> None:
        """MT `message_id`'s outcome is committed: a crash can no longer leave it sending."""
        self._in_flight.discard(message_id)
        if self._fd is not None and self._size > COMPACT_AT:
            self._compact()

    def close(self) -> None:
        """The sender stopped: remove the log, unless an MT that left is still `sending`
        (its outcome could not be recorded), which the next start must keep uncertain."""
        if self._fd is None:
            return
        os.close(self._fd)
        self._fd = None
        if not self._in_flight:
            self.path.unlink(missing_ok=True)
            with contextlib.suppress(OSError):  # kept while another log is in it
                self.path.parent.rmdir()

    def _write(self, data: bytes) -> None:
        assert self._fd is not None
        _write_all(self._fd, data)
        self._size += len(data)

    def _compact(self) -> None:
        """Start the log again with only the MTs in flight: the others are settled."""
        fresh = self.path.with_suffix(".new")
        lines = b"".join(b"%d\n" % message_id for message_id in sorted(self._in_flight))
        try:
            fd = _locked(fresh)
            try:
                _write_all(fd, self._header + lines)
                os.replace(fresh, self.path)
            except BaseException:
                os.close(fd)
                fresh.unlink(missing_ok=True)
                raise
        except OSError as exc:
            log.warning("departure log not compacted, it grows on: %s", exc)
            return
        assert self._fd is not None
        os.close(self._fd)
        self._fd, self._size = fd, len(self._header) + len(lines)

    def _give_up(self, exc: OSError) -> None:
        """Stop logging after a failed write: the log is emptied (or removed), so that it
        tells nothing (a crash then leaves MTs uncertain, as without it). When neither
        can be done, no MT's request may leave any more: raises Unlogged, now and at
        every departure after."""
        assert self._fd is not None
        fd, self._fd = self._fd, None
        try:
            try:
                os.ftruncate(fd, 0)
            except OSError:
                self.path.unlink()
        except OSError:
            self._broken = True
            log.critical(
                "departure log %s can be neither written nor emptied: %s; "
                "no MT is sent until botkit is restarted",
                self.path,
                exc,
            )
            raise Unlogged(str(exc)) from exc
        finally:
            os.close(fd)
        log.error("departure log abandoned: %s; MTs a crash interrupts stay uncertain", exc)


def log_path(directory: Path, owner: str) -> Path:
    """The departure log of the process `owner` in `directory`."""
    return directory / (re.sub(r"[^A-Za-z0-9._-]", "_", owner) + ".log")  # the header names it


def read_log(path: Path) -> set[int] | None:
    """The MTs a dead process's log at `path` lists; None when it tells nothing (absent,
    unreadable, of another boot, cut short, or its writer alive)."""
    try:
        owner_and_ids = _read(path, boot_id())
    except OSError:
        return None
    return None if owner_and_ids is None else owner_and_ids[1]


def read_departures(directory: Path) -> dict[str, set[int]]:
    """The MTs whose requests left, by owner, from the logs in `directory` of processes
    that are gone (a live one holds a lock on its log) and were written in this boot of
    the machine: an owner left out tells nothing."""
    boot = boot_id()
    departed: dict[str, set[int]] = {}
    if boot is None or not directory.is_dir():
        return departed
    for path in directory.glob("*.log"):
        try:
            owner_and_ids = _read(path, boot)
        except OSError as exc:
            log.warning("departure log %s unreadable: %s", path, exc)
            continue
        if owner_and_ids is not None:
            owner, ids = owner_and_ids
            departed[owner] = ids
    return departed


def _read(path: Path, boot: str | None) -> tuple[str, set[int]] | None:
    """The owner of the log at `path` and the MTs it lists, when its writer is dead and it
    was written in the boot `boot` (else None); OSError when it cannot be read."""
    with _lock_of_the_dead(path) as dead:
        text = path.read_bytes() if dead else b""
    header, _, ids = text.partition(b"\n")
    written_in, _, owner = header.decode("utf-8", "replace").rpartition(" ")
    if boot is None or written_in != f"{MAGIC} {boot}":  # another boot, cut short, or alive
        return None
    return owner, {int(line) for line in ids.split(b"\n") if _ID.fullmatch(line)}


def remove_dead_logs(directory: Path) -> None:
    """Delete the logs of every process that is gone (their MTs are settled now), of
    this boot or another, and what a compaction cut short left."""
    if not directory.is_dir():
        return
    for path in [*directory.glob("*.log"), *directory.glob("*.new")]:
        with contextlib.suppress(OSError), _lock_of_the_dead(path) as dead:
            if dead:
                path.unlink(missing_ok=True)


@contextlib.contextmanager
def _lock_of_the_dead(path: Path) -> Iterator[bool]:
    """Whether the process that wrote `path` is gone: a live one holds its lock (the
    kernel frees it when the process dies, however it dies)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        yield _flocked(fd)
    finally:
        os.close(fd)


def _locked(path: Path) -> int:
    """Open `path` afresh for writing, locked for as long as this process keeps it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    if _flocked(fd):
        return fd
    os.close(fd)
    raise BlockingIOError(f"{path} is locked by another process")


def _flocked(fd: int) -> bool:
    """Take the exclusive lock on `fd`'s file without waiting: whether it was free."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _write_all(fd: int, data: bytes) -> None:
    """Write `data` whole, or raise: a short write (a full disk) is an error here."""
    written = os.write(fd, data)
    if written != len(data):
        raise OSError(f"short write to the departure log ({written} of {len(data)} bytes)")
