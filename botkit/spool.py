"""The spool: callbacks kept on local disk while the database cannot commit them.

A callback that cannot be stored is appended here, fsynced, and only then answered
200; `replay.py` stores what waits here once the database is back, and it is removed.
While anything waits, later callbacks are appended behind it, so one handset's MOs are
stored in the order they came to this process.

Each process appends to files of its own (a stream: `{stream}.lock`, held locked for
the process's life and naming the database, and `{stream}.{seq}.spool`, a new one each
time the replay takes the one being written). A stream whose lock nobody holds belongs
to a process that died: another process (or the next run) adopts it. A record is a
line (spool_records.py). A record the store keeps refusing is set aside
in `{stream}.set-aside`, kept, never replayed. The folder must be on a local disk:
locks on a network file system cannot be trusted.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import os
import re
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .spool_records import Record, count, encode, read

log = logging.getLogger("botkit.spool")

SEGMENT = re.compile(r"(?P<stream>[0-9]+-[0-9a-f]+)\.(?P<seq>[0-9]{6})\.spool")
LOCK = re.compile(r"(?P<stream>[0-9]+-[0-9a-f]+)\.lock")
MEND_SECONDS = 10.0  # how often a spool that could not start is tried again


class SpoolError(Exception):
    """The spool could not keep a record (disk full, folder gone, spool closed)."""


@dataclass(eq=False)
class Segment:
    """One spool file, and how much of it is yet to be replayed."""

    path: Path
    stream: str
    waiting: int = 0  # records not yet replayed
    oldest: float | None = None  # about when the first of them came
    offset: int = 0  # bytes replayed


@dataclass
class Found:
    """A dead process's stream, locked by a scan: its lock and its segments."""

    stream: str
    fd: int
    segments: list[Segment]


