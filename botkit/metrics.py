"""Metrics in the Prometheus text exposition format (version 0.0.4), served at `/metrics`.

    metrics = Metrics()                       # one per app, owned by its Runtime
    metrics.mo_received["stored"].inc()
    metrics.mt_send_seconds.observe(0.042)
    body = metrics.render(inbox_depth=0, outbox_depth=3)   # bytes, at scrape time

prometheus_client's instruments, in a registry of each Metrics' own: tests run several
apps in one process, each counting its own.
"""

from __future__ import annotations

import gc
from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.registry import Collector

from .messages import DELIVERY_STATUSES

# What generate_latest writes (prometheus_client's CONTENT_TYPE_LATEST is 1.0.0 since 0.23).
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4

# Prometheus's default buckets: from a fast local call to a gateway near its timeout
# (not prometheus_client's, which add 0.075, 0.75 and 7.5).
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# A receipt's status outside the spec's eight is counted under this label: anyone who
# reaches the DLR URL could otherwise add series without end.
OTHER_STATUS = "other"


def status_label(status: str) -> str:
    """The `status` label of a receipt: one of the spec's eight by name, else `other`
    (the receipt keeps its status verbatim; only the count is bounded)."""
    return status if status in DELIVERY_STATUSES else OTHER_STATUS


def _by_label(counter: Counter, values: Iterable[str]) -> dict[str, Counter]:
    """The series of `counter` (of one label), one per value, made now: each shows 0
    before it happens (a rate over it is 0, not absent), an increment skips the lookup
    and lock of `labels()`, and a value outside them is a KeyError, never a new series."""
    return {value: counter.labels(value) for value in values}


class GarbageCollector(Collector):
    """The garbage collector's figures for the process, read at each scrape, under
    prometheus_client's names for them; and how many objects are frozen (botkit/heap.py)."""

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        families = {
            "collections": CounterMetricFamily(
                "python_gc_collections_total",
                "Collections of each generation",
                labels=["generation"],
            ),
            "collected": CounterMetricFamily(
                "python_gc_objects_collected_total",
                "Objects found unreachable and freed, by the generation collected",
                labels=["generation"],
            ),
            "uncollectable": CounterMetricFamily(
                "python_gc_objects_uncollectable_total",
                "Objects found unreachable that could not be freed, by generation",
                labels=["generation"],
            ),
        }
        for generation, stats in enumerate(gc.get_stats()):
            for key, family in families.items():
                family.add_metric([str(generation)], stats[key])
        yield from families.values()
        yield GaugeMetricFamily(
            "python_gc_objects_frozen",
            "Objects out of the collector's sight: those `botkit run` had made by start-up",
            value=gc.get_freeze_count(),
        )


class Metrics(Collector):
    """botkit's instruments for one app: what its callbacks, dispatcher and sender count,
    and the gauges its `/metrics` reads at scrape time."""

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()
        self.mo_received = _by_label(
            Counter(
                "botkit_mo_received_total",
                "MO callbacks by outcome: stored, duplicate (id already stored), spooled (kept "
                "on disk while the database could not take it), invalid (400), forbidden (403, "
                "not in BOTKIT_CALLBACK_ALLOW), unavailable (503, neither stored nor spooled)",
                ["outcome"],
                registry=registry,
            ),
            ("stored", "duplicate", "spooled", "invalid", "forbidden", "unavailable"),
        )
        self.mo_handled = _by_label(
            Counter(
                "botkit_mo_handled_total",
                "MOs by the outcome of their handling: handled, or failed (the handler raised)",
                ["outcome"],
                registry=registry,
            ),
            ("handled", "failed"),
        )
        self.mt_attempts = _by_label(
            Counter(
                "botkit_mt_attempts_total",
                "MT send attempts by outcome: accepted, failed (for good), uncertain (may have "
                "reached the gateway), retried (queued again)",
                ["outcome"],
                registry=registry,
            ),
            ("accepted", "failed", "uncertain", "retried"),
        )
        self.dlr_received = _by_label(
            Counter(
                "botkit_dlr_received_total",
                "Delivery receipts by status: the spec's eight by name, any other status as "
                "other (repeats of a stored receipt not counted)",
                ["status"],
                registry=registry,
            ),
            (*DELIVERY_STATUSES, OTHER_STATUS),
        )
        self.webhooks = _by_label(
            Counter(
                "botkit_webhooks_delivered_total",
                "Webhook delivery attempts by outcome: delivered (a 2xx answer), retried (to be "
                "tried again later), failed (for good: the last attempt, or no webhook now)",
                ["outcome"],
                registry=registry,
            ),
            ("delivered", "retried", "failed"),
        )
        self.mt_send_seconds = Histogram(
            "botkit_mt_send_seconds",
            "Time of one gateway send request, in seconds",
            buckets=BUCKETS,
            registry=registry,
        )
        self.mo_handle_seconds = Histogram(
            "botkit_mo_handle_seconds",
            "Time to handle one MO (find thread, route, handler, commit), in seconds",
            buckets=BUCKETS,
            registry=registry,
        )
        # Set by render() from what /metrics reads at each scrape: one more is one entry
        # here and one more keyword where botkit/app.py calls render().
        self.scraped = {
            "inbox_depth": Gauge(
                "botkit_inbox_depth", "MOs stored and waiting to be handled", registry=registry
            ),
            "outbox_depth": Gauge(
                "botkit_outbox_depth", "MTs waiting for the gateway", registry=registry
            ),
            "webhooks_pending": Gauge(
                "botkit_webhooks_pending",
                "Webhook deliveries waiting to be made or retried",
                registry=registry,
            ),
            "spool_depth": Gauge(
                "botkit_spool_depth",
                "Callbacks kept in this process's spool, waiting for the database",
                registry=registry,
            ),
            "spool_set_aside": Gauge(
                "botkit_spool_set_aside",
                "Records this process set aside from its spool, never stored: look at them",
                registry=registry,
            ),
            "spool_age_seconds": Gauge(
                "botkit_spool_age_seconds",
                "How long the oldest callback in the spool has waited, in seconds (0: none)",
                registry=registry,
            ),
        }
        registry.register(GarbageCollector())

    def collect(self) -> Iterator[Metric]:
        """The registry's families without the `*_created` samples prometheus_client adds
        to counters and histograms: series no scrape had before, left out for this app
        alone (prometheus_client.disable_created_metrics() would for the whole process)."""
        for family in self.registry.collect():
            created = f"{family.name}_created"
            family.samples = [sample for sample in family.samples if sample.name != created]
            yield family

    def render(self, **scraped: float) -> bytes:
        """The exposition text, with the values of the gauges in `scraped` (each one,
        read by the caller at scrape time) and the garbage collector's figures."""
        if set(scraped) != set(self.scraped):
            raise TypeError(
                f"render() takes the gauges {sorted(self.scraped)} by keyword, "
                f"got {sorted(scraped)}"
            )
        for name, value in scraped.items():
            self.scraped[name].set(value)
        return generate_latest(self)
