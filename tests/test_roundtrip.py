"""Over real HTTP: `botkit run` and `botkit simulator` as processes under uvicorn on
loopback, the phone page's API as the handset, the database file as the record."""

from __future__ import annotations

import os
import signal
import subprocess

import httpx
from conftest import rows
from servers import BOTKIT, free_port, output, poll, start, wait_for

PHONE = "+61400000001"


def test_hello_round_trip_over_real_http(tmp_path, processes):
    app_port, sim_port = free_port(), free_port()
    token, password = "round-trip-token", "real-http-Pa55"
    app_url, sim_url = f"http://127.0.0.1:{app_port}", f"http://127.0.0.1:{sim_port}"
    simulator = start(
        processes,
        [
            "simulator",
            "--port", str(sim_port),
            "--password", password,
            "--mo-url", f"{app_url}/callbacks/{token}/mo",
            "--dlr-url", f"{app_url}/callbacks/{token}/dlr",
        ],
    )  # fmt: skip
    db = tmp_path / "botkit.db"
    app = start(
        processes,
        ["run", "--port", str(app_port), "--db", str(db)],
        env={
            "BOTKIT_GATEWAY_URL": f"{sim_url}/message",
            "BOTKIT_APPLICATION": "botkit",
            "BOTKIT_PASSWORD": password,
            "BOTKIT_CALLBACK_TOKEN": token,
            "BOTKIT_NUMBERS": "4433",
        },
    )
    wait_for(f"{sim_url}/", simulator)
    wait_for(f"{app_url}/healthz", app)

    def conversation() -> list[dict]:
        return httpx.get(f"{sim_url}/api/handsets/{PHONE}").json()["messages"]

    def say(text: str) -> None:
        response = httpx.post(f"{sim_url}/api/handsets/{PHONE}/send", json={"text": text})
        assert response.status_code == 202

    say("HELLO")
    poll(lambda: [m for m in conversation() if m["direction"] == "mt"])
    say("Ada Lovelace")

    def received() -> list[dict]:
        return [m for m in conversation() if m["direction"] == "mt" and m["status"] == "received"]

    poll(lambda: len(received()) == 2)
    replies = received()
    assert replies[0]["text"] == "Hi! I'm the botkit hello bot. What's your name?"
    assert replies[1]["text"].startswith("Nice to meet you, Ada Lovelace!")

    mts = poll(
        lambda: [
            r
            for r in rows(db, "SELECT * FROM messages WHERE direction = 'mt' ORDER BY id")
            if r["delivery"] == "received"
        ]
    )
    assert [str(r["gateway_id"]) for r in mts] == [m["id"] for m in replies]
    mos = rows(db, "SELECT * FROM messages WHERE direction = 'mo' ORDER BY id")
    assert [(m["content"], m["status"]) for m in mos] == [
        ("HELLO", "handled"),
        ("Ada Lovelace", "handled"),
    ]
    for process in processes:
        process.send_signal(signal.SIGINT)
        process.wait(10)
        assert "Uvicorn running" in output(process)
        assert password not in output(process)


def test_send_command_against_the_simulator(processes):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    simulator = start(
        processes,
        ["simulator", "--port", str(port), "--password", "right-Pa55",
         "--mo-url", "http://127.0.0.1:9/mo", "--dlr-url", "http://127.0.0.1:9/dlr"],
    )  # fmt: skip
    wait_for(f"{url}/", simulator)

    def send(password: str, *extra: str) -> subprocess.CompletedProcess:
        env = {
            **os.environ,
            "BOTKIT_GATEWAY_URL": f"{url}/message",
            "BOTKIT_APPLICATION": "botkit",
            "BOTKIT_PASSWORD": password,
        }
        return subprocess.run(
            [BOTKIT, "send", *extra], env=env, capture_output=True, text=True, timeout=30
        )

    ok = send("right-Pa55", "+61400000000", "hi")
    assert ok.returncode == 0, ok.stderr
    assert int(ok.stdout.strip()) > 2**32

    wrong = send("wrong-Pa55", "+61400000000", "hi")
    assert wrong.returncode == 1
    assert "ERROR Invalid authentication information" in wrong.stderr
    assert "wrong-Pa55" not in wrong.stdout + wrong.stderr

    invalid = send("right-Pa55", "0400000000", "hi")
    assert invalid.returncode == 2
    assert "destination" in invalid.stderr and "international" in invalid.stderr

    both = send("right-Pa55", "+61400000000", "hi", "--mask", "Shop", "--source", "4433")
    assert both.returncode == 2
    assert "mask" in both.stderr
