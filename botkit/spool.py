"""The spool: callbacks kept on local disk while the database cannot commit them.

A callback that cannot be stored is appended here, fsynced, and only then answered
200; `replay.py` stores what waits here once the database is back, and it is removed.
While anything waits, later callbacks are appended behind it, so one handset's MOs are
stored in the order they came.

Each process appends to files of its own (a stream: `{stream}.lock`, held locked for
the process's life, and `{stream}.{seq}.spool`, a new one each time the replay takes
the one being written). A stream whose lock nobody holds belongs to a process that
died: another process (or the next run) adopts it. A record is a line,
`{crc32:08x} {json}`: a line cut short by a crash, or whose checksum fails, was never
answered 200, and is passed over. The folder must be on a local disk: locks on a
network file system cannot be trusted.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import re
import secrets
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("botkit.spool")

SUFFIX = ".spool"
SEGMENT = re.compile(r"(?P<stream>[0-9]+-[0-9a-f]+)\.(?P<seq>[0-9]{6})\.spool")
LOCK = re.compile(r"(?P<stream>[0-9]+-[0-9a-f]+)\.lock")


class SpoolError(Exception):
    """The spool could not keep a record (disk full, folder not writable)."""


@dataclass
class Segment:
    """One spool file, and how much of it is yet to be replayed."""

    path: Path
    waiting: int = 0  # records not yet replayed
    oldest: float | None = None  # when the first of them came
    offset: int = 0  # bytes replayed
    stream: str = ""


@dataclass
class Record:
    """One spooled callback: `kind` is `mo` or `dlr`, `fields` its parameters."""

    kind: str
    at: float
    fields: dict[str, Any]
    end: int = field(default=0, compare=False)  # offset just past its line


def encode(record: Record) -> bytes:
    """A record as its line: the CRC-32 of its JSON, then the JSON."""
    data = json.dumps(
        {"kind": record.kind, "at": record.at, "fields": record.fields},
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode()
    return b"%08x %s\n" % (zlib.crc32(data), data)


def decode(line: bytes) -> Record | None:
    """The record of a whole line (ending in a newline), or None if it is torn or garbled."""
    crc, _, data = line.rstrip(b"\n").partition(b" ")
    try:
        if len(crc) != 8 or int(crc, 16) != zlib.crc32(data):
            return None
        value = json.loads(data)
        return Record(str(value["kind"]), float(value["at"]), dict(value["fields"]))
    except (ValueError, KeyError, TypeError):
        return None


def read(path: Path, offset: int, limit: int) -> tuple[list[Record], int]:
    """Up to `limit` records of `path` from byte `offset`, and the offset after the last
    line read. A line that does not check out is passed over (logged); a last line with
    no newline was cut short by a crash, and is left unread."""
    records: list[Record] = []
    with path.open("rb") as f:
        f.seek(offset)
        while len(records) < limit:
            line = f.readline()
            if not line.endswith(b"\n"):
                break
            record = decode(line)
            offset += len(line)
            if record is None:
                log.warning("spool %s: a garbled record at byte %d passed over", path.name, offset)
                continue
            record.end = offset
            records.append(record)
    return records, offset


def count(path: Path) -> tuple[int, float | None]:
    """How many records `path` holds, and when the first came."""
    total, first, offset = 0, None, 0
    while True:
        records, offset = read(path, offset, 10_000)
        if not records:
            return total, first
        total += len(records)
        first = records[0].at if first is None else first


class Spool:
    """This process's spool files, and the dead processes' it adopted."""

    def __init__(self, folder: str | Path, database: str) -> None:
        self.folder = Path(folder)
        self.database = database  # whose records these are: another's are left alone
        self._foreign: set[str] = set()  # streams of another database, told once
        self.stream = f"{os.getpid()}-{secrets.token_hex(4)}"
        self._locks: dict[str, int] = {}  # stream -> its lock file, held
        self._segments: list[Segment] = []  # in the order they are to be replayed
        self._current: Segment | None = None  # the one appends go to
        self._fd: int | None = None
        self._seq = 0
        self._queue: list[tuple[bytes, float, asyncio.Future[None]]] = []
        self._queued = 0
        self._flushing: asyncio.Task[None] | None = None
        self._writing = asyncio.Lock()
        self.changed = asyncio.Event()  # set when records are appended

    def open(self) -> None:
        """Make the folder, take this process's stream, and adopt what dead ones left."""
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Locked before it has its name: no one sees this stream unlocked.
        temporary = self.folder / f".{self.stream}.lock"
        fd = os.open(temporary, os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(fd, self.database.encode())
        os.rename(temporary, self.folder / f"{self.stream}.lock")
        self._locks[self.stream] = fd
        self.adopt()

    async def close(self) -> None:
        """Finish the appends under way, then let go of every stream: what waits stays
        on disk, for the next run to adopt."""
        if self._flushing is not None:
            await self._flushing
        self._close_current()
        for stream, fd in self._locks.items():
            if not any(s.stream == stream for s in self._segments):
                # Left behind (the folder is gone, say), it is only adopted empty later.
                with contextlib.suppress(OSError):
                    (self.folder / f"{stream}.lock").unlink(missing_ok=True)
            os.close(fd)
        self._locks.clear()

    @property
    def waiting(self) -> int:
        """Records kept here and not yet stored, those being written included."""
        return self._queued + sum(segment.waiting for segment in self._segments)

    @property
    def age(self) -> float:
        """Seconds the oldest record waiting has waited (0.0 when none waits)."""
        times = [s.oldest for s in self._segments if s.oldest is not None and s.waiting]
        return max(0.0, time.time() - min(times)) if times else 0.0

    def adopt(self) -> int:
        """Take the streams of processes that died, to replay them after what waits
        now; how many records they hold."""
        streams: dict[str, list[Path]] = {}
        for path in self.folder.iterdir():
            if found := SEGMENT.fullmatch(path.name):
                streams.setdefault(found["stream"], []).append(path)
            elif found := LOCK.fullmatch(path.name):
                streams.setdefault(found["stream"], [])
        adopted = 0
        for stream, paths in sorted(streams.items()):
            if stream in self._locks or stream in self._foreign or not self._lock(stream):
                continue
            if not self._ours(stream):
                continue
            if not paths:
                self._let_go(stream)
                continue
            for path in sorted(paths):
                waiting, oldest = count(path)
                self._segments.append(Segment(path, waiting, oldest, stream=stream))
                adopted += waiting
            log.warning(
                "spool: %d records left by an earlier process (%s) will be stored",
                adopted,
                stream,
                extra={"event": "spool.adopted", "stream": stream, "records": adopted},
            )
        if adopted:
            self.changed.set()
        return adopted

    def _lock(self, stream: str) -> bool:
        """Take `stream`'s lock if no live process holds it."""
        fd = os.open(self.folder / f"{stream}.lock", os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._locks[stream] = fd
        return True

    def _ours(self, stream: str) -> bool:
        """Whether a locked stream holds this database's records; if not, it is let go
        of, and left for a process of its own database."""
        fd = self._locks[stream]
        if os.pread(fd, 4096, 0).decode(errors="replace") == self.database:
            return True
        log.warning(
            "spool: %s holds records of another database, left alone",
            self.folder / f"{stream}.lock",
            extra={"event": "spool.foreign", "stream": stream},
        )
        self._foreign.add(stream)
        os.close(self._locks.pop(stream))
        return False

    def _let_go(self, stream: str) -> None:
        """Drop an adopted stream's lock file, once nothing of it waits."""
        (self.folder / f"{stream}.lock").unlink(missing_ok=True)
        os.close(self._locks.pop(stream))

    async def append(self, kind: str, fields: dict[str, Any]) -> None:
        """Keep a callback on disk: returns once it is written and fsynced (appends that
        come meanwhile share the fsync), or raises SpoolError."""
        at = time.time()
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((encode(Record(kind, at, fields)), at, future))
        self._queued += 1
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.create_task(self._flush())
        await asyncio.shield(future)

    async def _flush(self) -> None:
        """Write what is queued, a batch at a time, each with one fsync."""
        while self._queue:
            batch, self._queue = self._queue, []
            async with self._writing:
                try:
                    segment = await asyncio.to_thread(self._write, b"".join(b[0] for b in batch))
                except OSError as exc:
                    error = SpoolError(f"could not write to the spool in {self.folder}: {exc}")
                    for _, _, future in batch:
                        future.set_exception(error)
                        future.exception()  # retrieved: a caller that left never sees it
                else:
                    segment.waiting += len(batch)
                    if segment.oldest is None:
                        segment.oldest = batch[0][1]
                    for _, _, future in batch:
                        future.set_result(None)
                finally:
                    self._queued -= len(batch)
            self.changed.set()

    def _write(self, data: bytes) -> Segment:
        """Append `data` to the current segment (a new one if there is none) and fsync
        it; on failure, cut the segment back to where it was, or leave it for a new one."""
        if self._fd is None or self._current is None:
            self._seq += 1
            path = self.folder / f"{self.stream}.{self._seq:06d}{SUFFIX}"
            self._fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_APPEND, 0o600)
            _fsync_folder(self.folder)  # the new file's name is durable too
            self._current = Segment(path, stream=self.stream)
            self._segments.append(self._current)
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
                self._close_current()  # its torn end is passed over when it is replayed
            raise
        return self._current

    def _close_current(self) -> None:
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
            self._let_go(stream)


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
