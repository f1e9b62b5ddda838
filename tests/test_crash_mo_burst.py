"""Many handsets texting the hello bot while the app is killed (SIGKILL) at random
moments and restarted on the same database: judged against the simulator's record.

`botkit simulator` runs as its own process and, like the real gateway, retries every MO
callback not answered 200, with the same id, across the app's downtime. Afterwards:
every MO the app answered 200 is stored and handled exactly once, each handset's MOs
were handled in the order they were stored, no MT reached the gateway twice, and every
MT was accepted, or left 'uncertain' only when the kill came between its claim and its
request leaving (the documented SIGKILL window; counted and printed).

BOTKIT_SOAK=1 runs many more kills and MOs; BOTKIT_SEED=N repeats a run's kill moments.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import time

import httpx
import pytest
from burst import Texting, assert_handled_in_order, assert_sent_once, quiet, script
from conftest import ROOT, rows
from servers import free_port, gateway_env, poll, start, start_simulator, wait_for

pytestmark = pytest.mark.fault

SOAK = os.environ.get("BOTKIT_SOAK") == "1"
HANDSETS, ROUNDS, KILLS = (150, 12, 12) if SOAK else (40, 5, 3)
PASSWORD = "crash-burst-Pa55"


def test_mo_burst_with_the_app_killed_at_random_moments(tmp_path, processes) -> None:
    seed = int(os.environ.get("BOTKIT_SEED", random.randrange(2**32)))
    rng = random.Random(seed)
    print(f"BOTKIT_SEED={seed}: {HANDSETS} handsets x {ROUNDS} MOs, {KILLS} kills")
    (tmp_path / "bots").mkdir()
    shutil.copy(ROOT / "bots" / "hello.py", tmp_path / "bots")
    db = str(tmp_path / "botkit.db")
    app_port = free_port()
    sim_port = start_simulator(processes, app_port, PASSWORD)
    app_url, sim_url = f"http://127.0.0.1:{app_port}", f"http://127.0.0.1:{sim_port}"
    env = {
        **gateway_env(sim_port, PASSWORD),
        "BOTKIT_SEND_RATE": "1000",
    }
    run = ["run", "--port", str(app_port), "--db", db, "--bots", str(tmp_path / "bots"),
           "--templates", str(ROOT / "templates")]  # fmt: skip

    def serve() -> subprocess.Popen:
        app = start(processes, run, env=env)
        wait_for(f"{app_url}/healthz", app)
        return app

    # Every handset's texts, round by round, paced to last about as long as the kills.
    texts = [(h, script(h, ROUNDS)[n]) for n in range(ROUNDS) for h in range(HANDSETS)]
    http = httpx.Client(base_url=sim_url, timeout=30)
    app = serve()
    texting = Texting(sim_url, texts, seconds=KILLS * 1.5)
    texting.start()
    for _ in range(KILLS):
        time.sleep(rng.uniform(0.1, 1.0))  # a random moment of the burst
        app.send_signal(signal.SIGKILL)
        app.wait()
        time.sleep(rng.uniform(0.0, 0.5))
        app = serve()
    texting.join()

    poll(lambda: quiet(http, db), timeout=300 if SOAK else 60)
    sim_mos = http.get("/api/mos").json()["mos"]
    sent = http.get("/api/messages").json()["messages"]
    http.close()

    # The gateway kept retrying across the downtime, with the same id, until answered 200.
    assert len(sim_mos) == len(texts)
    assert all(mo["answers"][-1] == 200 for mo in sim_mos), "an MO was given up"
    by_id = {mo["id"]: mo for mo in sim_mos}
    during_downtime = sum(mo["answers"][0] is None for mo in sim_mos)
    assert during_downtime > 0, "no MO came while the app was down"
    retried = sum(len(mo["answers"]) > 1 for mo in sim_mos)

    # Every MO answered 200 stored once and handled once, in storage order per handset.
    stored = rows(db, "SELECT * FROM messages WHERE direction = 'mo' ORDER BY id")
    assert sorted(str(m["gateway_id"]) for m in stored) == sorted(by_id)
    assert {m["status"] for m in stored} == {"handled"}
    mts = rows(db, "SELECT * FROM messages WHERE direction = 'mt' ORDER BY id")
    assert_handled_in_order(stored, mts)

    # No MT reached the gateway twice; each it took is accepted under the id it got.
    accepted = assert_sent_once(sent, mts)
    uncertain = len(mts) - len(accepted)
    in_flight = 16  # the sender's concurrency: at most this many claimed at a kill
    settled_by_dlr = sum(1 for mt in mts if mt["uncertain"] and mt["status"] == "accepted")
    print(
        f"{len(texts)} MOs ({retried} retried by the gateway, {during_downtime} first sent "
        f"while the app was down), {len(mts)} MTs: {len(accepted)} accepted "
        f"({settled_by_dlr} of them settled by their DLR), {uncertain} left uncertain"
    )
    assert uncertain <= KILLS * in_flight
