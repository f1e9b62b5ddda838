"""Three `botkit run` processes on one PostgreSQL database behind one URL, one of them
killed (SIGKILL) in the middle of an MO burst and never restarted.

`botkit simulator` is the gateway; a round-robin balancer (servers.Relay) spreads its
MO and DLR callbacks over the three processes, and the simulator retries, with the same
id, every callback not answered 200, as the real gateway does. Afterwards: every MO
answered 200 is stored and handled exactly once, each handset's MOs were handled in
the order they were stored whichever process took them, no MT reached the gateway
twice, the killed process's claims were finished by the others once their leases ran
out, and the gateway never saw MTs faster than BOTKIT_SEND_RATE, the rate of the whole
deployment. BOTKIT_SOAK=1 runs a longer burst.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import time

import asyncpg
import httpx
import pytest
from burst import Texting, assert_handled_in_order, assert_sent_once, quiet, script
from conftest import ROOT, rows
from postgres import fresh_database
from servers import Relay, free_port, gateway_env, poll, start, start_simulator, wait_for

from botkit.db import PACE_SLACK

pytestmark = pytest.mark.fault

SOAK = os.environ.get("BOTKIT_SOAK") == "1"
HANDSETS, ROUNDS = (120, 10) if SOAK else (30, 6)
PROCESSES, RATE, LEASE = 3, 40, 3
PASSWORD = "multi-process-Pa55"
TRANSIT_JITTER = 0.1  # seconds, on a machine busy with other tests


def test_three_processes_on_one_database_one_killed_mid_burst(tmp_path, processes, postgres):
    (tmp_path / "bots").mkdir()
    shutil.copy(ROOT / "bots" / "hello.py", tmp_path / "bots")
    database = asyncio.run(fresh_database(postgres))
    ports = [free_port() for _ in range(PROCESSES)]
    with Relay(*ports) as balancer:
        sim_port = start_simulator(processes, balancer.port, PASSWORD)
        sim_url = f"http://127.0.0.1:{sim_port}"
        env = {
            **gateway_env(sim_port, PASSWORD),
            "BOTKIT_SEND_RATE": str(RATE),
            "BOTKIT_LEASE": str(LEASE),
        }
        apps = [
            start(processes, ["run", "--port", str(port), "--db", database,
                              "--bots", str(tmp_path / "bots"),
                              "--templates", str(ROOT / "templates")], env=env)
            for port in ports
        ]  # fmt: skip
        for app, port in zip(apps, ports, strict=True):
            wait_for(f"http://127.0.0.1:{port}/healthz", app)

        texts = [(h, script(h, ROUNDS)[n]) for n in range(ROUNDS) for h in range(HANDSETS)]
        burst = Texting(sim_url, texts, seconds=3.0)
        burst.start()
        time.sleep(1.0)
        held = asyncio.run(kill_holding_claims(database, apps[1]))  # mid-burst
        apps[1].wait()
        burst.join()

        http = httpx.Client(base_url=sim_url, timeout=30)
        poll(lambda: quiet(http, database), timeout=120 if SOAK else 60)
        sim_mos = http.get("/api/mos").json()["mos"]
        sent = http.get("/api/messages").json()["messages"]
        http.close()
        spread = dict(balancer.connections)

    # The balancer spread the callbacks over every process.
    assert all(spread[port] > 0 for port in ports), spread

    # The gateway kept retrying until answered 200; each MO stored and handled once.
    assert len(sim_mos) == len(texts)
    assert all(mo["answers"][-1] == 200 for mo in sim_mos), "an MO was given up"
    retried = sum(len(mo["answers"]) > 1 for mo in sim_mos)
    stored = rows(database, "SELECT * FROM messages WHERE direction = 'mo' ORDER BY id")
    assert sorted(str(m["gateway_id"]) for m in stored) == sorted(mo["id"] for mo in sim_mos)
    assert {m["status"] for m in stored} == {"handled"}
    # Among them those the killed process held: another took them over after the lease.
    assert {m["id"] for m in stored} >= set(held)

    # Per handset, the replies are the hello bot's to its MOs in the order they were stored.
    mts = rows(database, "SELECT * FROM messages WHERE direction = 'mt' ORDER BY id")
    assert_handled_in_order(stored, mts)

    # No MT reached the gateway twice; one the killed process had claimed and perhaps
    # sent is 'uncertain' until its DLR settles it, never sent again.
    accepted = assert_sent_once(sent, mts)
    uncertain = len(mts) - len(accepted)
    assert uncertain <= 32  # the killed sender's concurrency

    # The gateway saw MTs at the deployment's rate at most, though three processes sent.
    times = sorted(m["accepted_at"] for m in sent)
    busiest = max(sum(1 for t in times if start <= t < start + 1.0) for start in times)
    overall = (len(times) - 1) / (times[-1] - times[0])
    print(
        f"{len(texts)} MOs over {PROCESSES} processes (one killed holding {len(held)}), "
        f"{retried} retried by the gateway, connections {list(spread.values())}; "
        f"{len(mts)} MTs, {len(accepted)} "
        f"accepted, {uncertain} uncertain; send rate {overall:.1f}/s overall, busiest "
        f"second {busiest} (BOTKIT_SEND_RATE={RATE})"
    )
    assert overall <= RATE * 1.05
    # In one second the slots handed out span at most 1 + PACE_SLACK seconds (a late
    # sender catches up), and a request's way to the gateway (the gateway process, the
    # simulator's loop) may take up to TRANSIT_JITTER seconds longer than another's.
    assert busiest <= RATE * (1 + PACE_SLACK + TRANSIT_JITTER)


async def kill_holding_claims(database: str, app: subprocess.Popen) -> list[int]:
    """SIGKILL `app` the moment it holds claims on MOs (its owner name holds its pid);
    return their ids. Claims last milliseconds: one connection, looking all the time."""
    conn = await asyncpg.connect(database)
    try:
        for _ in range(20_000):
            found = await conn.fetch(
                "SELECT message_id FROM inbox WHERE split_part(claimed_by, ':', 2) = $1",
                str(app.pid),
            )
            if found:
                app.send_signal(signal.SIGKILL)
                return [row[0] for row in found]
        raise AssertionError("the process never held a claim")
    finally:
        await conn.close()
