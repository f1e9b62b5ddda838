"""A load generator: GET requests over loopback, open loop on a fixed schedule, or closed
loop from a fixed number of clients.

    load = asyncio.run(generate("127.0.0.1", [8000], paths, rate=500))
    load = asyncio.run(closed_loop("127.0.0.1", [8000], paths, connections=32, duration=10))

Open loop: request i is due at i / rate seconds after the start and is sent then,
whether or not the earlier ones were answered (a slow server meets the same load, and
its slowness shows as latency rather than as a lower rate). Latency counts from the
moment a request was due, so time spent waiting behind earlier requests is counted too.

Closed loop: `connections` clients, each on a connection of its own, each sending its
next request as soon as its last was answered, for `duration` seconds: the server sets
the rate, and the requests answered a second are the most it can answer with that many
callers waiting on it. Latency counts from the moment each request was sent.

It speaks HTTP/1.1 over asyncio streams itself, keep-alive on a pool of connections that
grows when all are busy: a request costs it about 50 µs of CPU, where httpx.AsyncClient
took over 1 ms (3,000 GETs to bench/limit.py, 20 at a time), and on a machine of two
cores the generator's CPU is taken from the server.
Whether it kept its schedule is measured (`lag`) and reported beside the figures.

Given several ports (app processes sharing one database), it sends request i to the
i-th port in turn, as a round-robin load balancer would.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from common import ms, percentile

SHORTCODE = "4433"
# What each handset texts the hello bot, in turn: its first HELLO asks the name, the name
# is greeted, the next HELLO is welcomed back by name, a name out of turn gets the help.
# Every MO gets exactly one reply, from a template.
CONVERSATION = ("HELLO", "{name}", "HELLO")
NAMES = ("Alice", "Bob", "Chen", "Dana", "Emeka", "Farah", "Giulia", "Hemi")
TIMEOUT = 60.0  # a request not answered by then counts as an error
MAX_CONNECTIONS = 2000  # beyond this many open at once, requests wait for a free one
# An idle connection is used again only this soon: uvicorn closes one idle for 5 s, and a
# request sent as it does so would fail through no fault of the server's.
IDLE = 2.0


@dataclass
class Load:
    """What happened to each request, in seconds since the start (None: no answer)."""

    rate: float
    started_wall: float  # time.time() at the start, to set the offsets against other clocks
    due: list[float]
    lag: list[float]  # how late the generator started each request, past its due time
    answered: list[float | None]
    status: list[int | None]
    errors: Counter[str] = field(default_factory=Counter)
    connections: int = 0
    closed: int = 0  # closed loop: how many clients (0: open loop, at `rate`)

    @property
    def ok(self) -> list[int]:
        """The indices of the requests answered 200."""
        return [i for i, status in enumerate(self.status) if status == 200]

    def figures(self) -> dict[str, Any]:
        """Counts, throughput (answered 200 per second, from the start to the last such
        answer), latency p50/p99 in ms, and the generator's own lag."""
        ok = self.ok
        answers = [(answered, self.due[i]) for i in ok if (answered := self.answered[i])]
        latency = [answered - due for answered, due in answers]
        last = max((answered for answered, _ in answers), default=None)
        statuses = Counter(str(s) for s in self.status if s is not None and s != 200)
        return {
            "offered_per_s": None if self.closed else self.rate,
            "closed_loop_clients": self.closed or None,
            "sent": len(self.due),
            "ok": len(ok),
            "errors": len(self.due) - len(ok),
            "error_kinds": dict(statuses + self.errors),
            "throughput_per_s": round(len(ok) / last, 1) if last else 0.0,
            "latency_p50_ms": ms(percentile(latency, 50)) if latency else None,
            "latency_p99_ms": ms(percentile(latency, 99)) if latency else None,
            "lag_p50_ms": ms(percentile(self.lag, 50)) if self.lag else None,
            "lag_p99_ms": ms(percentile(self.lag, 99)) if self.lag else None,
            "lag_max_ms": ms(max(self.lag)) if self.lag else None,
            "connections": self.connections,
        }


