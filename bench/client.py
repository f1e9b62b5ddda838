"""CPU per MT of the gateway client: botkit's Gateway.send beside a bare httpx GET.

    python bench/client.py [--messages N] [--warmup N] [--in-flight N] [--rounds N]
                           [--loops asyncio,uvloop] [--results PATH]

A bare uvicorn app, in a process of its own with the options of `botkit run`, answers
every GET as the gateway does on success: 200, text/plain, a 64-bit message id. This
process sends to it, `--in-flight` requests at a time, and counts the CPU it spends
(`time.process_time`) over `--messages` sends after `--warmup`:

- **bare httpx**: `httpx.AsyncClient.get(url, params=...)`, one client, the URL and the
  query parameters the gateway client sends (password, class and reference included);
- **Gateway.send**: the same messages through `botkit.gateway.Gateway` with its own
  client: validation, the request, the answer's check and its log line, with logging set
  up as `botkit run` sets it (INFO, written to /dev/null here).

Each round measures both, in turns, on each event loop (uvloop when installed); the table
gives the median over the rounds of the CPU per MT in microseconds, in all and its user
and kernel parts (the kernel's is mostly loopback TCP, which no client saves), the MTs per
second (wall clock, the server's work included) and Gateway.send's CPU as a multiple of
the bare GET's. Prints a table and writes bench/results/client.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import itertools
import json
import logging
import os
import resource
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx
from common import ROOT, free_port, machine, process

from botkit.gateway import Gateway
from botkit.logs import setup_logging
from botkit.serving import UVICORN_OPTIONS

APPLICATION, PASSWORD = "bench", "bench-pa55/wörd"
TEXT = "Hi Customer, our spring sale starts today: 20% off with code SPRING. Reply STOP to opt out."
FIRST_ID = 2**40  # the server's ids: 64-bit, as the gateway's are
LOOPS = ("asyncio", "uvloop")
BARE, GATEWAY = "bare httpx GET", "Gateway.send"
FIGURES = ("cpu_us_per_mt", "user_us_per_mt", "sys_us_per_mt", "per_s")

Send = Callable[[int], Awaitable[object]]


def gateway_app() -> Callable[..., Awaitable[None]]:
    """An ASGI app that answers every request as the gateway does on success."""
    ids = itertools.count(FIRST_ID)
    headers = [(b"content-type", b"text/plain; charset=utf-8")]

    async def app(scope: dict[str, Any], receive: Callable, send: Callable) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = str(next(ids)).encode()
        length = [(b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers + length})
        await send({"type": "http.response.body", "body": body})

    return app


def serve(port: int) -> None:
    """Serve the gateway's answer with the uvicorn settings of botkit/commands/run.py."""
    import uvicorn

    uvicorn.run(
        gateway_app(),
        host="127.0.0.1",
        port=port,
        forwarded_allow_ips=["127.0.0.1/32"],
        **UVICORN_OPTIONS,
    )


@contextlib.contextmanager
def serving() -> Iterator[str]:
    """The gateway's answer on a free loopback port, in a process of its own; its URL."""
    port = free_port()
    command = [sys.executable, str(Path(__file__)), "--serve", "--port", str(port)]
    url = f"http://127.0.0.1:{port}/message"
    with process(command, url):
        yield url


def number(i: int) -> str:
    """The `i`th handset of the benchmark."""
    return f"+6140{i % 10_000_000:07d}"


def params(i: int) -> dict[str, str]:
    """The query parameters Gateway.send sends for message `i`, in its order."""
    return {
        "application": APPLICATION,
        "password": PASSWORD,
        "content": TEXT,
        "destination": number(i),
        "class": "mt_message",
        "reference": f"t1.m{i}",
        "version": "2",
    }


async def drive(send: Send, numbers: Iterable[int], in_flight: int) -> None:
    """Send message i for each of `numbers`, `in_flight` at a time."""
    pending = iter(numbers)

    async def worker() -> None:
        for i in pending:  # shared: each number goes to one worker
            await send(i)

    await asyncio.gather(*(worker() for _ in range(in_flight)))


async def timed(send: Send, args: argparse.Namespace) -> dict[str, float]:
    """Warm up, then this process's CPU per MT over `args.messages` sends (in all, and
    its user and kernel parts: the kernel's is mostly the loopback's TCP), and MTs per
    second."""
    await drive(send, range(args.warmup), args.in_flight)
    gc.collect()
    before = time.process_time(), resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    await drive(send, range(args.warmup, args.warmup + args.messages), args.in_flight)
    after = time.process_time(), resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    per_mt = 1e6 / args.messages
    return {
        "cpu_us_per_mt": (after[0] - before[0]) * per_mt,
        "user_us_per_mt": (after[1].ru_utime - before[1].ru_utime) * per_mt,
        "sys_us_per_mt": (after[1].ru_stime - before[1].ru_stime) * per_mt,
        "per_s": args.messages / (after[2] - before[2]),
    }


