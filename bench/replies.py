"""What became of each MO of a load: stored, replied to, its reply accepted when.

    drained = drain(rows, timeout=120)
    figures = outcome(load, paths, pairs, gateway.messages())

Shared by the pipelines that answer MOs: botkit's (bench/pipeline.py) and the floor's
(bench/floor.py). Each says which reply answers which MO (`pairs`, from its database:
MO gateway id, and its reply's gateway id or None); the gateway's record says when it
accepted each reply. MO-to-MT latency counts from the moment the MO was due, so time the
MO spent queued anywhere counts.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

from backends import Rows
from common import ms, percentile
from load import Load

POLL = 0.25  # seconds between looks at the app's queues while it drains
# botkit's queues: MOs stored and not yet handled, MTs queued and not yet sent.
QUEUES = "SELECT (SELECT count(*) FROM inbox), (SELECT count(*) FROM outbox)"
WINDOW = 10.0  # seconds: MO-to-MT over the load's first and last this long


def drain(rows: Rows, timeout: float, queues: str = QUEUES) -> bool:
    """Wait until both counts of the query `queues` are 0 (every MO handled, every
    reply sent), at most `timeout` seconds; whether they were."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        [(inbox, outbox)] = rows(queues)
        if inbox == outbox == 0:
            return True
        time.sleep(POLL)
    return False


def outcome(
    load: Load,
    paths: Sequence[str],
    pairs: Sequence[tuple[int, int | None]],
    took: Sequence[dict[str, Any]],
) -> dict[str, Any]:
    """Whether every MO answered 200 was stored (`pairs` holds each stored MO) and
    replied to, each reply taken by the gateway once (`took`, its record); replies per
    second and MO-to-MT latency, over the whole load and over its first and last WINDOW
    seconds (the same then means no backlog builds up)."""
    due = {gateway_id(paths[i]): load.started_wall + load.due[i] for i in range(len(paths))}
    answered = {gateway_id(paths[i]) for i in load.ok}
    accepted = {int(m["id"]): m["accepted_at"] for m in took}
    replied = {mo: mt for mo, mt in pairs if mt is not None}
    latency = {mo: accepted[mt] - due[mo] for mo, mt in replied.items() if mt in accepted}
    last = max(accepted.values(), default=None)
    figures = {
        "stored": len(pairs),
        "replies": len(replied),
        "lost": len(answered - {mo for mo, _ in pairs}),
        "unanswered": len(answered - replied.keys()),
        "gateway_took": len(took),
        "gateway_duplicates": len(took) - len({m["reference"] for m in took}),
        "replies_per_s": round(len(accepted) / (last - load.started_wall), 1) if last else 0.0,
        **_latency("mo_to_mt", list(latency.values())),
    }
    duration = len(paths) / load.rate
    window = min(WINDOW, duration / 2)
    for name, start in (("first", 0.0), ("last", duration - window)):
        ids = [gateway_id(paths[i]) for i, d in enumerate(load.due) if start <= d < start + window]
        figures |= _window(name, [latency.get(mo) for mo in ids], window)
    return figures


def _latency(name: str, seconds: list[float]) -> dict[str, float | None]:
    """p50, p99 and max of `seconds`, in ms, under `name`_p50_ms ..."""
    return {
        f"{name}_p50_ms": ms(percentile(seconds, 50)) if seconds else None,
        f"{name}_p99_ms": ms(percentile(seconds, 99)) if seconds else None,
        f"{name}_max_ms": ms(max(seconds)) if seconds else None,
    }


def _window(name: str, seconds: list[float | None], window: float) -> dict[str, Any]:
    """MO-to-MT p99 over one window's MOs, those without a reply counted as slower than
    any; None when the p99 falls on one of them."""
    ranked = [math.inf if s is None else s for s in seconds]
    p99 = percentile(ranked, 99) if ranked else math.inf
    return {
        f"mo_to_mt_{name}_p99_ms": None if math.isinf(p99) else ms(p99),
        f"mo_to_mt_{name}_unreplied": sum(s is None for s in seconds),
        "window_s": round(window, 2),
    }


def gateway_id(path: str) -> int:
    """The `id` of an MO callback's path (its first parameter)."""
    return int(path.split("?id=", 1)[1].split("&", 1)[0])
