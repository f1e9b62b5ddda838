"""`Replay`: stores what waits in the spool once the database takes writes again.

A segment is replayed in chunks, in the order it was written; a chunk's MOs of one
handset are stored one after another, in order, and different handsets' side by side.
A chunk is marked replayed only once all of it is stored, so a crash or a failed write
part way stores it again: each MO and DLR is stored once by its gateway id, as a
repeated callback is. Every record replayed is flagged `spooled`.

A failure while the database takes a write (a probe) is the record's, not the
database's: a record refused REFUSALS times (or that no longer reads as an MO or DLR)
is set aside in the spool folder, kept for someone to look at, so that it never holds
up the rest.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import TYPE_CHECKING, Any

from .messages import IncomingDLR, IncomingMO
from .metrics import status_label
from .spool import Segment, Spool
from .spool_records import Record
from .worker import Worker

if TYPE_CHECKING:
    from .dispatcher import Dispatcher
    from .metrics import Metrics
    from .store import Store

log = logging.getLogger("botkit.spool")

CHUNK = 200  # records read and stored at a time
CHUNK_SECONDS = 60.0  # a chunk not stored in this long is tried again
PROBE_SECONDS = 5.0
# After a failed chunk, the next try waits this long, doubling up to the cap: short,
# for what waits here holds up every callback that comes meanwhile.
RETRY_SECONDS, RETRY_CAP = 0.25, 2.0
REFUSALS = 3  # failures of one record, while the database answers, that set it aside
# How often a process looks for streams that other processes on this machine left.
ADOPT_SECONDS = 30.0
FLAG = "spooled"
KINDS: dict[str, type[IncomingMO] | type[IncomingDLR]] = {"mo": IncomingMO, "dlr": IncomingDLR}

Incoming = IncomingMO | IncomingDLR


class Failed(Exception):
    """A record could not be stored (the cause is chained); `key` names it."""

    def __init__(self, record: Record, key: tuple[str, int]) -> None:
        super().__init__(record.kind)
        self.record, self.key = record, key


class Replay(Worker):
    """Replays the spool into the store, whenever it holds records."""

    name = "spool replay"

    def __init__(
        self, spool: Spool, store: Store, dispatcher: Dispatcher, metrics: Metrics
    ) -> None:
        super().__init__()
        self.spool = spool
        self.store = store
        self.dispatcher = dispatcher
        self.metrics = metrics
        self._delay = RETRY_SECONDS
        self._refusals: dict[tuple[str, int], int] = {}  # (file, end) -> failures
        self._set_aside: set[tuple[str, int]] = set()

    async def _run(self) -> None:
        while True:
            self.spool.changed.clear()
            segment = await self.spool.next()
            if segment is None:
                await self.spool.adopt()
                await self._idle()
                continue
            try:
                await self._replay(segment)
            except (Failed, TimeoutError) as exc:
                await self._failed(exc)
            except FileNotFoundError:  # removed by someone: nothing of it left to store
                log.warning("spool: %s is gone, with what it held", segment.path.name)
                self.spool.finished(segment)
            except OSError as exc:  # the spool's disk (a set-aside that cannot be written)
                log.error("spool: %s, trying again in %.2gs", exc, self._delay)
                await self._pause()

    async def _idle(self) -> None:
        """Wait until something is spooled, or it is time to look for orphans."""
        try:
            async with asyncio.timeout(ADOPT_SECONDS):
                await self.spool.changed.wait()
        except TimeoutError:
            pass

    async def _replay(self, segment: Segment) -> None:
        """Store `segment`'s records from where it got to; remove it once all are."""
        while True:
            records, offset = await self.spool.read(segment, CHUNK)
            if offset == segment.offset:
                break
            lanes: dict[str, list[tuple[Record, Incoming]]] = {}
            for record in records:
                key = (str(segment.path), record.end)
                if key in self._set_aside:
                    continue
                incoming = parse(record)
                if incoming is None:
                    await self._put_aside(record, key, "it is not an MO or DLR this botkit reads")
                    continue
                lanes.setdefault(_lane(incoming), []).append((record, incoming))
            async with asyncio.timeout(CHUNK_SECONDS):
                results = await asyncio.gather(
                    *(self._store(segment, lane) for lane in lanes.values()),
                    return_exceptions=True,
                )
            for result in results:
                if isinstance(result, BaseException):
                    raise result
            self.spool.replayed(segment, records, offset)
            self._delay = RETRY_SECONDS
        self.spool.finished(segment)
        self._refusals.clear()
        self._set_aside.clear()
        log.info(
            "spool: %s stored; %d records wait",
            segment.path.name,
            self.spool.waiting,
            extra={"event": "spool.replayed", "records": self.spool.waiting},
        )

    async def _store(self, segment: Segment, lane: list[tuple[Record, Incoming]]) -> None:
        """Store one handset's MOs (or one MT's DLRs) in the order they came."""
        for record, incoming in lane:
            key = (str(segment.path), record.end)
            if self._refusals.get(key, 0) >= REFUSALS:
                await self._put_aside(record, key, "the store refused it")
                continue
            try:
                if isinstance(incoming, IncomingMO):
                    await self.dispatcher.store_mo(incoming)
                elif (await self.store.deliveries.record(incoming)).new:
                    self.metrics.dlr_received[status_label(incoming.status)].inc()
            except Exception as exc:
                raise Failed(record, key) from exc

    async def _failed(self, exc: Failed | TimeoutError) -> None:
        """After a chunk failed: if the database answers, the record's refusal is
        counted; either way, the chunk is tried again after a pause."""
        cause = exc.__cause__ if isinstance(exc, Failed) else exc
        if isinstance(exc, Failed) and await self._database_answers():
            self._refusals[exc.key] = self._refusals.get(exc.key, 0) + 1
            log.warning("spool: a %s was refused by the store: %r", exc.record.kind, cause)
        else:
            log.warning(
                "spool: %d records wait; the database is still away (%s), trying again in %.2gs",
                self.spool.waiting,
                cause,
                self._delay,
                extra={"event": "spool.waiting", "records": self.spool.waiting},
            )
        await self._pause()

    async def _pause(self) -> None:
        await asyncio.sleep(self._delay)
        self._delay = min(RETRY_CAP, self._delay * 2)

    async def _database_answers(self) -> bool:
        """Whether the database takes a write now: a read is not enough (SQLite locked
        by another process still reads), and a locked database refuses no record."""
        try:
            async with asyncio.timeout(PROBE_SECONDS):
                await self.store.db.write(lambda tx: tx.fetchval("SELECT 1"), urgent=True)
        except Exception:
            return False
        return True

    async def _put_aside(self, record: Record, key: tuple[str, int], why: str) -> None:
        """Keep `record` in the set-aside file, out of the replay's way (an OSError if
        it cannot be written: the chunk is tried again)."""
        await self.spool.set_aside(record)
        self._set_aside.add(key)
        log.error(
            "spool: a %s (gateway id %s) set aside in %s, not stored: %s",
            record.kind,
            record.fields.get("gateway_id"),
            self.spool.folder / f"{self.spool.stream}.set-aside",
            why,
            extra={"event": "spool.set_aside", "gateway_id": record.fields.get("gateway_id")},
        )


def _lane(incoming: Incoming) -> str:
    """What must be stored in order: one handset's MOs, one MT's receipts."""
    if isinstance(incoming, IncomingMO):
        return f"mo {incoming.source}"
    return f"dlr {incoming.gateway_id}"


def spooled(incoming: Incoming) -> tuple[str, dict[str, Any]]:
    """The kind and fields a callback is spooled as (its log notes left out)."""
    fields = dataclasses.asdict(incoming)
    del fields["notes"]
    return ("mo" if isinstance(incoming, IncomingMO) else "dlr"), fields


def parse(record: Record) -> Incoming | None:
    """What a record holds, flagged `spooled`: fields this botkit does not know are
    left out, optional ones it lacks take their defaults; None if it is no MO or DLR."""
    kind = KINDS.get(record.kind)
    if kind is None:
        return None
    known = {f.name for f in dataclasses.fields(kind)} - {"notes"}
    fields = {name: value for name, value in record.fields.items() if name in known}
    try:
        fields["flags"] = (*fields.get("flags", ()), FLAG)
        return kind(**fields)
    except TypeError:  # a required field missing, flags that are no list
        return None
