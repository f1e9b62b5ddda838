"""bench/fakegateway.py and bench/floor.py, the parts the benchmarks measure botkit
against, at a tiny size: the fake gateway answers botkit's own gateway client as the
gateway does and keeps a record of what it accepted; the floor stores, answers and
replies to every MO once. Timings are never asserted."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import httpx
import pytest
from benches import run_bench
from conftest import ROOT
from servers import free_port, wait_for

from botkit.errors import MissingParameterError
from botkit.gateway import Gateway, check_response


async def test_the_fake_gateway_answers_as_the_gateway_and_records_what_it_took(tmp_path):
    port, record = free_port(), tmp_path / "record.json"
    command = [sys.executable, str(ROOT / "bench" / "fakegateway.py"), "--port", str(port)]
    gateway = subprocess.Popen([*command, "--record", str(record)])
    try:
        wait_for(f"http://127.0.0.1:{port}/healthz", gateway)
        url = f"http://127.0.0.1:{port}/message"
        async with Gateway(url=url, application="bench", password="secret") as client:
            ids = [
                await client.send("+61400000001", "Hi", message_class="mt_message", reference=r)
                for r in ("t1.m1", "t1.m2")
            ]
        assert len(set(ids)) == 2  # new 64-bit ids, each taken by check_response
        missing = httpx.get(url, params={"application": "bench", "password": "secret"})
        assert (missing.status_code, missing.text) == (400, "ERROR Missing content parameter")
        with pytest.raises(MissingParameterError):
            check_response(missing.status_code, missing.text)
    finally:
        gateway.send_signal(signal.SIGINT)
        gateway.wait(30)

    # The record, written as it stopped: each MT it accepted, in the shape of the
    # simulator's GET /api/messages.
    messages = json.loads(record.read_text())["messages"]
    assert [m["reference"] for m in messages] == ["t1.m1", "t1.m2"]
    assert [int(m["id"]) for m in messages] == ids
    assert {m["destination"] for m in messages} == {"+61400000001"}
    assert all(isinstance(m["accepted_at"], float) for m in messages)


def test_the_floor_replies_to_every_mo_once_at_a_tiny_size(tmp_path):
    results = tmp_path / "floor.json"
    options = ["--rates", "20", "--duration", "1", "--handsets", "7"]
    printed = run_bench("floor.py", *options, "--results", str(results))

    assert printed.startswith("floor at 20/s")
    [run] = json.loads(results.read_text())["runs"]
    assert run["sent"] == run["ok"] == run["stored"] == run["replies"] == run["gateway_took"] == 20
    assert run["lost"] == run["unanswered"] == run["gateway_duplicates"] == 0
    assert run["drained"]
