"""How long the dashboard's pages take over a million messages.

    python bench/dashboard.py [--messages N] [--threads N] [--keep PATH] [--repeat N]

Fills a database (bench/fill.py), cached in bench/.cache/ by size and schema version,
serves it with `botkit run` on a free loopback port, and times each page with httpx:
warm-up requests, then `--repeat` timed ones, reported as median and p95. Two baselines
come from the same run: GET /healthz, the app's floor for one request, and the store's
own query called in this process (SQL and aiosqlite, without HTTP or templates). Prints a
table and writes bench/results/dashboard.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import html
import json
import re
import sqlite3
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import fill
import httpx
from common import BOTKIT, ROOT, free_port, machine, ms, percentile, process

from botkit.addresses import SIMULATOR_NUMBER, OurNumbers
from botkit.db import Database
from botkit.migrations import MIGRATIONS
from botkit.search import Numbers, filters
from botkit.store import Store
from botkit.store.conversations import Conversations, Cursor

WARM_UP = 3
DEEP = 20
NEXT = re.compile(r'<a rel="next" href="([^"]*)"')
# What the filters look for: a bot and a state of the example bots, a word some MOs hold
# and one that none does (a search that must read every message to say so).
BOT, STATE, WORD, NO_MATCH = "survey", "survey:satisfaction", "refund", "zebra"
# The number the survey's conversations are on (a fifth of them); the server runs in
# simulator mode, with SIMULATOR_NUMBER as its only number of its own.
ADDRESS = fill.PROFILES[BOT].address
OURS = OurNumbers([SIMULATOR_NUMBER], message_class="mt_message")

StoreCall = Callable[[Conversations], Awaitable[Any]]


@dataclass
class Measure:
    """One page timed over HTTP and, when the store has a call for it, in-process."""

    name: str
    path: str
    store: StoreCall | None = None
    times: list[float] = field(default_factory=list)
    store_times: list[float] = field(default_factory=list)
    size: int = 0

    def figures(self, floor: float) -> dict[str, Any]:
        """Median and p95 in ms, the median as a multiple of `floor` (ms), the store's."""
        median = ms(statistics.median(self.times))
        store = self.store_times or None
        return {
            "name": self.name,
            "path": self.path,
            "samples": len(self.times),
            "median_ms": median,
            "p95_ms": ms(p95(self.times)),
            "x_healthz": round(median / floor, 1),
            "store_median_ms": store and ms(statistics.median(store)),
            "store_p95_ms": store and ms(p95(store)),
            "bytes": self.size,
        }


