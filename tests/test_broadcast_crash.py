"""A broadcast to 1,000 numbers with 10 opted out, the app killed (SIGKILL) half way
and started again: exactly 990 messages reach the gateway, none twice."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess

import httpx
from conftest import rows
from servers import BOTKIT, free_port, poll, start, wait_for

from botkit.db import Database
from botkit.messages import ConsentChange
from botkit.migrations import migrate
from botkit.store import Store

PASSWORD = "crash-test-Pa55"


async def opt_out(db_path: str, numbers: list[str]) -> None:
    db = await Database.open(db_path)
    await migrate(db)
    for number in numbers:
        await Store(db).consent.record(ConsentChange(number, "4433", "opt-out", "import"))
    await db.close()


def test_killed_half_way_then_restarted_still_sends_exactly_990(tmp_path, processes):
    everyone = [f"+614{n:08d}" for n in range(1, 1001)]
    opted_out = everyone[::100]
    db = str(tmp_path / "botkit.db")
    asyncio.run(opt_out(db, opted_out))
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "sale.txt").write_text("Sale on now. Reply STOP to opt out.\n")
    (tmp_path / "bots").mkdir()
    (tmp_path / "people.csv").write_text("number\n" + "\n".join(everyone) + "\n")

    app_port, sim_port = free_port(), free_port()
    app_url, sim_url = f"http://127.0.0.1:{app_port}", f"http://127.0.0.1:{sim_port}"
    simulator = start(
        processes,
        ["simulator", "--port", str(sim_port), "--password", PASSWORD,
         "--mo-url", f"{app_url}/callbacks/tok/mo", "--dlr-url", f"{app_url}/callbacks/tok/dlr"],
    )  # fmt: skip
    env = {
        "BOTKIT_GATEWAY_URL": f"{sim_url}/message",
        "BOTKIT_APPLICATION": "botkit",
        "BOTKIT_PASSWORD": PASSWORD,
        "BOTKIT_CALLBACK_TOKEN": "tok",
        "BOTKIT_DB": db,
        "BOTKIT_SEND_RATE": "250",
        "BOTKIT_SOURCE": "4433",
    }
    queued = subprocess.run(
        [BOTKIT, "broadcast", "--csv", "people.csv", "--template", "sale.txt"],
        cwd=tmp_path,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert queued.returncode == 0, queued.stderr
    assert "990 queued, 10 skipped (opted out)" in queued.stdout

    def sent() -> list[str]:
        answer = httpx.get(f"{sim_url}/api/messages", timeout=30)
        return [m["destination"] for m in answer.json()["messages"]]

    wait_for(f"{sim_url}/", simulator)
    first = start(processes, ["run", "--port", str(app_port)], env=env, cwd=tmp_path)
    poll(lambda: len(sent()) >= 400, timeout=30)
    first.send_signal(signal.SIGKILL)
    first.wait()
    halfway = len(sent())

    second = start(processes, ["run", "--port", str(app_port)], env=env, cwd=tmp_path)
    wait_for(f"{app_url}/healthz", second)
    poll(lambda: rows(db, "SELECT count(*) FROM outbox")[0][0] == 0, timeout=60)

    destinations = sent()
    assert len(destinations) == len(set(destinations)), "someone got a second copy"
    assert not set(destinations) & set(opted_out)
    # An MT claimed in the instant before the kill, whose request never left, is kept as
    # uncertain rather than risk a duplicate; with no DLR to settle it, it is not sent.
    lost = [
        r[0]
        for r in rows(db, "SELECT handset FROM messages WHERE status = 'uncertain'")
        if r[0] not in destinations
    ]
    assert len(destinations) + len(lost) == 990
    assert len(lost) <= 1
    assert 400 <= halfway < 990