def mo_paths(token: str, count: int, handsets: int) -> list[str]:
    """`count` MO callbacks as the gateway sends them, from `handsets` handsets in turn,
    with unique 64-bit ids (from a random start near the top of the range)."""
    first = 2**62 + secrets.randbelow(2**61)
    paths = []
    for i in range(count):
        handset, turn = i % handsets, i // handsets
        text = CONVERSATION[turn % len(CONVERSATION)].format(name=NAMES[handset % len(NAMES)])
        query = {
            "id": first + i,
            "source": f"+614{handset:08d}",
            "destination": SHORTCODE,
            "content": text,
            "operator": "Telstra",
        }
        paths.append(f"/callbacks/{token}/mo?{urlencode(query)}")
    return paths


class Pool:
    """Keep-alive connections to one server, opened as needed up to MAX_CONNECTIONS."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        # (reader, writer, when it was last answered), the most recently used last
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []
        self.opened = 0
        self._room = asyncio.Semaphore(MAX_CONNECTIONS)

    async def get(self, path: str) -> int:
        """GET `path`; the response's status code. Raises on a transport failure."""
        async with self._room:
            reader, writer = await self._connection()
            try:
                writer.write(f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\n\r\n".encode())
                status, keep = await _response(reader)
            except BaseException:
                writer.close()
                raise
            if keep:
                self.idle.append((reader, writer, time.monotonic()))
            else:
                writer.close()
            return status

    async def _connection(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """The most recently used idle connection, or a new one; stale ones are closed."""
        while self.idle:
            reader, writer, used = self.idle.pop()
            if time.monotonic() - used < IDLE:
                return reader, writer
            writer.close()
        self.opened += 1
        return await asyncio.open_connection(self.host, self.port)

    def close(self) -> None:
        for _, writer, _ in self.idle:
            writer.close()


async def _response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Read one response with a Content-Length body: its status, and whether the
    connection stays open."""
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").lower()
    lines = head.split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = dict(line.split(":", 1) for line in lines[1:] if ":" in line)
    await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers.get("connection", "").strip() != "close"


async def generate(host: str, ports: Sequence[int], paths: Sequence[str], rate: float) -> Load:
    """Send GET `paths[i]` at i / `rate` seconds from now, open loop, to `ports` in turn;
    wait for every answer (or TIMEOUT) and return what happened."""
    n = len(paths)
    load = Load(rate, time.time(), [i / rate for i in range(n)], [0.0] * n, [None] * n, [None] * n)
    pools = [Pool(host, port) for port in ports]
    loop = asyncio.get_running_loop()
    start = loop.time()
    tasks = []
    for i, due in enumerate(load.due):
        # Even when behind, yield: the requests already started need the loop too.
        await asyncio.sleep(max(0.0, start + due - loop.time()))
        tasks.append(asyncio.create_task(_request(load, pools, paths, i, start)))
    await asyncio.gather(*tasks)
    _close(load, pools)
    return load


async def closed_loop(
    host: str, ports: Sequence[int], paths: Sequence[str], connections: int, duration: float
) -> Load:
    """Send GET `paths` in order from `connections` clients, each sending its next as
    soon as its last was answered, for `duration` seconds (or until `paths` run out),
    to `ports` in turn; what happened to the requests sent."""
    n = len(paths)
    load = Load(0.0, time.time(), [0.0] * n, [0.0] * n, [None] * n, [None] * n)
    load.closed = connections
    pools = [Pool(host, port) for port in ports]
    loop = asyncio.get_running_loop()
    start = loop.time()
    sent = 0

    async def client() -> None:
        nonlocal sent
        while sent < n and loop.time() - start < duration:
            i, sent = sent, sent + 1
            load.due[i] = loop.time() - start
            await _request(load, pools, paths, i, start)

    await asyncio.gather(*(client() for _ in range(connections)))
    for series in (load.due, load.lag, load.answered, load.status):
        del series[sent:]
    _close(load, pools)
    return load


async def _request(
    load: Load, pools: Sequence[Pool], paths: Sequence[str], i: int, start: float
) -> None:
    """Send request `i` and record how late it left, its answer (in seconds since
    `start`) or its error."""
    loop = asyncio.get_running_loop()
    load.lag[i] = max(0.0, loop.time() - start - load.due[i])
    try:
        async with asyncio.timeout(TIMEOUT):
            load.status[i] = await pools[i % len(pools)].get(paths[i])
        load.answered[i] = loop.time() - start
    except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
        load.errors[type(exc).__name__] += 1


def _close(load: Load, pools: Sequence[Pool]) -> None:
    """Count the connections opened, and close them."""
    load.connections = sum(pool.opened for pool in pools)
    for pool in pools:
        with contextlib.suppress(Exception):
            pool.close()
