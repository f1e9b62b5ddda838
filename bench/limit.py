"""The stack's limit: a bare Starlette endpoint that stores one row in SQLite and commits.

    python bench/limit.py [--rates 100,500,1000] [--duration S] [--handsets N]

The MO callback's route, under uvicorn with the settings `botkit run` uses, backed by
one aiosqlite connection with botkit's pragmas (WAL, synchronous=FULL): each request
inserts its MO in a transaction of its own, so each is one commit, one fsync. No
validation, no inbox, no bot, no reply: what any app on this stack and machine pays to
accept a message durably. bench/pipeline.py measures it beside botkit, rate for rate,
and prints botkit's figures as a ratio of it; alone, this prints the limit's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sqlite3
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiosqlite
from common import alone, free_port, fresh_sqlite, load_options, peak_rss_mib, process, rated
from load import generate, mo_paths
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from botkit.db.sqlite import PRAGMAS
from botkit.serving import UVICORN_OPTIONS

TOKEN = "limit"
SCHEMA = """CREATE TABLE IF NOT EXISTS mo (
    id INTEGER PRIMARY KEY, gateway_id INTEGER NOT NULL UNIQUE, source TEXT NOT NULL,
    destination TEXT NOT NULL, content TEXT NOT NULL, operator TEXT)"""


def create_app(db: str) -> Starlette:
    """The bare app: GET /callbacks/{token}/mo stores the MO and commits, then answers OK."""
    conn: aiosqlite.Connection | None = None

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        nonlocal conn
        conn = await aiosqlite.connect(db, isolation_level=None)
        for statement in (*PRAGMAS, SCHEMA):
            await conn.execute(statement)
        try:
            yield
        finally:
            await conn.close()

    async def mo(request: Request) -> Response:
        assert conn is not None
        q = request.query_params
        # Autocommit: the INSERT is a transaction of its own, committed when it returns.
        await conn.execute(
            "INSERT INTO mo (gateway_id, source, destination, content, operator) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (gateway_id) DO NOTHING",
            (int(q["id"]), q["source"], q["destination"], q["content"], q.get("operator")),
        )
        return PlainTextResponse("OK")

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("OK")

    routes = [Route("/callbacks/{token}/mo", mo), Route("/healthz", healthz)]
    return Starlette(routes=routes, lifespan=lifespan)


def serve(db: str, port: int) -> None:
    """Serve the bare app with the uvicorn settings of botkit/commands/run.py."""
    import uvicorn

    uvicorn.run(
        create_app(db),
        host="127.0.0.1",
        port=port,
        forwarded_allow_ips=["127.0.0.1/32"],
        **UVICORN_OPTIONS,
    )


@contextlib.contextmanager
def serving(db: Path) -> Iterator[tuple[int, int]]:
    """The bare app on a free loopback port, in a process of its own; (port, pid)."""
    port = free_port()
    command = [sys.executable, str(Path(__file__)), "--serve", str(db), "--port", str(port)]
    with process(command, f"http://127.0.0.1:{port}/healthz") as server:
        yield port, server.pid


def measure(rate: float, duration: float, handsets: int, workdir: Path) -> dict[str, Any]:
    """Drive a fresh bare app at `rate` MOs per second for `duration` seconds; its
    figures, and how many rows it stored."""
    db = fresh_sqlite(workdir / f"limit-{rate:g}.db")
    paths = mo_paths(TOKEN, round(rate * duration), handsets)
    with serving(db) as (port, pid):
        load = asyncio.run(generate("127.0.0.1", [port], paths, rate))
        rss = peak_rss_mib(pid)
    with contextlib.closing(sqlite3.connect(db)) as conn:
        stored = conn.execute("SELECT count(*) FROM mo").fetchone()[0]
    return {"name": f"limit at {rate:g}/s", **load.figures(), "stored": stored, "peak_rss_mib": rss}


def main(argv: list[str] | None = None) -> int:
    """Measure the limit alone at each rate; print and save the figures."""
    args = _arguments(argv)
    if args.serve:
        serve(args.serve, args.port)
        return 0
    return alone("limit", measure, args, _line)


def _line(run: dict[str, Any]) -> str:
    return (
        f"{run['name']:<18} {run['ok']:>6} of {run['sent']} answered 200, "
        f"{run['throughput_per_s']:>7}/s, p50 {run['latency_p50_ms']} ms, "
        f"p99 {run['latency_p99_ms']} ms, generator lag p99 {run['lag_p99_ms']} ms"
    )


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    """The command line's options."""
    parser = load_options(__doc__, "limit.json")
    rated(parser)
    parser.add_argument("--serve", metavar="DB", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(main())
