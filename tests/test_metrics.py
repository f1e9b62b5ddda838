"""GET /metrics: Prometheus text format 0.0.4, counted per app, after real round trips."""

from __future__ import annotations

import dataclasses
import gc
import math
import re

import httpx
import prometheus_client
import pytest
from conftest import client_to, eventually, rows, running
from servers import free_port, start, wait_for

from botkit import Bot, Context, create_app
from botkit.messages import DELIVERY_STATUSES
from botkit.metrics import Metrics

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
VALUE = r"-?[0-9]+(?:\.[0-9]+)?(?:e[+-]?[0-9]+)?|[+-]Inf|NaN"
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"')
PAIR = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
SAMPLE = re.compile(
    rf"(?P<name>{NAME})(?:\{{(?P<labels>{PAIR}(?:,{PAIR})*)\}})? (?P<value>{VALUE})"
)
HELP = re.compile(rf"# HELP ({NAME}) (.*)")
TYPE = re.compile(rf"# TYPE ({NAME}) (counter|gauge|histogram)")
UNESCAPE = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


# The gauges /metrics reads at scrape time, all at zero.
NO_DEPTHS = {
    "inbox_depth": 0,
    "outbox_depth": 0,
    "webhooks_pending": 0,
    "spool_depth": 0,
    "spool_age_seconds": 0,
    "spool_set_aside": 0,
}


def parse(text: str) -> Samples:
    """Parse exposition text strictly: every line a HELP, a TYPE or a sample of a family
    declared just before it; a histogram's buckets cumulative and ending at its count."""
    assert text.endswith("\n")
    samples: Samples = {}
    types: dict[str, str] = {}
    family = None
    for line in text.removesuffix("\n").split("\n"):
        if match := HELP.fullmatch(line):
            family = match[1]
            continue
        if match := TYPE.fullmatch(line):
            assert match[1] == family, f"TYPE of {match[1]} is not after its HELP"
            types[family] = match[2]
            continue
        match = SAMPLE.fullmatch(line)
        assert match, f"not a sample line: {line!r}"
        name, labels, value = match["name"], match["labels"] or "", match["value"]
        suffixes = ("_bucket", "_sum", "_count") if types.get(family) == "histogram" else ("",)
        assert any(name == f"{family}{suffix}" for suffix in suffixes), line
        pairs = {
            key: re.sub(r"\\[\\\"n]", lambda m: UNESCAPE[m[0]], raw)
            for key, raw in LABEL.findall(labels)
        }
        samples[(name, frozenset(pairs.items()))] = float(value.replace("Inf", "inf"))
    for name, kind in types.items():
        if kind == "histogram":
            check_histogram(samples, name)
    return samples


def check_histogram(samples: Samples, name: str) -> None:
    buckets = sorted(
        (float(dict(labels)["le"].replace("Inf", "inf")), value)
        for (sample, labels), value in samples.items()
        if sample == f"{name}_bucket"
    )
    counts = [count for _, count in buckets]
    assert counts == sorted(counts), f"{name} buckets are not cumulative"
    assert buckets[-1][0] == math.inf
    assert buckets[-1][1] == samples[(f"{name}_count", frozenset())]


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def by_label(samples: Samples, name: str, label: str) -> dict[str, float]:
    return {dict(labels)[label]: v for (sample, labels), v in samples.items() if sample == name}


async def scrape(client) -> Samples:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    return parse(response.text)


async def counted(client, name: str, total: float) -> bool:
    """True once the series of counter `name` add up to `total` (work runs in the
    background: a counter moves just after the commit a test could see)."""
    samples = await scrape(client)
    return sum(v for (sample, _), v in samples.items() if sample == name) == total


