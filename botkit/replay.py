"""`Replay`: stores what waits in the spool once the database takes writes again.

A segment is replayed in chunks, in the order it was written; a chunk's MOs of one
handset are stored one after another, in order, and different handsets' side by side.
A chunk is marked replayed only once all of it is stored, so a crash or a failed write
part way stores it again: each MO and DLR is stored once by its gateway id, as a
repeated callback is. Every record replayed is flagged `spooled`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import TYPE_CHECKING, Any

from .db import DatabaseError
from .messages import IncomingDLR, IncomingMO
from .metrics import status_label
from .spool import Record, Segment, Spool, read
from .worker import Worker

if TYPE_CHECKING:
    from .dispatcher import Dispatcher
    from .metrics import Metrics
    from .store import Store

log = logging.getLogger("botkit.spool")

CHUNK = 200  # records read and stored at a time
# After a failed write, the next try waits this long, doubling up to the cap.
RETRY_SECONDS, RETRY_CAP = 0.25, 5.0
# How often a process looks for streams that other processes on this machine left.
ADOPT_SECONDS = 30.0
FLAG = "spooled"


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

    async def _run(self) -> None:
        while True:
            self.spool.changed.clear()
            segment = await self.spool.next()
            if segment is None:
                try:
                    await asyncio.to_thread(self.spool.adopt)
                except OSError as exc:
                    log.error("spool: cannot look for what other processes left: %s", exc)
                await self._idle()
                continue
            try:
                await self._replay(segment)
            except (DatabaseError, TimeoutError) as exc:
                log.warning(
                    "spool: %d records wait; the database is still away (%s), "
                    "trying again in %.2gs",
                    self.spool.waiting,
                    exc,
                    self._delay,
                    extra={"event": "spool.waiting", "records": self.spool.waiting},
                )
                await asyncio.sleep(self._delay)
                self._delay = min(RETRY_CAP, self._delay * 2)

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
            records, offset = await asyncio.to_thread(read, segment.path, segment.offset, CHUNK)
            if offset == segment.offset:
                break
            lanes: dict[str, list[IncomingMO | IncomingDLR]] = {}
            for record in records:
                if (incoming := parse(record)) is not None:
                    lanes.setdefault(_lane(incoming), []).append(incoming)
            results = await asyncio.gather(
                *(self._store(lane) for lane in lanes.values()), return_exceptions=True
            )
            for result in results:
                if isinstance(result, BaseException):
                    raise result
            self.spool.replayed(segment, records, offset)
            self._delay = RETRY_SECONDS
        self.spool.finished(segment)
        log.info(
            "spool: %s stored; %d records wait",
            segment.path.name,
            self.spool.waiting,
            extra={"event": "spool.replayed", "records": self.spool.waiting},
        )

    async def _store(self, lane: list[IncomingMO | IncomingDLR]) -> None:
        """Store one handset's MOs (or one MT's DLRs) in the order they came."""
        for incoming in lane:
            if isinstance(incoming, IncomingMO):
                await self.dispatcher.store_mo(incoming)
            elif (await self.store.deliveries.record(incoming)).new:
                self.metrics.dlr_received[status_label(incoming.status)].inc()


def _lane(incoming: IncomingMO | IncomingDLR) -> str:
    if isinstance(incoming, IncomingMO):
        return f"mo {incoming.source}"
    return f"dlr {incoming.gateway_id}"


def spooled(incoming: IncomingMO | IncomingDLR) -> tuple[str, dict[str, Any]]:
    """The kind and fields a callback is spooled as (its log notes left out)."""
    fields = dataclasses.asdict(incoming)
    del fields["notes"]
    return ("mo" if isinstance(incoming, IncomingMO) else "dlr"), fields


def parse(record: Record) -> IncomingMO | IncomingDLR | None:
    """What a record holds, flagged `spooled`; None (logged) if it is not an MO or DLR."""
    try:
        fields = {**record.fields, "flags": (*record.fields.get("flags", ()), FLAG)}
        if record.kind == "mo":
            return IncomingMO(**fields)
        if record.kind == "dlr":
            return IncomingDLR(**fields)
    except TypeError:
        pass
    log.warning("spool: a record that is not an MO or DLR passed over (%s)", record.kind)
    return None
