"""The floor: the least a correct MO pipeline can do on botkit's stack, durable at each step.

    python bench/floor.py [--rates 100,500,1000] [--duration S] [--handsets N]

One process, as `botkit run` is: a Starlette app under uvicorn with `botkit run`'s
options, one SQLite file with botkit's pragmas (WAL, synchronous=FULL), and:

1. `GET /callbacks/{token}/mo` checks the token and the parameters, hands its INSERT to
   the writer, and answers 200 once the transaction holding it is committed.
2. A worker takes the stored MOs in arrival order and, in one transaction, writes a reply
   to each (a fixed text: no routing, templates, threads or consent) and marks it handled.
3. A sender sends the replies over one httpx.AsyncClient, at most 16 at once (botkit's
   sender's concurrency) and one at a time per handset: marked `sending` (committed)
   before their requests leave, as botkit's are, so that a crash leaves their outcome
   known to be unknown rather than taken for unsent; then each marked `sent` with the
   gateway's id. A send slot is free again once the gateway has answered.

The writer: one thread owns the connection, and the writes waiting when it is free run in
one `BEGIN IMMEDIATE ... COMMIT`, in one hop to that thread (group commit: one fsync for
them all); each gets its answer after the commit. bench/pipeline.py measures the floor
beside botkit, rate for rate against the fake gateway (bench/fakegateway.py), and prints
botkit's replies per second and MO-to-MT latency as ratios of the floor's: what botkit
does beyond this is its features, and their price is the difference.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
import sqlite3
import sys
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import fakegateway
import httpx
from backends import Sqlite
from common import alone, free_port, load_options, peak_rss_mib, process, rated
from load import generate, mo_paths
from replies import drain, outcome
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from botkit.db.sqlite import PRAGMAS
from botkit.serving import UVICORN_OPTIONS

CONCURRENCY = 16  # botkit's sender's (botkit/sender.py)
BATCH = 500  # MOs handled in one transaction at most
REPLY = "Hello from the floor. Reply STOP to opt out."
APPLICATION, PASSWORD = "floor", "floor-password"
SCHEMA = """
CREATE TABLE IF NOT EXISTS mo (
    id INTEGER PRIMARY KEY, gateway_id INTEGER NOT NULL UNIQUE, source TEXT NOT NULL,
    destination TEXT NOT NULL, content TEXT NOT NULL, operator TEXT,
    handled INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS mo_waiting ON mo (id) WHERE handled = 0;
CREATE TABLE IF NOT EXISTS mt (
    id INTEGER PRIMARY KEY, mo_id INTEGER NOT NULL REFERENCES mo (id),
    destination TEXT NOT NULL, content TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'queued', gateway_id INTEGER);
CREATE INDEX IF NOT EXISTS mt_waiting ON mt (id) WHERE status <> 'sent';
"""
# MOs not yet handled, replies not yet sent: the drain waits for both to be 0.
QUEUES = """SELECT (SELECT count(*) FROM mo WHERE handled = 0),
                   (SELECT count(*) FROM mt WHERE status <> 'sent')"""
# Which reply answers which MO, by their gateway ids.
PAIRS = "SELECT mo.gateway_id, mt.gateway_id FROM mo LEFT JOIN mt ON mt.mo_id = mo.id"

Write = Callable[[sqlite3.Connection], Any]
Mt = tuple[int, str]  # (id, destination)


class Writer:
    """One connection in one thread; the writes waiting run in one transaction."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="floor-writer")
        self._waiting: list[tuple[Write, asyncio.Future[Any]]] = []
        self._wake = asyncio.Event()
        self._conn: sqlite3.Connection | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._conn = await asyncio.get_running_loop().run_in_executor(self._thread, self._open)
        self._task = asyncio.create_task(self._run())

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        for pragma in PRAGMAS:
            conn.execute(pragma)
        conn.executescript(SCHEMA)
        return conn

    async def write(self, write: Write) -> Any:
        """Run `write` in the next transaction; its result once that is committed."""
        done = asyncio.get_running_loop().create_future()
        self._waiting.append((write, done))
        self._wake.set()
        return await done

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._waiting = self._waiting, []
            try:
                results = await loop.run_in_executor(
                    self._thread, self._commit, [write for write, _ in batch]
                )
            except Exception as exc:  # the whole transaction rolled back
                results = [exc] * len(batch)
            for (_, done), result in zip(batch, results, strict=True):
                if done.done():
                    continue
                if isinstance(result, Exception):
                    done.set_exception(result)
                else:
                    done.set_result(result)

    def _commit(self, writes: list[Write]) -> list[Any]:
        assert self._conn is not None
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            results = [write(self._conn) for write in writes]
            self._conn.execute("COMMIT")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        return results

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._conn is not None:
            await asyncio.get_running_loop().run_in_executor(self._thread, self._conn.close)
        self._thread.shutdown()


def store_mo(params: tuple[Any, ...], conn: sqlite3.Connection) -> None:
    conn.execute(
        "INSERT INTO mo (gateway_id, source, destination, content, operator) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (gateway_id) DO NOTHING",
        params,
    )


def handle_mos(conn: sqlite3.Connection) -> list[Mt]:
    """Reply to the oldest MOs not yet handled (BATCH at most), mark them handled; the
    replies."""
    mos = conn.execute(
        "SELECT id, source FROM mo WHERE handled = 0 ORDER BY id LIMIT ?", (BATCH,)
    ).fetchall()
    replies = []
    for mo_id, source in mos:
        [(mt_id,)] = conn.execute(
            "INSERT INTO mt (mo_id, destination, content) VALUES (?, ?, ?) RETURNING id",
            (mo_id, source, REPLY),
        ).fetchall()
        replies.append((mt_id, source))
    conn.executemany("UPDATE mo SET handled = 1 WHERE id = ?", [(mo_id,) for mo_id, _ in mos])
    return replies


def mark(status: str, ids: list[int], conn: sqlite3.Connection) -> None:
    conn.executemany("UPDATE mt SET status = ? WHERE id = ?", [(status, i) for i in ids])


def mark_sent(mt_id: int, gateway_id: int | None, conn: sqlite3.Connection) -> None:
    status = "failed" if gateway_id is None else "sent"
    conn.execute(
        "UPDATE mt SET status = ?, gateway_id = ? WHERE id = ?", (status, gateway_id, mt_id)
    )


class Sender:
    """Sends replies, CONCURRENCY at once at most, one at a time per handset."""

    def __init__(self, writer: Writer, http: httpx.AsyncClient, url: str) -> None:
        self.writer, self.http, self.url = writer, http, url
        self._ready: deque[Mt] = deque()
        self._busy: set[str] = set()  # handsets with an MT in flight
        self._held: dict[str, deque[Mt]] = {}  # MTs behind one in flight, by handset
        self._in_flight = 0
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    def add(self, mts: list[Mt]) -> None:
        self._ready.extend(mts)
        self._wake.set()

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch = self._take()
            if not batch:
                continue
            await self.writer.write(partial(mark, "sending", [mt_id for mt_id, _ in batch]))
            for mt in batch:
                task = asyncio.create_task(self._send(mt))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    def _take(self) -> list[Mt]:
        """The ready MTs there are slots for, each to a handset with none in flight."""
        batch: list[Mt] = []
        while self._ready and self._in_flight < CONCURRENCY:
            mt = self._ready.popleft()
            if mt[1] in self._busy:
                self._held.setdefault(mt[1], deque()).append(mt)
                continue
            self._busy.add(mt[1])
            self._in_flight += 1
            batch.append(mt)
        return batch

    async def _send(self, mt: Mt) -> None:
        mt_id, destination = mt
        params = {
            "application": APPLICATION, "password": PASSWORD, "content": REPLY,
            "destination": destination, "class": "mt_message",
            "reference": f"floor.{mt_id}", "version": "2",
        }  # fmt: skip
        gateway_id = None
        try:
            response = await self.http.get(self.url, params=params)
            if response.status_code == 200:
                gateway_id = int(response.text)
        except httpx.HTTPError:
            pass  # failed: the benchmark's checks count it as unanswered
        finally:
            self._in_flight -= 1
            self._busy.discard(destination)
            if waiting := self._held.get(destination):  # the handset's next MT goes first
                self._ready.appendleft(waiting.popleft())
                if not waiting:
                    del self._held[destination]
            self._wake.set()
        await self.writer.write(partial(mark_sent, mt_id, gateway_id))

    def cancel(self) -> list[asyncio.Task[None]]:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        return tasks


def create_app(db: str, gateway: str, token: str) -> Starlette:
    """The floor: the MO callback, the worker and the sender, over one writer."""
    stored = asyncio.Event()
    state: dict[str, Any] = {}

    async def handle(writer: Writer, sender: Sender) -> None:
        while True:
            await stored.wait()
            stored.clear()
            while replies := await writer.write(handle_mos):
                sender.add(replies)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        writer = state["writer"] = Writer(db)
        await writer.start()
        async with httpx.AsyncClient(timeout=30) as http:
            sender = Sender(writer, http, gateway)
            tasks = [asyncio.create_task(handle(writer, sender)), asyncio.create_task(sender.run())]
            stored.set()  # MOs a previous run left unhandled
            try:
                yield
            finally:
                tasks += sender.cancel()
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
        await writer.close()

    async def mo(request: Request) -> Response:
        if not secrets.compare_digest(request.path_params["token"], token):
            return PlainTextResponse("Not Found", 404)
        q = request.query_params
        for name in ("id", "source", "destination", "content"):
            if not q.get(name):
                return PlainTextResponse(f"ERROR Missing {name} parameter", 400)
        try:
            gateway_id = int(q["id"])
        except ValueError:
            return PlainTextResponse("ERROR Invalid id parameter", 400)
        params = (gateway_id, q["source"], q["destination"], q["content"], q.get("operator"))
        await state["writer"].write(partial(store_mo, params))
        stored.set()
        return PlainTextResponse("OK")

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("OK")

    routes = [Route("/callbacks/{token}/mo", mo), Route("/healthz", healthz)]
    return Starlette(routes=routes, lifespan=lifespan)


def serve(db: str, port: int, gateway: str, token: str) -> None:
    """Serve the floor with the uvicorn settings of botkit/commands/run.py."""
    import uvicorn

    app = create_app(db, gateway, token)
    uvicorn.run(
        app, host="127.0.0.1", port=port, forwarded_allow_ips=["127.0.0.1/32"], **UVICORN_OPTIONS
    )


@contextlib.contextmanager
def serving(db: Path, gateway: str, token: str) -> Iterator[tuple[int, int]]:
    """The floor on a free loopback port, in a process of its own; (port, pid)."""
    port = free_port()
    command = [sys.executable, str(Path(__file__)), "--serve", str(db), "--port", str(port)]
    # --token=: a random token may start with '-', which argparse takes for an option.
    command += ["--gateway", f"{gateway}/message", f"--token={token}"]
    with process(command, f"http://127.0.0.1:{port}/healthz") as server:
        yield port, server.pid


def measure(
    rate: float, duration: float, handsets: int, workdir: Path, drain_s: float = 120.0
) -> dict[str, Any]:
    """Drive a fresh floor at `rate` MOs per second for `duration` seconds, wait until it
    has replied to them all; its figures, as bench/pipeline.py takes botkit's."""
    database = Sqlite(workdir)
    token = secrets.token_urlsafe(16)
    paths = mo_paths(token, round(rate * duration), handsets)
    with (
        database.database(rate, "floor") as db,
        fakegateway.running() as gateway,
        serving(Path(db), gateway.url, token) as (port, pid),
    ):
        rows = partial(database.rows, db)
        load = asyncio.run(generate("127.0.0.1", [port], paths, rate))
        drained = drain(rows, drain_s, QUEUES)
        rss = peak_rss_mib(pid)
        figures = outcome(load, paths, rows(PAIRS), gateway.messages())
    return {
        "name": f"floor at {rate:g}/s",
        **load.figures(),
        **figures,
        "drained": drained,
        "peak_rss_mib": rss,
    }


def main(argv: list[str] | None = None) -> int:
    """Measure the floor alone at each rate; print and save the figures."""
    args = _arguments(argv)
    if args.serve:
        serve(args.serve, args.port, args.gateway, args.token)
        return 0
    return alone("floor", measure, args, _line)


def _line(run: dict[str, Any]) -> str:
    return (
        f"{run['name']:<18} {run['ok']}/{run['sent']} answered 200, p99 "
        f"{run['latency_p99_ms']} ms; {run['replies']} replies, {run['replies_per_s']}/s, "
        f"MO>MT p50 {run['mo_to_mt_p50_ms']} ms, p99 {run['mo_to_mt_p99_ms']} ms"
    )


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    """The command line's options."""
    parser = load_options(__doc__, "floor.json")
    rated(parser)
    parser.add_argument("--serve", metavar="DB", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--gateway", help=argparse.SUPPRESS)
    parser.add_argument("--token", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(main())