async def bare(url: str, args: argparse.Namespace) -> dict[str, float]:
    """The baseline: one httpx.AsyncClient, one GET per MT."""
    async with httpx.AsyncClient(timeout=httpx.Timeout(10.0, connect=5.0)) as client:

        async def send(i: int) -> None:
            response = await client.get(url, params=params(i))
            if response.status_code != 200:
                raise SystemExit(f"the server answered {response.status_code}")

        return await timed(send, args)


async def gateway(url: str, args: argparse.Namespace) -> dict[str, float]:
    """botkit's client, as the sender calls it."""
    async with Gateway(url=url, application=APPLICATION, password=PASSWORD) as client:

        async def send(i: int) -> None:
            await client.send(number(i), TEXT, message_class="mt_message", reference=f"t1.m{i}")

        return await timed(send, args)


MEASUREMENTS: dict[str, Callable[[str, argparse.Namespace], Awaitable[dict[str, float]]]] = {
    BARE: bare,
    GATEWAY: gateway,
}


def loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop]:
    """A new event loop of the kind named."""
    if name == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    return asyncio.new_event_loop


def measure(url: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every measurement on every loop, `args.rounds` times in turns (the order swapped
    each round, so that a drift of the machine falls on both); each one's figures."""
    found: dict[tuple[str, str], list[dict[str, float]]] = {}
    for r in range(args.rounds):
        names = list(MEASUREMENTS) if r % 2 == 0 else list(reversed(MEASUREMENTS))
        for loop in args.loops:
            for name in names:
                with asyncio.Runner(loop_factory=loop_factory(loop)) as runner:
                    figures = runner.run(MEASUREMENTS[name](url, args))
                found.setdefault((loop, name), []).append(figures)
    runs = []
    for (loop, name), rounds in found.items():
        run: dict[str, Any] = {"loop": loop, "name": name}
        for figure in FIGURES:
            run[figure] = round(statistics.median(f[figure] for f in rounds), 1)
        runs.append({**run, "rounds": rounds})
    for run in runs:
        baseline = next(r for r in runs if r["loop"] == run["loop"] and r["name"] == BARE)
        run["x_bare"] = round(run["cpu_us_per_mt"] / baseline["cpu_us_per_mt"], 2)
    return sorted(runs, key=lambda run: (args.loops.index(run["loop"]), run["name"] != BARE))


def report(runs: list[dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    """Print the table; return every figure with the machine's description."""
    print(
        f"\nCPU of the client process per MT: {args.messages:,} MTs, {args.in_flight} in "
        f"flight, after {args.warmup:,} to warm up; median of {args.rounds} rounds;\n"
        "the server (bare uvicorn, botkit run's options) in a process of its own\n"
    )
    header = ("loop", "measurement", "us CPU/MT", "user", "kernel", "MT/s", "x bare")
    print(f"{header[0]:<10}{header[1]:<20}" + "".join(f"{h:>10}" for h in header[2:]))
    for run in runs:
        cells = [run[figure] for figure in FIGURES] + [run["x_bare"]]
        print(f"{run['loop']:<10}{run['name']:<20}" + "".join(f"{c:>10}" for c in cells))
    return {
        "machine": machine(),
        "messages": args.messages,
        "warmup": args.warmup,
        "in_flight": args.in_flight,
        "rounds": args.rounds,
        "runs": runs,
    }


def quiet_logging() -> None:
    """botkit run's logging (INFO, httpx at WARNING), its lines written to /dev/null."""
    setup_logging()
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(open(os.devnull, "w", encoding="utf-8"))  # noqa: SIM115


def main(argv: list[str] | None = None) -> int:
    """Serve, measure on each loop, print and save the figures."""
    args = _arguments(argv)
    if args.serve:
        serve(args.port)
        return 0
    quiet_logging()
    with serving() as url:
        runs = measure(url, args)
    results = report(runs, args)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(results, indent=2) + "\n")
    print(f"figures written to {args.results}")
    return 0


def loops(text: str) -> list[str]:
    """A comma-separated list of event loops, each one installed."""
    names = [part.strip() for part in text.split(",") if part.strip()]
    for name in names:
        if name not in LOOPS:
            raise argparse.ArgumentTypeError(f"{name!r}: the loops are {', '.join(LOOPS)}")
        if name == "uvloop" and not _has_uvloop():
            raise argparse.ArgumentTypeError("uvloop is not installed (pip install uvloop)")
    if not names:
        raise argparse.ArgumentTypeError("name at least one loop")
    return names


def _has_uvloop() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    """The command line's options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for option, default, meaning in (
        ("--messages", 5_000, "MTs measured"),
        ("--warmup", 500, "MTs sent first"),
        ("--in-flight", 16, "MTs at a time (the sender's concurrency)"),
        ("--rounds", 3, "rounds, the median kept"),
    ):
        parser.add_argument(
            option, type=int, metavar="N", default=default, help=f"{meaning} (%(default)s)"
        )
    parser.add_argument(
        "--loops",
        type=loops,
        default=[name for name in LOOPS if name != "uvloop" or _has_uvloop()],
        help="event loops, comma-separated (asyncio, and uvloop when installed)",
    )
    parser.add_argument(
        "--results",
        type=Path,
        metavar="PATH",
        default=ROOT / "bench" / "results" / "client.json",
        help="where the figures go (%(default)s)",
    )
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(main())
