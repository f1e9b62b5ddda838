"""Log lines: one per MO, MT and DLR, with ids and timings as fields; JSON keys with
BOTKIT_LOG_FORMAT=json; never the password, the callback token or a message's content."""

from __future__ import annotations

import io
import json
import logging
import signal
import sys

import httpx
from conftest import eventually, rows
from servers import free_port, output, poll, start, wait_for

from botkit.logs import JSONFormatter, TextFormatter

PHONE = "+61400000001"
UNROUTABLE = "+61400000009"
NAME = "Zebedee Quux"  # content: in no log line


def record_with(**extra: object) -> logging.LogRecord:
    logger = logging.getLogger("botkit.test")
    return logger.makeRecord(
        "botkit.test", logging.INFO, __file__, 1, "mo %s: stored", (42,), None, extra=extra
    )


def test_json_lines_carry_the_extra_fields_as_keys():
    line = JSONFormatter().format(record_with(event="mo.stored", gateway_id=42, elapsed_ms=1.5))
    entry = json.loads(line)
    assert entry["message"] == "mo 42: stored"
    assert entry["level"] == "info" and entry["logger"] == "botkit.test"
    assert (entry["event"], entry["gateway_id"], entry["elapsed_ms"]) == ("mo.stored", 42, 1.5)


def test_text_lines_stay_one_readable_line():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.emit(record_with(event="mo.stored", gateway_id=42))
    assert stream.getvalue() == "INFO botkit.test: mo 42: stored\n"


def test_text_from_a_handset_cannot_forge_a_log_line():
    forged = "BOOM x\n01:47:00 INFO    botkit.dashboard: thread 1: closed by admin\rY"
    try:
        raise RuntimeError(f"handler blew up on: {forged}")
    except RuntimeError:
        record = logging.getLogger("botkit.test").makeRecord(
            "botkit.test", logging.ERROR, __file__, 1, "mo %s: failed", (42,), sys.exc_info()
        )
    text = TextFormatter().format(record)
    first, *rest = text.split("\n")
    assert first.endswith("ERROR   botkit.test: mo 42: failed")
    assert rest and all(line.startswith("  | ") for line in rest)
    assert "\r" not in text and "closed by admin\\rY" in text


def events(caplog) -> dict[str, list[logging.LogRecord]]:
    found: dict[str, list[logging.LogRecord]] = {}
    for record in caplog.records:
        if event := getattr(record, "event", None):
            found.setdefault(event, []).append(record)
    return found


async def test_each_mo_mt_and_dlr_logs_its_ids_and_timings(app, client, settings, caplog):
    caplog.set_level(logging.INFO, logger="botkit")
    sim = app.state.simulator
    sim.set_unroutable(UNROUTABLE)
    mo = await sim.send_mo(PHONE, "hello")
    await sim.send_mo(UNROUTABLE, "hello")
    await eventually(lambda: len(events(caplog).get("dlr.stored", [])) == 3)
    await eventually(lambda: {"mt.accepted", "mt.failed"} <= set(events(caplog)))
    params = {"id": str(mo.id), "source": PHONE, "destination": mo.destination, "content": NAME}
    await client.get("/callbacks/test-token/mo", params=params)
    await client.get("/callbacks/test-token/mo", params={**params, "source": "0400"})
    where = "handset = ? AND direction = ?"
    (mo_row,) = rows(settings.db, f"SELECT * FROM messages WHERE {where}", (PHONE, "mo"))
    (mt_row,) = rows(settings.db, f"SELECT * FROM messages WHERE {where}", (PHONE, "mt"))

    found = events(caplog)
    stored, _ = found["mo.stored"]
    assert (stored.gateway_id, stored.message_id, stored.handset) == (mo.id, mo_row["id"], PHONE)
    handled = next(r for r in found["mo.handled"] if r.handset == PHONE)
    assert (handled.message_id, handled.thread_id) == (mo_row["id"], mo_row["thread_id"])
    assert handled.replies == [mt_row["id"]]
    (accepted,) = found["mt.accepted"]
    assert (accepted.message_id, accepted.gateway_id) == (mt_row["id"], mt_row["gateway_id"])
    assert (accepted.thread_id, accepted.handset) == (mt_row["thread_id"], PHONE)
    receipts = found["dlr.stored"]
    assert [r.status for r in receipts] == ["submitted", "sent", "received"]
    assert {(r.message_id, r.thread_id, r.handset) for r in receipts} == {
        (mt_row["id"], mt_row["thread_id"], PHONE)
    }
    (duplicate,) = found["mo.duplicate"]
    assert duplicate.gateway_id == mo.id
    (refused,) = found["mo.refused"]
    assert (refused.parameter, refused.gateway_id, refused.http_status) == ("source", mo.id, 400)
    (failed,) = found["mt.failed"]
    assert (failed.handset, failed.error, failed.attempt) == (
        UNROUTABLE,
        "QueueError (HTTP 400)",
        1,
    )
    timed = [failed, stored, handled, accepted, *receipts, duplicate, *found["gateway.send"]]
    assert all(isinstance(r.elapsed_ms, float) and r.elapsed_ms >= 0 for r in timed)
    for record in caplog.records:
        assert NAME not in record.getMessage()
        assert "What's your name" not in json.dumps(record.__dict__, default=str)


def test_json_logs_of_a_real_send_hold_no_password_token_or_content(tmp_path, processes):
    app_port, sim_port = free_port(), free_port()
    token, password = "json-log-token-4f9a", "json-log-Pa55-w0rd"
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
    app = start(
        processes,
        ["run", "--port", str(app_port), "--db", str(tmp_path / "botkit.db")],
        env={
            "BOTKIT_GATEWAY_URL": f"{sim_url}/message",
            "BOTKIT_APPLICATION": "botkit",
            "BOTKIT_PASSWORD": password,
            "BOTKIT_CALLBACK_TOKEN": token,
            "BOTKIT_NUMBERS": "4433",
            "BOTKIT_LOG_FORMAT": "json",
        },
    )
    wait_for(f"{sim_url}/", simulator)
    wait_for(f"{app_url}/healthz", app)
    for text in ("HELLO", NAME):
        httpx.post(f"{sim_url}/api/handsets/{PHONE}/send", json={"text": text})
    poll(
        lambda: [
            m
            for m in httpx.get(f"{sim_url}/api/handsets/{PHONE}").json()["messages"]
            if m["direction"] == "mt" and m["status"] == "received"
        ][1:]
    )
    app.send_signal(signal.SIGINT)
    app.wait(10)
    printed = output(app)

    # The start-up lines are for a person; every log line is JSON.
    entries = [json.loads(line) for line in printed.splitlines() if line.startswith("{")]
    assert len(entries) > 5
    assert password not in printed and token not in printed and NAME not in printed
    by_event = {entry.get("event") for entry in entries}
    assert {"mo.stored", "mo.handled", "mt.accepted", "dlr.stored"} <= by_event
    accepted = [entry for entry in entries if entry.get("event") == "mt.accepted"]
    assert [entry["handset"] for entry in accepted] == [PHONE, PHONE]
    assert all(isinstance(entry["gateway_id"], int) for entry in accepted)
