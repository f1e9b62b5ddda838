"""Server-sent events as a test reads them from an httpx response, as they arrive."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx

# An event: its name (`message` unless it says) and its data, a JSON value.
Event = tuple[str, Any]


class Parser:
    """Events from an SSE stream's lines, fed one at a time."""

    def __init__(self) -> None:
        self.kind = "message"
        self.data: list[str] = []

    def feed(self, line: str) -> Event | None:
        """The event `line` ends, if it ends one."""
        if line.startswith("event:"):
            self.kind = line.partition(":")[2].strip()
        elif line.startswith("data:"):
            self.data.append(line.partition(":")[2].strip())
        elif not line and self.data:
            event = self.kind, json.loads("\n".join(self.data))
            self.kind, self.data = "message", []
            return event
        return None


def events(response: httpx.Response) -> Iterator[Event]:
    parser = Parser()
    for line in response.iter_lines():
        if (event := parser.feed(line)) is not None:
            yield event


async def async_events(response: httpx.Response) -> AsyncIterator[Event]:
    parser = Parser()
    async for line in response.aiter_lines():
        if (event := parser.feed(line)) is not None:
            yield event