def main(argv: list[str] | None = None) -> int:
    """Fill or reuse the database, serve it, time the pages, print and save the figures."""
    args = _arguments(argv)
    db, info = database(args.cache, args.messages, args.threads)
    floor = Measure("GET /healthz (floor)", "/healthz")
    with serving(db) as base, httpx.Client(base_url=base, timeout=300) as client:
        timed(client, floor, args.repeat)
        walk, deep = follow_next(client)
        measures = [walk, *pages(info, deep)]
        for measure in measures[1:]:
            timed(client, measure, args.repeat)
    asyncio.run(time_store(db, measures, args.repeat))
    results = report(floor, measures, info, db, args.repeat)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(results, indent=2) + "\n")
    print(f"figures written to {args.results}")
    if args.keep:
        keep(db, args.keep)
        print(f"a copy of the database is at {args.keep}")
    return 0


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    """The command line's options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--messages", type=int, metavar="N", default=1_000_000, help="messages (%(default)s)"
    )
    parser.add_argument(
        "--threads", type=int, metavar="N", default=50_000, help="threads (%(default)s)"
    )
    parser.add_argument(
        "--repeat", type=int, metavar="N", default=20, help="timed requests a page (%(default)s)"
    )
    parser.add_argument("--keep", type=Path, metavar="PATH", help="also copy the database here")
    parser.add_argument(
        "--cache",
        type=Path,
        metavar="DIR",
        default=ROOT / "bench" / ".cache",
        help="where filled databases are kept (%(default)s)",
    )
    parser.add_argument(
        "--results",
        type=Path,
        metavar="PATH",
        default=ROOT / "bench" / "results" / "dashboard.json",
        help="where the figures go (%(default)s)",
    )
    return parser.parse_args(argv)


def database(cache: Path, messages: int, threads: int) -> tuple[Path, dict[str, Any]]:
    """The database to serve: from the cache when one of this size, schema and fill is
    there, else filled now (into a partial file, renamed once complete)."""
    schema = max(m.version for m in MIGRATIONS)
    name = f"dashboard-{messages}m-{threads}t-schema{schema}-fill{fill.VERSION}"
    path, about = cache / f"{name}.db", cache / f"{name}.json"
    if path.exists() and about.exists():
        info = json.loads(about.read_text())
        print(f"database: {path}, cached (its fill took {info['fill_seconds']:.1f} s)")
    else:
        cache.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        for leftover in (partial, Path(f"{partial}-wal"), Path(f"{partial}-shm")):
            leftover.unlink(missing_ok=True)
        started = time.perf_counter()
        info = fill.build(partial, messages, threads)
        info["fill_seconds"] = round(time.perf_counter() - started, 2)
        partial.rename(path)
        about.write_text(json.dumps(info, indent=2) + "\n")
        print(f"database: {path}, filled in {info['fill_seconds']:.1f} s")
    print(
        f"  {info['messages']:,} messages, {info['threads']:,} threads, "
        f"{info['deliveries']:,} delivery receipts, {path.stat().st_size / 2**20:,.0f} MiB; "
        f"long thread #{info['long_thread']} ({info['long_thread_messages']:,} messages)"
    )
    return path, info


@contextlib.contextmanager
def serving(db: Path) -> Iterator[str]:
    """`botkit run` on `db` at a free loopback port, stopped afterwards; its base URL."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = [BOTKIT, "run", "--db", str(db), "--host", "127.0.0.1", "--port", str(port)]
    command += ["--bots", str(ROOT / "bots"), "--templates", str(ROOT / "templates")]
    # cwd: no botkit.toml of this checkout is read.
    with process(command, f"{base}/healthz", cwd=db.parent):
        yield base


def timed(client: httpx.Client, measure: Measure, repeat: int) -> None:
    """GET the page WARM_UP times, then `repeat` times timed."""
    for _ in range(WARM_UP):
        client.get(measure.path).raise_for_status()
    for _ in range(repeat):
        started = time.perf_counter()
        response = client.get(measure.path)
        measure.times.append(time.perf_counter() - started)
        response.raise_for_status()
    measure.size = len(response.content)


def follow_next(client: httpx.Client) -> tuple[Measure, Measure]:
    """Walk the conversations from the first page through rel="next" links, up to page
    DEEP, timing each page once as an operator paging back would; that walk, and the last
    page reached with its store call."""
    response = client.get("/dashboard/")
    response.raise_for_status()
    path, times = "/dashboard/", []
    while len(times) < DEEP - 1 and (link := NEXT.search(response.text)):
        path = response.url.join(html.unescape(link[1])).raw_path.decode("ascii")
        started = time.perf_counter()
        response = client.get(path)
        times.append(time.perf_counter() - started)
        response.raise_for_status()
    if not times:
        raise SystemExit("the first conversations page has no rel=next link")
    walk = Measure(f"next pages 2-{len(times) + 1}, one each", "/dashboard/?after=...", None, times)
    walk.size = len(response.content)
    cursor = Cursor.parse(parse_qs(urlsplit(path).query)["after"][0])
    return walk, Measure(f"deep page (page {len(times) + 1})", path, _page(cursor))