async def test_counters_after_a_round_trip_through_the_simulator(app, client):
    sim = app.state.simulator
    sim.set_unroutable("+61400000009")
    mo = await sim.send_mo("+61400000001", "hello")
    await sim.send_mo("+61400000009", "hello")
    await eventually(lambda: counted(client, "botkit_mt_attempts_total", 2))
    await eventually(lambda: counted(client, "botkit_dlr_received_total", 3))
    duplicate = {"id": str(mo.id), "source": mo.source, "destination": mo.destination}
    again = await client.get("/callbacks/test-token/mo", params={**duplicate, "content": "x"})
    assert again.text == "OK"
    assert (await client.get("/callbacks/test-token/mo", params=duplicate)).status_code == 400
    unknown = {"id": "77", "status": "Carrier Hold"}
    assert (await client.get("/callbacks/test-token/dlr", params=unknown)).status_code == 200
    await client.get("/callbacks/test-token/dlr", params=unknown)  # a repeat: not counted

    samples = await scrape(client)

    assert by_label(samples, "botkit_mo_received_total", "outcome") == {
        "stored": 2,
        "duplicate": 1,
        "spooled": 0,
        "invalid": 1,
        "forbidden": 0,
        "unavailable": 0,
    }
    assert by_label(samples, "botkit_mo_handled_total", "outcome") == {"handled": 2, "failed": 0}
    assert by_label(samples, "botkit_mt_attempts_total", "outcome") == {
        "accepted": 1,
        "failed": 1,
        "uncertain": 0,
        "retried": 0,
    }
    assert by_label(samples, "botkit_dlr_received_total", "status") == {
        "submitted": 1,
        "sent": 1,
        "received": 1,
        "failed": 0,
        "frozen": 0,
        "dead": 0,
        "rejected": 0,
        "expired": 0,
        "other": 1,
    }
    assert value(samples, "botkit_mt_send_seconds_count") == 2
    assert value(samples, "botkit_mo_handle_seconds_count") == 2
    assert value(samples, "botkit_mo_handle_seconds_sum") > 0
    assert value(samples, "botkit_inbox_depth") == 0
    assert value(samples, "botkit_outbox_depth") == 0


@pytest.mark.backends  # the statuses stored, on each backend
async def test_statuses_outside_the_spec_are_counted_as_other_and_kept_verbatim(client, settings):
    """Regression (attack review): each new unknown status added a label series for
    good, so anyone who could reach the DLR URL could grow /metrics without end."""
    made_up = [f"Carrier Hold {n}" for n in range(20)] + ["SENT", "sent "]
    for n, status in enumerate(made_up):
        params = {"id": str(100 + n), "status": status}
        assert (await client.get("/callbacks/test-token/dlr", params=params)).text == "OK"
    params = {"id": "200", "status": "rejected"}
    assert (await client.get("/callbacks/test-token/dlr", params=params)).text == "OK"

    counts = by_label(await scrape(client), "botkit_dlr_received_total", "status")

    assert set(counts) == {*DELIVERY_STATUSES, "other"}
    assert (counts["other"], counts["rejected"], counts["sent"]) == (len(made_up), 1, 0)
    kept = rows(settings.db, "SELECT status FROM deliveries ORDER BY gateway_id")
    assert [row[0] for row in kept] == [*made_up, "rejected"]


async def test_each_app_counts_its_own_and_a_failed_handler_is_counted(settings, tmp_path):
    boom = Bot("boom")

    @boom.fallback
    async def fail(ctx: Context) -> None:
        raise RuntimeError("the bot broke")

    other = dataclasses.replace(settings, db=str(tmp_path / "other.db"))
    async with (
        running(create_app(settings)) as first,
        running(create_app(other, bots=[boom])) as second,
        client_to(first) as first_client,
        client_to(second) as second_client,
    ):
        await second.state.simulator.send_mo("+61400000001", "anything")
        await eventually(lambda: counted(second_client, "botkit_mo_handled_total", 1))
        failed = await scrape(second_client)
        untouched = await scrape(first_client)

    assert by_label(failed, "botkit_mo_handled_total", "outcome") == {"handled": 0, "failed": 1}
    assert value(failed, "botkit_mo_received_total", outcome="stored") == 1
    # botkit's counters are the app's own (the garbage collector's are the process's).
    ours = [v for (name, _), v in untouched.items() if name.startswith("botkit_")]
    assert ours and all(v == 0 for v in ours)


async def test_forbidden_callbacks_are_counted(settings):
    guarded = dataclasses.replace(settings, callback_allow=("203.0.113.0/24",))
    async with running(create_app(guarded)) as app, client_to(app) as client:
        params = {"id": "1", "source": "+61400000001", "destination": "4433", "content": "x"}
        assert (await client.get("/callbacks/test-token/mo", params=params)).status_code == 403
        samples = await scrape(client)
    assert value(samples, "botkit_mo_received_total", outcome="forbidden") == 1


async def test_queue_depths_are_read_at_scrape_time(app, client):
    await app.state.runtime.dispatcher.stop()  # nothing handles the MO: it stays in the inbox
    params = {"id": "1", "source": "+61400000001", "destination": "4433", "content": "x"}
    await client.get("/callbacks/test-token/mo", params=params)
    assert value(await scrape(client), "botkit_inbox_depth") == 1


