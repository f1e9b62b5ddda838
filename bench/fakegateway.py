"""A fast fake gateway: the send API's answer to a request it queued, and a record of it.

    python bench/fakegateway.py --port P [--record PATH]

`GET /message?application=..&password=..&content=..&destination=..`: `200` with a new
64-bit message id as the whole body, as the gateway answers a message submitted
successfully (the spec: "On success: HTTP/1.1 200 OK <message-id>"); a request without
one of those four gets the spec's `ERROR Missing <name> parameter`, `400` as with
version=2. Nothing else of the gateway: no credentials checked, no handsets, no delivery
receipts.

Each MT accepted is counted and kept in memory as (id, time.time(), reference,
destination): `GET /api/messages` answers them in the shape of the simulator's phone API
(`{"messages": [{"id", "destination", "reference", "accepted_at"}]}`), `GET /api/count`
the count alone, and with `--record PATH` they are written there as the process stops.

A bare ASGI callable under uvicorn with `botkit run`'s options: no router, no request
object, so that a request costs it little and the benchmarks measure the app, not the
gateway. bench/pipeline.py, memory.py and ack.py send to it; `botkit simulator` stays
where a benchmark needs delivery receipts (pipeline.py --dlrs, outbound.py).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import secrets
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
from common import ROOT, free_port, process

from botkit.serving import UVICORN_OPTIONS

REQUIRED = ("application", "password", "content", "destination")
Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]


class FakeGateway:
    """The ASGI app: answers send requests with new ids and records what it accepted."""

    def __init__(self, record: Path | None = None) -> None:
        # Ids from a random start in the upper half of the signed 64-bit range.
        self._ids = itertools.count(2**62 + secrets.randbelow(2**61))
        self.accepted: list[tuple[int, float, str | None, str | None]] = []
        self.record = record

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        path = scope["path"]
        if path == "/message":
            status, body = self.message(scope["query_string"].decode("latin-1"))
        elif path == "/api/messages":
            status, body = 200, json.dumps({"messages": self.messages()})
        elif path == "/api/count":
            status, body = 200, json.dumps({"accepted": len(self.accepted)})
        elif path == "/healthz":
            status, body = 200, "OK"
        else:
            status, body = 404, "Not Found"
        data = body.encode()
        headers = [(b"content-type", b"text/plain; charset=utf-8")]
        headers.append((b"content-length", str(len(data)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": data})

    def message(self, query: str) -> tuple[int, str]:
        """The answer to a send request: its new id, or the spec's error."""
        params = dict(parse_qsl(query))
        for name in REQUIRED:
            if not params.get(name):
                return 400, f"ERROR Missing {name} parameter"
        message_id = next(self._ids)
        self.accepted.append(
            (message_id, time.time(), params.get("reference"), params["destination"])
        )
        return 200, str(message_id)

    def messages(self) -> list[dict[str, Any]]:
        """What was accepted, in the shape of the simulator's GET /api/messages."""
        return [
            {"id": str(i), "destination": to, "reference": ref, "accepted_at": at}
            for i, at, ref, to in self.accepted
        ]

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        """Start at once; write the record as the server stops."""
        while True:
            event = await receive()
            if event["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif event["type"] == "lifespan.shutdown":
                if self.record is not None:
                    self.record.write_text(json.dumps({"messages": self.messages()}))
                await send({"type": "lifespan.shutdown.complete"})
                return


@dataclass
class Running:
    """A fake gateway serving in a process of its own."""

    url: str  # base URL; the send URL is url + "/message"
    pid: int

    def messages(self) -> list[dict[str, Any]]:
        """Every MT it accepted so far."""
        return httpx.get(f"{self.url}/api/messages", timeout=60).json()["messages"]


@contextlib.contextmanager
def running(record: Path | None = None, cwd: Path = ROOT) -> Iterator[Running]:
    """A fake gateway on a free loopback port until the block ends."""
    port = free_port()
    command = [sys.executable, str(Path(__file__)), "--port", str(port)]
    if record is not None:
        command += ["--record", str(record)]
    url = f"http://127.0.0.1:{port}"
    with process(command, f"{url}/healthz", cwd=cwd) as server:
        yield Running(url, server.pid)


def main(argv: list[str] | None = None) -> int:
    """Serve the fake gateway until interrupted."""
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (%(default)s)")
    parser.add_argument("--port", type=int, default=8001, help="port (%(default)s)")
    parser.add_argument("--record", type=Path, help="write what was accepted here at exit")
    args = parser.parse_args(argv)
    uvicorn.run(FakeGateway(args.record), host=args.host, port=args.port, **UVICORN_OPTIONS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
