"""Log lines: plain text for a terminal, or one JSON object per line for a collector."""

from __future__ import annotations

import json
import logging
import sys
import time
from datetime import UTC, datetime
from typing import Any

from .clock import stamp

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "taskName",
    # uvicorn passes its message again with terminal colours.
    "color_message",
}


def elapsed_ms(started: float) -> float:
    """Milliseconds since `started` (a `time.perf_counter()` reading), for a log field."""
    return round((time.perf_counter() - started) * 1000, 1)


def fields(record: logging.LogRecord) -> dict[str, Any]:
    """The fields a log call passed with `extra=` (ids, handset, timings)."""
    return {
        key: value
        for key, value in record.__dict__.items()
        if key not in _STANDARD and not key.startswith("_")
    }


class JSONFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, the fields given with
    `extra=` as keys of their own (and the traceback)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            **fields(record),
            "time": stamp(datetime.fromtimestamp(record.created, UTC)),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """`12:00:00 INFO    botkit.x: message`, one record a line: the lines after the first
    (a traceback, a message with a newline in it) are indented, so that text a handset
    sent can never pass for a log line of its own."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record).replace("\r", "\\r")
        return text.replace("\n", "\n  | ")


def setup_logging(fmt: str = "text", level: int = logging.INFO) -> None:
    """Send botkit's log lines (and uvicorn's) to stderr in the chosen format."""
    # Neither format shows the caller's file and line, thread, process or task: not
    # looking them up saves a fifth of each line's cost (the logging HOWTO's
    # "Optimization" section lists these switches for that).
    logging._srcfile = None  # type: ignore[attr-defined]
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging.logAsyncioTasks = False  # Python 3.12 and later
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JSONFormatter())
    else:
        handler.setFormatter(TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # httpx logs every request at INFO; the gateway client logs its own, redacted line.
    logging.getLogger("httpx").setLevel(logging.WARNING)
