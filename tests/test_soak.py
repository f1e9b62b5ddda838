"""A mixed soak (issue 16): the hello and survey bots on PostgreSQL under a steady load,
the app killed (SIGKILL) now and then and the database stopped once.

`botkit run` serves a PostgreSQL cluster of the test's own; `botkit simulator` is the
gateway, as its own process: it retries every MO callback not answered 200, sends the
DLRs of the MTs it accepts, and records both. Meanwhile handsets text at a steady rate
(some STOP, text on while opted out, and START again), a broadcast starts a survey for
a list that holds opted-out handsets, respondents answer the questions that reach
them, dashboard readers hold live updates open and an operator replies from the
dashboard. Once everything has settled:

- nothing lost: every MO the gateway had answered 200 is stored once and handled once
  (each handset's replies are the bot's to its MOs in the order stored), every DLR too;
- nothing sent twice: the gateway never got one MT (its reference) twice;
- consent held: between a handset's opt-out and its opt-in the gateway took no MT to
  it but the opt-out's confirmation, and before it the one that may have been on its
  way as the opt-out committed (the outbox checks consent as it claims an MT, one a
  handset at a time); what a bot or the operator said to it meanwhile was refused;
- memory flat (asserted with BOTKIT_SOAK=1, printed always): in each life of the app
  long enough to tell, its memory late in the life is not far above what it was early
  on, nor in its last life above its first.

Short by default (part of `make test`); BOTKIT_SOAK=1 runs it for 30 minutes
(BOTKIT_SOAK_MINUTES=N for another length), killing the app every few minutes.
BOTKIT_SEED=N repeats a run's kill moments. The counts are printed at the end.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import shutil
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from burst import Texting, assert_handled_in_order, assert_sent_once, script
from conftest import ROOT, rows
from postgres import Cluster, fresh_database
from servers import (
    BOTKIT,
    free_port,
    gateway_env,
    poll,
    poll_down,
    start,
    start_simulator,
    wait_for,
)
from soak import Life, Memory, Operator, Reader, Respondents, number

from botkit.clock import parse_stamp
from botkit.simulator import DEFAULT_FATE

pytestmark = pytest.mark.fault

SOAK = os.environ.get("BOTKIT_SOAK") == "1"
MINUTES = float(os.environ.get("BOTKIT_SOAK_MINUTES", "30"))
LOAD_SECONDS = MINUTES * 60 if SOAK else 75.0
RATE = 6.0  # MOs a second, of every texting handset together
# Handsets texting the hello bot, some of them STOP and START (numbered from 0 and 1000),
# opted out before the broadcast, in its list all the same (2000), answering its survey
# (3000).
PLAIN, CONSENT, OPTED_OUT, SURVEYED = (60, 30, 15, 100) if SOAK else (24, 12, 5, 20)
READERS, OPERATOR_EVERY = (5, 10.0) if SOAK else (3, 4.0)
KILL_EVERY = (120.0, 240.0)  # seconds between kills in a soak
SPOOLED = 40 if SOAK else 25  # callbacks the spool takes before the database is back
LEASE = 5  # BOTKIT_LEASE: a killed process's claims wait this long
SENDERS = 32  # the sender's concurrency: at most this many MTs claimed at a kill
MEMORY_EVERY, WARM_UP, GROWTH = 2.0, 20.0, 1.5  # seconds; seconds; factor
PASSWORD, OPERATOR = "soak-gateway-Pa55", ("ops", "soak-dashboard-Pa55")
SETTLED = 120.0 if SOAK else 60.0  # seconds the work left may stay put at the end


def consent_script(handset: int, rounds: int) -> list[str]:
    """What a handset that opts out now and then texts: it goes on texting while out."""
    h = handset
    words = ["HELLO", f"Ann {h}", "what?", "STOP", "HELLO", f"Bob {h}", "START", "HELLO",
             "NAME", f"Cy {h}"]  # fmt: skip
    return [words[n % len(words)] for n in range(rounds)]


def survey_answers(handset: int) -> list[str]:
    """A respondent's answers to the survey bot's questions: a rating, a reason (what it
    liked, or what went wrong), whether it would recommend us."""
    rating = [5, 4, 2, 1, 3][handset % 5]
    reason = f"the staff {handset}" if rating > 2 else f"too slow {handset}"
    return [str(rating), reason, "YES" if rating > 2 else "NO"]


def schedule(rng: random.Random) -> list[tuple[float, str]]:
    """When (seconds into the load) to broadcast, stop the database and kill the app: in
    a soak every few minutes, in the short form (or a short soak) twice; never a minute
    either side of the outage (a start needs the database)."""
    outage = LOAD_SECONDS * 0.55
    kills, at = [], rng.uniform(*KILL_EVERY)
    while SOAK and at < LOAD_SECONDS - 30:
        kills.append(at)
        at += rng.uniform(*KILL_EVERY)
    kills = [t for t in kills if abs(t - outage) > 60]
    if len(kills) < 2:
        kills = [LOAD_SECONDS * rng.uniform(0.25, 0.35), LOAD_SECONDS * rng.uniform(0.75, 0.85)]
    events = [(LOAD_SECONDS * 0.12, "broadcast"), (outage, "outage")]
    return sorted(events + [(t, "kill") for t in kills])


class Deployment:
    """The app under soak (`botkit run`, on a PostgreSQL database of its own), its
    gateway (`botkit simulator`), and the faults done to them."""

    def __init__(self, cluster: Cluster, folder: Path, processes, memory: Memory) -> None:
        self.cluster, self.folder, self.processes, self.memory = cluster, folder, processes, memory
        (folder / "bots").mkdir()
        for bot in ("hello.py", "survey.py"):
            shutil.copy(ROOT / "bots" / bot, folder / "bots")
        self.db = asyncio.run(fresh_database(cluster))
        self.port = free_port()
        sim_port = start_simulator(processes, self.port, PASSWORD)
        self.url, self.sim_url = f"http://127.0.0.1:{self.port}", f"http://127.0.0.1:{sim_port}"
        self.env = {
            **gateway_env(sim_port, PASSWORD),
            "BOTKIT_DB": self.db,
            "BOTKIT_BOTS": str(folder / "bots"),
            "BOTKIT_TEMPLATES": str(ROOT / "templates"),
            "BOTKIT_SPOOL": str(folder / "spool"),
            "BOTKIT_SEND_RATE": "50",
            "BOTKIT_LEASE": str(LEASE),
            "BOTKIT_DASHBOARD_USER": OPERATOR[0],
            "BOTKIT_DASHBOARD_PASSWORD": OPERATOR[1],
        }
        self.api = httpx.Client(base_url=self.url, auth=OPERATOR, timeout=30)
        self.restarts: list[float] = []  # seconds from each kill to the app's answering
        self.outage = 0.0  # seconds the database was away
        self.app = self._serve()

    def _serve(self) -> subprocess.Popen:
        app = start(self.processes, ["run", "--port", str(self.port)], self.env, self.folder)
        wait_for(f"{self.url}/healthz", app, timeout=60)
        self.memory.watch(app.pid)
        return app

    def kill(self) -> None:
        """SIGKILL the app and start it again."""
        self.app.send_signal(signal.SIGKILL)
        self.app.wait()
        killed = time.monotonic()
        self.app = self._serve()
        self.restarts.append(time.monotonic() - killed)

    def stop_database(self) -> None:
        """Stop PostgreSQL until the app's spool has taken SPOOLED callbacks, then start
        it again."""
        self.cluster.stop()
        stopped = time.monotonic()
        poll(lambda: self.spool_depth() >= SPOOLED, timeout=120)
        self.cluster.start()
        self.outage = time.monotonic() - stopped

    def spool_depth(self) -> int:
        """How many callbacks wait in the app's spool, as /healthz says (0 if it is down)."""
        try:
            health = self.api.get("/healthz").text
        except httpx.TransportError:
            return 0
        found = re.search(r"spool: (\d+) callbacks", health)
        return int(found.group(1)) if found else 0

    def broadcast(self, surveyed: range, opted_out: range) -> str:
        """`botkit broadcast` of the survey to a list that holds the opted-out handsets,
        once their STOPs are in the ledger; what it said it did."""
        everyone = [number(h) for h in (*surveyed, *opted_out)]
        (self.folder / "customers.csv").write_text("number\n" + "\n".join(everyone) + "\n")
        listed = ", ".join(f"'{number(h)}'" for h in opted_out)
        out = f"SELECT count(*) FROM suppressions WHERE handset IN ({listed})"
        poll(lambda: rows(self.db, out)[0][0] == len(opted_out), timeout=60)
        done = subprocess.run(
            [BOTKIT, "broadcast", "--csv", "customers.csv", "--survey", "satisfaction"],
            cwd=self.folder,
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        expected = f"{len(surveyed)} queued, {len(opted_out)} skipped (opted out)"
        assert expected in done.stdout, done.stdout
        return expected

    def thread_of(self, handset: int) -> int:
        """The id of a handset's first conversation with the hello bot, once it has one."""

        def first() -> int | None:
            found = self.api.get(
                "/api/conversations", params={"q": number(handset), "bot": "hello"}
            )
            conversations = found.json()["conversations"] if found.status_code == 200 else []
            return min((c["id"] for c in conversations), default=None)

        return poll(first, timeout=60)

    def work_left(self, sim: httpx.Client, respondents: Respondents) -> int:
        """What is still to do: MO callbacks under way, callbacks in the spool, MOs to
        handle, MTs to send, MTs the gateway took that the app does not know by their id
        yet, DLRs not stored yet, questions a respondent has not answered yet."""
        pending = sum(mo["pending"] for mo in sim.get("/api/mos").json()["mos"])
        sent = sim.get("/api/messages").json()["messages"]
        queues, receipts = rows(
            self.db,
            """SELECT (SELECT count(*) FROM inbox) + (SELECT count(*) FROM outbox),
                      (SELECT count(*) FROM deliveries)""",
        )[0]
        mts = "SELECT gateway_id FROM messages WHERE direction = 'mt'"
        known = {r[0] for r in rows(self.db, mts)}
        unknown = sum(int(m["id"]) not in known for m in sent)
        receipts_left = len(sent) * len(DEFAULT_FATE) - receipts
        unanswered = respondents.unanswered(Counter(m["destination"] for m in sent))
        return pending + self.spool_depth() + queues + unknown + receipts_left + unanswered


@pytest.fixture
def stops() -> Iterator[tuple[threading.Event, threading.Event]]:
    """When the load is over (the operator stops) and when the soak is (everyone else
    does): both told as the test ends, whichever way it ends."""
    load_over, stop = threading.Event(), threading.Event()
    yield load_over, stop
    load_over.set()
    stop.set()


@pytest.fixture
def soak(cluster: Cluster, tmp_path: Path, processes, stops) -> Iterator[Deployment]:
    """The app serving, its memory watched."""
    memory = Memory(MEMORY_EVERY, stops[1])
    memory.start()
    deployment = Deployment(cluster, tmp_path, processes, memory)
    yield deployment
    deployment.api.close()


def test_mixed_soak(soak: Deployment, stops: tuple[threading.Event, threading.Event]) -> None:
    seed = int(os.environ.get("BOTKIT_SEED", random.randrange(2**32)))
    plan = schedule(random.Random(seed))
    moments = ", ".join(f"{event} at {at:.0f} s" for at, event in plan)
    print(f"BOTKIT_SEED={seed}: {LOAD_SECONDS:.0f} s of load at {RATE:g} MOs/s; {moments}")
    load_over, stop = stops

    # The load: the opted-out handsets' STOPs first, then every texting handset in turn.
    plain, consenting = range(PLAIN), range(1000, 1000 + CONSENT)
    opted_out, surveyed = range(2000, 2000 + OPTED_OUT), range(3000, 3000 + SURVEYED)
    rounds = int(LOAD_SECONDS * RATE) // (PLAIN + CONSENT)
    scripts = {h: script(h, rounds) for h in plain}
    scripts |= {h: consent_script(h, rounds) for h in consenting}
    texts = [(h, "STOP") for h in opted_out]
    texts += [(h, scripts[h][n]) for n in range(rounds) for h in scripts]
    texting = Texting(soak.sim_url, texts, seconds=LOAD_SECONDS)
    started = time.monotonic()
    texting.start()

    # Dashboard readers on some handsets' conversations, the operator on others'.
    watched = [*plain[: READERS - 1], consenting[0]]
    readers = [Reader(soak.url, soak.thread_of(h), OPERATOR, stop) for h in watched]
    answering = [soak.thread_of(h) for h in (consenting[0], consenting[1], plain[0])]
    operator = Operator(soak.url, answering, OPERATOR, OPERATOR_EVERY, load_over)
    respondents = Respondents(soak.sim_url, {h: survey_answers(h) for h in surveyed}, stop)
    for actor in (*readers, operator):
        actor.start()

    broadcast = ""
    for at, event in plan:
        time.sleep(max(0.0, started + at - time.monotonic()))  # the scenario's pace
        if event == "broadcast":
            broadcast = soak.broadcast(surveyed, opted_out)
            respondents.start()
        elif event == "outage":
            soak.stop_database()
        else:
            soak.kill()
    texting.join()
    load_over.set()
    load_seconds = time.monotonic() - started

    # Everything settles: every MO answered and handled, every MT sent, every DLR in,
    # every respondent's question answered, the spool empty.
    with httpx.Client(base_url=soak.sim_url, timeout=60) as sim:
        poll_down(lambda: soak.work_left(sim, respondents), stall=SETTLED, every=1.0)
        stop.set()
        for actor in (*readers, operator, respondents, soak.memory):
            actor.join(90)
        sim_mos = sim.get("/api/mos").json()["mos"]
        sent = sim.get("/api/messages").json()["messages"]
    db = soak.db
    stored = rows(db, "SELECT * FROM messages WHERE direction = 'mo' ORDER BY id")
    mts = rows(db, "SELECT * FROM messages WHERE direction = 'mt' ORDER BY id")
    receipts = rows(db, "SELECT gateway_id, status FROM deliveries")
    flagged = "SELECT count(*) FROM {} WHERE flags LIKE '%spooled%'"
    spooled = sum(rows(db, flagged.format(table))[0][0] for table in ("messages", "deliveries"))
    completed = rows(db, "SELECT count(*) FROM survey_responses WHERE status = 'completed'")
    replies = [mt for mt in mts if mt["sent_by"] == OPERATOR[0]]
    answered = [note for note in operator.notes if note.status == 303]
    lives = [Life.of(samples, WARM_UP) for samples in soak.memory.lives]
    outcomes = Counter(mt["status"] for mt in mts)
    print(
        f"\nsoak: {load_seconds:.0f} s of load, BOTKIT_SEED={seed}\n"
        f"  MOs: {len(sim_mos)} sent, {sum(mo['answers'][-1] == 200 for mo in sim_mos)} "
        f"answered 200 ({sum(len(mo['answers']) > 1 for mo in sim_mos)} of them retried), "
        f"{len(stored)} stored, {sum(m['status'] == 'handled' for m in stored)} handled\n"
        f"  MTs: {len(mts)} written, {len(sent)} accepted by the gateway, "
        f"{outcomes['refused']} refused (opted out), {outcomes['uncertain']} uncertain; "
        f"DLRs: {len(receipts)} stored\n"
        f"  faults: {len(soak.restarts)} kills (the app back in "
        f"{', '.join(f'{s:.1f}' for s in soak.restarts)} s); the database stopped for "
        f"{soak.outage:.1f} s, {spooled} callbacks through the spool\n"
        f"  broadcast: {broadcast}; survey: {completed[0][0]} of {SURVEYED} completed\n"
        f"  operator: {len(operator.notes)} replies written, {len(answered)} answered, "
        f"{sum(mt['status'] == 'refused' for mt in replies)} refused (opted out); session "
        f"lost {operator.signed_out} times\n"
        f"  live updates: {[sum(r.events) for r in readers]} events over "
        f"{[len(r.events) for r in readers]} streams ({[r.failed for r in readers]} "
        "attempts refused or streams broken)\n"
        f"  memory (the app and its gateway process), each life past its first "
        f"{WARM_UP:.0f} s:"
        + "".join(f"\n    {life}" if life else "\n    too short to tell" for life in lives)
    )

    # Nothing lost: every MO the gateway sent was answered 200 at last (it retried across
    # the downtimes), and is stored once and handled once, in order per handset.
    assert respondents.refused == []
    assert len(sim_mos) == len(texts) + sum(respondents.sent.values())
    assert all(mo["answers"][-1] == 200 for mo in sim_mos), "an MO was given up"
    assert sorted(str(m["gateway_id"]) for m in stored) == sorted(mo["id"] for mo in sim_mos)
    assert Counter(m["status"] for m in stored) == {"handled": len(stored)}
    talkers = {number(h) for h in (*plain, *consenting, *opted_out)}
    assert_handled_in_order(
        [m for m in stored if m["handset"] in talkers],
        [mt for mt in mts if mt["handset"] in talkers and mt["sent_by"] is None],
    )
    # ...and every DLR of every MT the gateway accepted.
    assert sorted((str(r["gateway_id"]), r["status"]) for r in receipts) == sorted(
        (m["id"], status) for m in sent for status in DEFAULT_FATE
    )

    # Nothing sent twice: no reference reached the gateway twice; every MT it took is
    # accepted, and the others refused or, claimed at a kill, uncertain (never resent).
    unsent = [mt for mt in mts if mt["status"] != "refused"]
    accepted = assert_sent_once(sent, unsent)
    assert len(unsent) - len(accepted) <= (len(soak.restarts) + 1) * SENDERS

    # Consent held, by the gateway's record and the ledger; MTs were refused meanwhile.
    assert_consent_held(db, sent, stored)
    assert outcomes["refused"], "no MT was refused: nothing tested consent"

    # The broadcast's survey, answered by those it reached.
    assert_surveyed(db, respondents, mts)

    # The operator's replies: each the app took is stored once; its session outlived
    # every restart. The readers' live updates came back after each break.
    texts_of = Counter(mt["content"] for mt in replies)
    assert answered, "no operator reply was answered"
    assert all(texts_of[note.text] == 1 for note in answered)
    assert set(texts_of) <= {note.text for note in operator.notes if note.posted}
    assert max(texts_of.values()) == 1, "an operator reply was stored twice"
    assert operator.signed_out == 0, "the operator's session did not outlive a restart"
    for reader in readers:
        assert len(reader.events) >= 2 and sum(reader.events[1:]) > 0, reader.events

    assert spooled >= SPOOLED, "the outage's callbacks did not go through the spool"
    if SOAK:
        assert_memory_flat([life for life in lives if life and life.samples >= 30])


def opt_out_windows(db: str) -> dict[str, list[tuple[float, float]]]:
    """Each handset's spans of time opted out of our number, from the ledger: from an
    opt-out to the opt-in after it (or forever), as seconds since the epoch."""
    windows: dict[str, list[tuple[float, float]]] = {}
    out: dict[str, float] = {}
    for change in rows(db, "SELECT * FROM consent ORDER BY id"):
        at = parse_stamp(change["created_at"]).timestamp()
        handset = change["handset"]
        if change["action"] == "opt-out":
            out.setdefault(handset, at)
        elif handset in out:
            windows.setdefault(handset, []).append((out.pop(handset), at))
    for handset, since in out.items():
        windows.setdefault(handset, []).append((since, float("inf")))
    return windows


def assert_consent_held(db: str, sent: list[dict], stored: list) -> None:
    """Between a handset's opt-out and its opt-in the gateway took no MT to it but the
    opt-out's confirmation and, first, perhaps the one MT that was claimed as the
    opt-out committed (the outbox reads consent as it claims, one MT a handset at a
    time). Each STOP and START stored is in the ledger once, and the handsets whose
    last word was STOP are the ones opted out."""
    mts = "SELECT * FROM messages WHERE direction = 'mt' AND reference IS NOT NULL"
    by_reference = {mt["reference"]: mt for mt in rows(db, mts)}
    for handset, windows in opt_out_windows(db).items():
        to_it = [m for m in sent if m["destination"] == handset]
        for since, until in windows:
            went = [
                by_reference[m["reference"]] for m in to_it if since <= m["accepted_at"] < until
            ]
            # First, perhaps, the one MT claimed as the opt-out committed (queued before).
            if went and not went[0]["exempt"] and queued_at(went[0]) < since:
                went = went[1:]
            assert all(mt["exempt"] for mt in went), (handset, [dict(mt) for mt in went])
    words = [m for m in stored if m["content"] in ("STOP", "START")]
    ledger = [r["message_id"] for r in rows(db, "SELECT message_id FROM consent")]
    assert sorted(ledger) == [m["id"] for m in words]
    last_word = {m["handset"]: m["content"] for m in words}
    out = {r[0] for r in rows(db, "SELECT handset FROM suppressions")}
    assert out == {handset for handset, word in last_word.items() if word == "STOP"}


def queued_at(mt) -> float:
    """When an MT was queued, as seconds since the epoch."""
    return parse_stamp(mt["created_at"]).timestamp()


def assert_surveyed(db: str, respondents: Respondents, mts: list) -> None:
    """Each respondent that gave every answer completed the survey, its answers stored
    as it sent them and each question asked once; one that did not is waiting for a
    question left uncertain at a kill."""
    answers = rows(
        db,
        """SELECT t.handset, a.raw FROM survey_answers a JOIN threads t ON t.id = a.thread_id""",
    )
    status = {
        r["handset"]: r["status"]
        for r in rows(
            db,
            """SELECT t.handset, r.status FROM survey_responses r
               JOIN threads t ON t.id = r.thread_id""",
        )
    }
    for handset, planned in respondents.answers.items():
        phone = number(handset)
        asked = [mt for mt in mts if mt["handset"] == phone]
        if respondents.sent[handset] == len(planned):
            assert status[phone] == "completed", phone
            assert sorted(a["raw"] for a in answers if a["handset"] == phone) == sorted(planned)
            assert len(asked) == len(planned) + 1, phone  # the questions, and the thanks
        else:
            assert any(mt["status"] == "uncertain" for mt in asked), (phone, asked)


def assert_memory_flat(lives: list[Life]) -> None:
    """No life's memory grew on much past its warm-up, and the last life's is not far
    above the first's (a leak that grows with the database)."""
    assert lives, "no life of the app was long enough to judge its memory"
    for life in lives:
        assert life.last <= life.first * GROWTH, life
    assert lives[-1].last <= lives[0].last * GROWTH, (lives[0], lives[-1])
