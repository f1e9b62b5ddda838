"""Metrics in the Prometheus text exposition format (version 0.0.4), served at `/metrics`.

    metrics = Metrics()                       # one per app, owned by its Runtime
    metrics.mo_received.inc(outcome="stored")
    metrics.mt_send_seconds.observe(0.042)
    text = metrics.render(inbox_depth=0, outbox_depth=3)

A few small instruments rather than prometheus_client: its registry is global to the
process, and tests run several apps in one process, each with counters of its own.
"""

from __future__ import annotations

import gc
import math
from collections.abc import Iterable, Iterator

from .messages import DELIVERY_STATUSES

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Prometheus's default buckets: from a fast local call to a gateway near its timeout.
DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# A receipt's status outside the spec's eight is counted under this label: anyone who
# reaches the DLR URL could otherwise add series without end.
OTHER_STATUS = "other"


def status_label(status: str) -> str:
    """The `status` label of a receipt: one of the spec's eight by name, else `other`
    (the receipt keeps its status verbatim; only the count is bounded)."""
    return status if status in DELIVERY_STATUSES else OTHER_STATUS


def escape_label(value: str) -> str:
    """A label value as the format quotes it: backslash, double quote and newline escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def escape_help(text: str) -> str:
    """HELP text as the format wants it: backslash and newline escaped."""
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def format_value(value: float) -> str:
    """A sample value: integers without a fraction, infinities as +Inf/-Inf."""
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))


def _labels(pairs: Iterable[tuple[str, str]]) -> str:
    text = ",".join(f'{name}="{escape_label(value)}"' for name, value in pairs)
    return f"{{{text}}}" if text else ""


class Counter:
    """A count that only goes up, per combination of label values.

    `initial` lists label values to show at 0 before they happen, so that a rate over
    a series that has not moved yet is 0 rather than absent.
    """

    kind = "counter"

    def __init__(
        self,
        name: str,
        help: str,
        labels: tuple[str, ...] = (),
        initial: Iterable[tuple[str, ...]] = (),
    ) -> None:
        self.name = name
        self.help = help
        self.labels = labels
        self._values: dict[tuple[str, ...], float] = {key: 0.0 for key in initial}

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        """Add `amount` (not negative) to the series named by `labels`."""
        if amount < 0:
            raise ValueError("a counter only goes up")
        if set(labels) != set(self.labels):
            raise ValueError(f"{self.name} takes labels {self.labels}, got {sorted(labels)}")
        key = tuple(str(labels[name]) for name in self.labels)
        self._values[key] = self._values.get(key, 0.0) + amount

    def samples(self) -> Iterator[str]:
        for key, value in sorted(self._values.items()):
            yield f"{self.name}{_labels(zip(self.labels, key, strict=True))} {format_value(value)}"


class Histogram:
    """Observations counted in fixed, cumulative buckets, with their sum and count."""

    kind = "histogram"

    def __init__(self, name: str, help: str, buckets: tuple[float, ...] = DEFAULT_BUCKETS) -> None:
        if list(buckets) != sorted(set(buckets)):
            raise ValueError("buckets must be increasing")
        self.name = name
        self.help = help
        self.buckets = (*buckets, math.inf)
        self._counts = [0] * len(self.buckets)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        """Count one observation (seconds, for the histograms of botkit)."""
        for index, bound in enumerate(self.buckets):
            if value <= bound:
                self._counts[index] += 1
                break
        self.sum += value
        self.count += 1

    def samples(self) -> Iterator[str]:
        cumulative = 0
        for bound, count in zip(self.buckets, self._counts, strict=True):
            cumulative += count
            yield f'{self.name}_bucket{{le="{format_value(bound)}"}} {cumulative}'
        yield f"{self.name}_sum {format_value(self.sum)}"
        yield f"{self.name}_count {self.count}"


class Gauge:
    """A value read at scrape time (a queue's depth)."""

    kind = "gauge"

    def __init__(self, name: str, help: str) -> None:
        self.name = name
        self.help = help
        self.current = 0.0

    def set(self, value: float) -> None:
        self.current = value

    def samples(self) -> Iterator[str]:
        yield f"{self.name} {format_value(self.current)}"


Instrument = Counter | Histogram | Gauge


def collector() -> list[Instrument]:
    """The garbage collector's figures for the process, read now, under
    prometheus_client's names for them; and how many objects are frozen (botkit/heap.py)."""
    collections = Counter(
        "python_gc_collections_total", "Collections of each generation", ("generation",)
    )
    collected = Counter(
        "python_gc_objects_collected_total",
        "Objects found unreachable and freed, by the generation collected",
        ("generation",),
    )
    uncollectable = Counter(
        "python_gc_objects_uncollectable_total",
        "Objects found unreachable that could not be freed, by generation",
        ("generation",),
    )
    for generation, stats in enumerate(gc.get_stats()):
        collections.inc(stats["collections"], generation=str(generation))
        collected.inc(stats["collected"], generation=str(generation))
        uncollectable.inc(stats["uncollectable"], generation=str(generation))
    frozen = Gauge(
        "python_gc_objects_frozen",
        "Objects out of the collector's sight: those `botkit run` had made by start-up",
    )
    frozen.set(gc.get_freeze_count())
    return [collections, collected, uncollectable, frozen]


def render(instruments: Iterable[Instrument]) -> str:
    """The exposition text of `instruments`: HELP and TYPE, then the samples of each."""
    lines = []
    for instrument in instruments:
        lines.append(f"# HELP {instrument.name} {escape_help(instrument.help)}")
        lines.append(f"# TYPE {instrument.name} {instrument.kind}")
        lines.extend(instrument.samples())
    return "\n".join(lines) + "\n"


class Metrics:
    """botkit's instruments for one app: what its callbacks, dispatcher and sender count."""

    def __init__(self) -> None:
        self.mo_received = Counter(
            "botkit_mo_received_total",
            "MO callbacks by outcome: stored, duplicate (id already stored), invalid (400), "
            "forbidden (403, not in BOTKIT_CALLBACK_ALLOW), unavailable (503, not stored)",
            ("outcome",),
            [("stored",), ("duplicate",), ("invalid",), ("forbidden",), ("unavailable",)],
        )
        self.mo_handled = Counter(
            "botkit_mo_handled_total",
            "MOs by the outcome of their handling: handled, or failed (the handler raised)",
            ("outcome",),
            [("handled",), ("failed",)],
        )
        self.mt_attempts = Counter(
            "botkit_mt_attempts_total",
            "MT send attempts by outcome: accepted, failed (for good), uncertain (may have "
            "reached the gateway), retried (queued again)",
            ("outcome",),
            [("accepted",), ("failed",), ("uncertain",), ("retried",)],
        )
        self.dlr_received = Counter(
            "botkit_dlr_received_total",
            "Delivery receipts by status: the spec's eight by name, any other status as "
            "other (repeats of a stored receipt not counted)",
            ("status",),
            [(status,) for status in (*DELIVERY_STATUSES, OTHER_STATUS)],
        )
        self.mt_send_seconds = Histogram(
            "botkit_mt_send_seconds", "Time of one gateway send request, in seconds"
        )
        self.mo_handle_seconds = Histogram(
            "botkit_mo_handle_seconds",
            "Time to handle one MO (find thread, route, handler, commit), in seconds",
        )
        self.inbox_depth = Gauge("botkit_inbox_depth", "MOs stored and waiting to be handled")
        self.outbox_depth = Gauge("botkit_outbox_depth", "MTs waiting for the gateway")

    def render(self, *, inbox_depth: int, outbox_depth: int) -> str:
        """The exposition text, with the queue depths read by the caller at scrape time,
        and the garbage collector's figures (the process's)."""
        self.inbox_depth.set(inbox_depth)
        self.outbox_depth.set(outbox_depth)
        return render(
            (
                self.mo_received,
                self.mo_handled,
                self.mt_attempts,
                self.dlr_received,
                self.mt_send_seconds,
                self.mo_handle_seconds,
                self.inbox_depth,
                self.outbox_depth,
                *collector(),
            )
        )