class Spool:
    """This process's spool files, and the dead processes' it adopted."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.database = ""  # whose records these are, set by open(): another's are left alone
        self.stream = f"{os.getpid()}-{secrets.token_hex(4)}"
        self.broken: OSError | None = None  # why this process cannot spool, if it cannot
        self.foreign: dict[str, int] = {}  # streams of another database: their records
        self.set_aside_count = 0  # records this process set aside (replay.py)
        self._retry_at = 0.0  # when a broken spool is next tried again
        self._locks: dict[str, int] = {}  # stream -> its lock file, held
        self._segments: list[Segment] = []  # in the order they are to be replayed
        self._current: Segment | None = None  # the one appends go to
        self._fd: int | None = None
        self._seq = 0
        self._queue: list[tuple[bytes, float, asyncio.Future[None]]] = []
        self._queued = 0
        self._flushing: asyncio.Task[None] | None = None
        self._adopting: asyncio.Task[int] | None = None
        self._writing = asyncio.Lock()
        self._closed = False
        self._threads: ThreadPoolExecutor | None = None
        self.changed = asyncio.Event()  # set when records are appended or adopted

    async def open(self, database: str) -> None:
        """Make the folder (an OSError if it cannot be: a setting to fix), take this
        process's stream, and adopt what dead ones of `database` left. A disk too full
        for the stream is logged, not raised: the app runs, without a spool."""
        self.database = database
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._threads = ThreadPoolExecutor(2, thread_name_prefix="botkit-spool")
        try:
            self._locks[self.stream] = await self._run(self._take_stream)
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            self.broken = exc
            log.error(
                "spool: cannot start one in %s (%s): a callback the database cannot take "
                "will be answered 503",
                self.folder,
                exc.strerror,
                extra={"event": "spool.broken"},
            )
        await self.adopt()

    def _take_stream(self) -> int:
        """This process's lock, locked and naming the database before it has its name
        (no one sees the stream unlocked or nameless), fsynced with the folder."""
        temporary = self.folder / f".{self.stream}.lock"
        fd = os.open(temporary, os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.write(fd, self.database.encode())
            os.fsync(fd)
            os.rename(temporary, self.folder / f"{self.stream}.lock")
            _fsync_folder(self.folder)
        except OSError:
            os.close(fd)
            temporary.unlink(missing_ok=True)
            raise
        return fd

    async def _run(self, fn: Any, *args: Any) -> Any:
        """`fn(*args)` in the spool's own threads (file work, off the event loop)."""
        if self._threads is None:
            raise SpoolError("the spool is not open")
        return await asyncio.get_running_loop().run_in_executor(self._threads, fn, *args)

    async def close(self) -> None:
        """Finish the appends and adoption under way, then let go of every stream: what
        waits stays on disk, for the next run to adopt. Appends from now on fail."""
        self._closed = True
        try:
            await asyncio.shield(self._settle())
        finally:
            self._release()

    async def _settle(self) -> None:
        for task in (self._flushing, self._adopting):
            if task is not None:
                with contextlib.suppress(Exception):
                    await task

    def _release(self) -> None:
        if self._flushing is None or self._flushing.done():  # a write under way keeps its fd
            self._close_current()
        left = {m["stream"] for p in _listed(self.folder) if (m := SEGMENT.fullmatch(p.name))}
        for stream, fd in self._locks.items():
            if stream not in left:
                with contextlib.suppress(OSError):  # left behind, it is adopted empty later
                    (self.folder / f"{stream}.lock").unlink(missing_ok=True)
            os.close(fd)
        self._locks.clear()
        if self._threads is not None:
            self._threads.shutdown(wait=False)

    @property
    def pending(self) -> bool:
        """Whether anything waits here (or is being written): a callback that comes now
        goes behind it."""
        return bool(self._queued or self._segments)

    @property
    def waiting(self) -> int:
        """Records kept here and not yet stored, those being written included."""
        return self._queued + sum(segment.waiting for segment in self._segments)

    @property
    def age(self) -> float:
        """About how many seconds the oldest record waiting has waited (0.0: none)."""
        times = [s.oldest for s in self._segments if s.oldest is not None and s.waiting]
        return max(0.0, time.time() - min(times)) if times else 0.0

    async def adopt(self) -> int:
        """Take the streams of processes that died, to replay after what waits now;
        how many records they hold. One scan at a time (close() waits for it)."""
        if self._adopting is None or self._adopting.done():
            self._adopting = asyncio.ensure_future(self._adopt())
        return await asyncio.shield(self._adopting)

    async def _adopt(self) -> int:
        known = set(self._locks) | set(self.foreign)
        adopted = 0
        for found in await self._run(self._scan, known):
            if self._closed:
                os.close(found.fd)
                continue
            self._locks[found.stream] = found.fd
            self._segments.extend(found.segments)
            records = sum(s.waiting for s in found.segments)
            adopted += records
            log.warning(
                "spool: %d records left by an earlier process (%s) will be stored",
                records,
                found.stream,
                extra={"event": "spool.adopted", "stream": found.stream, "records": records},
            )
        if adopted:
            self.changed.set()
        return adopted

    def _scan(self, known: set[str]) -> list[Found]:
        """(In a thread.) Lock the streams no live process holds, except those in
        `known`; those of this database, with their segments counted, are returned; an
        empty one's lock is removed, another database's is noted in `foreign`."""
        streams: dict[str, list[Path]] = {}
        for path in _listed(self.folder):
            if found := SEGMENT.fullmatch(path.name):
                streams.setdefault(found["stream"], []).append(path)
            elif found := LOCK.fullmatch(path.name):
                streams.setdefault(found["stream"], [])
        adopted: list[Found] = []
        for stream, paths in sorted(streams.items()):
            if stream in known or (fd := _lock(self.folder / f"{stream}.lock")) is None:
                continue
            try:
                adopted.extend(self._take(stream, fd, sorted(paths)))
            except OSError as exc:  # tried again at the next scan
                os.close(fd)
                log.error("spool: cannot read %s's files: %s", stream, exc)
        return adopted

    def _take(self, stream: str, fd: int, paths: list[Path]) -> list[Found]:
        """A locked stream: adopted if it is this database's (a lock that names none was
        never fsynced: taken as this one's), else let go of."""
        named = os.pread(fd, 4096, 0).decode(errors="replace")
        if named and named != self.database:
            if stream not in self.foreign:
                records = sum(count(path)[0] for path in paths)
                self.foreign[stream] = records
                log.warning(
                    "spool: %s holds %d records of another database, left alone",
                    self.folder / f"{stream}.lock",
                    records,
                    extra={"event": "spool.foreign", "stream": stream, "records": records},
                )
            os.close(fd)
            return []
        if not paths:
            (self.folder / f"{stream}.lock").unlink(missing_ok=True)
            os.close(fd)
            return []
        segments = []
        for path in paths:
            waiting, oldest = count(path)
            segments.append(Segment(path, stream, waiting, oldest))
        return [Found(stream, fd, segments)]

    async def append(self, kind: str, fields: dict[str, Any]) -> None:
        """Keep a callback on disk: returns once it is written and fsynced (appends that
        come meanwhile share the fsync), or raises SpoolError."""
        if self._closed or self._threads is None:
            raise SpoolError(f"the spool is {'closed' if self._closed else 'not open'}")
        if self.broken is not None:
            await self._mend()
        at = time.time()
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((encode(kind, at, fields), at, future))
        self._queued += 1
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.ensure_future(self._flush())
        await asyncio.shield(future)

    async def _mend(self) -> None:
        """Take this process's stream, which a full disk kept it from at start: tried
        at most every MEND_SECONDS; SpoolError until it is taken."""
        if time.monotonic() < self._retry_at:
            raise SpoolError(f"cannot write to the spool in {self.folder}: {self.broken}")
        self._retry_at = time.monotonic() + MEND_SECONDS
        try:
            self._locks[self.stream] = await self._run(self._take_stream)
        except OSError as exc:
            self.broken = exc
            raise SpoolError(f"cannot write to the spool in {self.folder}: {exc}") from None
        self.broken = None
        log.warning("spool: writable again in %s", self.folder, extra={"event": "spool.mended"})

    async def _flush(self) -> None:
        """Write what is queued, a batch at a time, each with one fsync."""
        while self._queue:
            batch, self._queue = self._queue, []
            async with self._writing:
                try:
                    segment = await self._run(self._write, b"".join(b[0] for b in batch))
                except OSError as exc:
                    error = SpoolError(f"could not write to the spool in {self.folder}: {exc}")
                    for _, _, future in batch:
                        future.set_exception(error)
                        future.exception()  # retrieved: a caller that left never sees it
                else:
                    if segment not in self._segments:  # a new one
                        self._segments.append(segment)
                    segment.waiting += len(batch)
                    if segment.oldest is None:
                        segment.oldest = batch[0][1]
                    for _, _, future in batch:
                        future.set_result(None)
                finally:
                    self._queued -= len(batch)
            self.changed.set()

    def _write(self, data: bytes) -> Segment:
        """(In a thread.) Append `data` to the current segment (a new one if there is
        none) and fsync it; on failure, cut the segment back to where it was, or leave it
        for a new one (its torn end is passed over when it is replayed)."""
        if self._fd is None or self._current is None:
            self._seq += 1
            path = self.folder / f"{self.stream}.{self._seq:06d}.spool"
            self._fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_APPEND, 0o600)
            self._current = Segment(path, self.stream)
            _fsync_folder(self.folder)  # the new file's name is durable too
        fd, size = self._fd, os.fstat(self._fd).st_size
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        except OSError:
            try:
                os.ftruncate(fd, size)
            except OSError:
                self._close_current()
            raise
        return self._current

    def _close_current(self) -> None:
        """Close the segment being written: the next append starts another."""
        if self._fd is not None:
            os.close(self._fd)
        self._fd, self._current = None, None

    async def next(self) -> Segment | None:
        """The segment to replay next, or None if nothing waits. The one being written
        is closed first: appends from then on go to a new one, replayed after it."""
        if not self._segments:
            return None
        segment = self._segments[0]
        if segment is self._current:
            async with self._writing:
                self._close_current()
        return segment

    async def read(self, segment: Segment, limit: int) -> tuple[list[Record], int]:
        """Up to `limit` records of `segment` from where its replay got to (`read`)."""
        return await self._run(read, segment.path, segment.offset, limit)

    def replayed(self, segment: Segment, records: list[Record], offset: int) -> None:
        """The records read from `segment` up to `offset` are stored."""
        segment.offset = offset
        segment.waiting = max(0, segment.waiting - len(records))
        if records:
            segment.oldest = records[-1].at

    def finished(self, segment: Segment) -> None:
        """All of `segment` is stored: it is removed (an adopted stream's lock with its
        last segment)."""
        self._segments.remove(segment)
        segment.path.unlink(missing_ok=True)
        stream = segment.stream
        if stream != self.stream and not any(s.stream == stream for s in self._segments):
            (self.folder / f"{stream}.lock").unlink(missing_ok=True)
            os.close(self._locks.pop(stream))

    async def set_aside(self, record: Record) -> None:
        """Keep a record the store keeps refusing in `{stream}.set-aside` (fsynced), for
        someone to look at: never replayed, never removed."""
        path = self.folder / f"{self.stream}.set-aside"

        def write() -> None:
            fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o600)
            try:
                os.write(fd, record.line)
                os.fsync(fd)
            finally:
                os.close(fd)

        await self._run(write)
        self.set_aside_count += 1


def _lock(path: Path) -> int | None:
    """`path` opened and locked, if no live process holds it (a missing one is made,
    unless another scan makes it first); else None."""
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
        except FileExistsError:
            return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _listed(folder: Path) -> list[Path]:
    """The files in `folder` (none if it is gone)."""
    try:
        return list(folder.iterdir())
    except OSError:
        return []


def _fsync_folder(folder: Path) -> None:
    """Make the names in `folder` durable (a file made or renamed there)."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