def pages(info: dict[str, Any], deep: Measure) -> list[Measure]:
    """The pages timed again and again: conversations unfiltered and filtered (the
    filters a server without them ignores), the deep page, two transcripts."""
    since = date.fromisoformat(info["newest"][:10]) - timedelta(days=45)
    week = {"since": since.isoformat(), "until": (since + timedelta(days=6)).isoformat()}
    long, normal = info["long_thread"], info["normal_thread"]
    return [
        Measure("first page", "/dashboard/", _page(None)),
        deep,
        _filtered(f"bot={BOT}", bot=BOT),
        _filtered("q=number (a handset)", q=info["handset"]),
        _filtered(f"q={WORD} (text)", q=WORD),
        _filtered(f"q={NO_MATCH} (text, no match)", q=NO_MATCH),
        _filtered(f"state={STATE}", state=STATE),
        _filtered(f"address={ADDRESS}", address=ADDRESS),
        _filtered("since/until (a week, 45 days back)", **week),
        Measure(
            f"long transcript ({info['long_thread_messages']:,} messages, latest page)",
            f"/dashboard/threads/{long}",
            _transcript(long),
        ),
        Measure(
            f"normal transcript ({info['normal_thread_messages']} messages)",
            f"/dashboard/threads/{normal}",
            _transcript(normal),
        ),
    ]


def _filtered(name: str, **query: str) -> Measure:
    """The conversations page with `query`, and the store's call behind it."""
    return Measure(name, f"/dashboard/?{urlencode(query)}", _page(None, **query))


def _page(after: Cursor | None, **query: str) -> StoreCall:
    """The store's calls for a conversations page: the numbers threads are on (for the
    filter by number), then the page."""

    async def call(conversations: Conversations) -> Any:
        numbers = Numbers.of(OURS, await conversations.addresses())
        return await conversations.page(after, filters(query, numbers))

    return call


def _transcript(thread_id: int) -> StoreCall:
    """The store's call for a thread's transcript."""
    return lambda conversations: conversations.transcript(thread_id)


async def time_store(db: Path, measures: list[Measure], repeat: int) -> None:
    """Time the store's call behind each page that has one, in this process, with the
    server stopped: the SQL alone, for comparison."""
    database = await Database.open(str(db))
    try:
        conversations = Store(database).conversations
        for measure in measures:
            if measure.store is None:
                continue
            for _ in range(WARM_UP):
                await measure.store(conversations)
            for _ in range(repeat):
                started = time.perf_counter()
                await measure.store(conversations)
                measure.store_times.append(time.perf_counter() - started)
    finally:
        await database.close()


def report(
    floor: Measure, measures: list[Measure], info: dict[str, Any], db: Path, repeat: int
) -> dict[str, Any]:
    """Print the table; return every figure with the machine's description."""
    healthz = statistics.median(floor.times)
    figures = [m.figures(ms(healthz)) for m in (floor, *measures)]
    first = next(f for f in figures if f["name"] == "first page")["store_median_ms"]
    print(
        f"\nbaselines (same run, median): GET /healthz {ms(healthz)} ms; "
        f"first-page query in-process {first} ms"
    )
    print(f"{repeat} timed requests a page after {WARM_UP} warm-up; the walk times each once\n")
    header = ("measurement", "median ms", "p95 ms", "x healthz", "store ms", "KB")
    print(f"{header[0]:<38}" + "".join(f"{h:>11}" for h in header[1:]))
    for f in figures:
        store = "-" if f["store_median_ms"] is None else f"{f['store_median_ms']:.2f}"
        print(
            f"{f['name']:<38}{f['median_ms']:>11.2f}{f['p95_ms']:>11.2f}"
            f"{f['x_healthz']:>11.1f}{store:>11}{f['bytes'] / 1024:>11.1f}"
        )
    return {
        "machine": machine(),
        "database": {**info, "bytes": db.stat().st_size},
        "repeat": repeat,
        "warm_up": WARM_UP,
        "baselines": {"healthz_ms": ms(healthz), "first_page_store_ms": first},
        "measurements": figures,
    }


def keep(db: Path, target: Path) -> None:
    """Copy the database to `target` with SQLite's online backup."""
    with (
        contextlib.closing(sqlite3.connect(db)) as source,
        contextlib.closing(sqlite3.connect(target)) as copy,
    ):
        source.backup(copy)


def p95(times: list[float]) -> float:
    """The 95th percentile by nearest rank (the largest of fewer than 20 samples)."""
    return percentile(times, 95)


if __name__ == "__main__":
    sys.exit(main())