async def test_the_garbage_collectors_figures_are_read_at_scrape_time(client):
    before = await scrape(client)
    gc.collect()
    after = await scrape(client)
    full = "python_gc_collections_total"
    assert value(after, full, generation="2") >= value(before, full, generation="2") + 1
    assert set(by_label(after, "python_gc_objects_collected_total", "generation")) == {
        "0",
        "1",
        "2",
    }
    # No test freezes a test process's objects: only `botkit run` freezes its own.
    assert value(after, "python_gc_objects_frozen") == 0


def test_botkit_run_freezes_what_start_up_made_unless_it_reloads(tmp_path, processes):
    frozen = {}
    for name, args in (("served", []), ("reloading", ["--reload"])):
        port = free_port()
        db = str(tmp_path / f"{name}.db")
        app = start(processes, ["run", "--port", str(port), "--db", db, *args])
        wait_for(f"http://127.0.0.1:{port}/healthz", app)
        response = httpx.get(f"http://127.0.0.1:{port}/metrics")
        frozen[name] = value(parse(response.text), "python_gc_objects_frozen")
    # Start-up's modules, bots and app: a full collection never walks them.
    assert frozen["served"] > 20_000
    # Reloaded bots' old modules would stay frozen, never freed: nothing is.
    assert frozen["reloading"] == 0


async def test_while_the_database_is_away_the_spool_is_shown_and_the_queues_unknown(app, client):
    await app.state.runtime.db.close()
    mo = {"id": "1", "source": "+61400000001", "destination": "4433", "content": "hi"}
    callback = await client.get("/callbacks/test-token/mo", params=mo)
    assert callback.status_code == 200  # spooled
    response = await client.get("/metrics")
    assert response.status_code == 200
    samples = parse(response.text)
    assert value(samples, "botkit_spool_depth") == 1
    assert value(samples, "botkit_spool_age_seconds") >= 0
    assert value(samples, "botkit_mo_received_total", outcome="spooled") == 1
    assert math.isnan(value(samples, "botkit_inbox_depth"))
    assert math.isnan(value(samples, "botkit_outbox_depth"))


def test_histograms_keep_their_buckets_with_sum_and_count():
    metrics = Metrics()
    for seconds in (0.004, 0.005, 0.75, 3.0, 60.0):
        metrics.mt_send_seconds.observe(seconds)
    samples = parse(metrics.render(**NO_DEPTHS).decode())
    assert by_label(samples, "botkit_mt_send_seconds_bucket", "le") == {
        **dict.fromkeys(["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5"], 2),
        **dict.fromkeys(["1.0", "2.5"], 3),
        **dict.fromkeys(["5.0", "10.0"], 4),
        "+Inf": 5,
    }
    assert value(samples, "botkit_mt_send_seconds_sum") == pytest.approx(63.759)
    assert value(samples, "botkit_mt_send_seconds_count") == 5


def test_counts_are_the_apps_own_without_created_series():
    """Each Metrics has a registry of its own, and leaves out the `_created` series
    prometheus_client adds for itself alone: a bot's own counters keep theirs."""
    first, second = Metrics(), Metrics()
    first.mo_received["stored"].inc()
    text = first.render(**NO_DEPTHS).decode()
    assert "_created" not in text
    assert value(parse(text), "botkit_mo_received_total", outcome="stored") == 1
    untouched = parse(second.render(**NO_DEPTHS).decode())
    assert value(untouched, "botkit_mo_received_total", outcome="stored") == 0
    registry = prometheus_client.CollectorRegistry()
    prometheus_client.Counter("bot_replies_total", "A bot's own", registry=registry).inc()
    assert b"bot_replies_created" in prometheus_client.generate_latest(registry)
    assert b"botkit_" not in prometheus_client.generate_latest()  # the process's registry


def test_a_label_value_outside_the_bounded_ones_adds_no_series():
    metrics = Metrics()
    with pytest.raises(KeyError):
        metrics.mt_attempts["made up"].inc()
    samples = parse(metrics.render(**NO_DEPTHS).decode())
    outcomes = by_label(samples, "botkit_mt_attempts_total", "outcome")
    assert set(outcomes) == {"accepted", "failed", "uncertain", "retried"}


@pytest.mark.parametrize("gauges", [{"inbox_depth": 1}, {**NO_DEPTHS, "other_depth": 3}])
def test_render_takes_every_scrape_time_gauge_and_no_other(gauges):
    with pytest.raises(TypeError, match=r"takes the gauges \['inbox_depth', 'outbox_depth', "):
        Metrics().render(**gauges)
