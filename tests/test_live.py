"""Live transcript updates over a real uvicorn server: a new MO, the bot's reply and its
delivery statuses arrive as server-sent events (what the thread held before is not sent
again), and an open stream does not hold up shutting the server down."""

from __future__ import annotations

import signal
import subprocess

import httpx
import pytest
from conftest import rows
from servers import free_port, output, poll, start, wait_for
from sse import events

pytestmark = pytest.mark.backends

PHONE = "+61400000123"
LONG_AGO = "2000-01-01T00:00:00.000000Z"


def text_mo(base: str, text: str) -> None:
    sent = httpx.post(f"{base}/simulator/api/handsets/{PHONE}/send", json={"text": text})
    assert sent.status_code == 202


def test_a_transcript_streams_new_messages_and_statuses(processes, database):
    port, db = free_port(), database
    app = start(processes, ["run", "--port", str(port), "--db", db])
    base = f"http://127.0.0.1:{port}"
    wait_for(f"{base}/healthz", app)
    assert f"dashboard:        {base}/dashboard/ (only from this machine" in output(app)
    text_mo(base, "hello")
    thread_id = poll(lambda: rows(db, "SELECT id FROM threads WHERE handset = ?", (PHONE,)))[0][0]

    seen: dict[int, str] = {}
    statuses: list[str] = []
    with httpx.stream(
        "GET", f"{base}/dashboard/threads/{thread_id}/events", timeout=httpx.Timeout(20.0)
    ) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        text_mo(base, "Ada <b>Lovelace</b>")  # arrives while the page listens
        for kind, update in events(stream):
            if kind == "message":
                seen[update["id"]] = update["html"]
            replies = [html for html in seen.values() if "Nice to meet you, Ada" in html]
            if replies:
                statuses.append(replies[0])
                if 'badge received"' in replies[0]:
                    break
    assert any("Ada &lt;b&gt;Lovelace&lt;/b&gt;" in html for html in seen.values())
    assert not any("<b>Lovelace" in html for html in seen.values())
    assert not any(">hello<" in html for html in seen.values())  # shown before it listened
    assert 'badge received"' in statuses[-1]
    assert httpx.get(f"{base}/dashboard/threads/999999/events").status_code == 404


def test_an_open_stream_does_not_hold_up_shutdown(tmp_path, processes):
    port = free_port()
    app = start(processes, ["run", "--port", str(port), "--db", str(tmp_path / "b.db")])
    base = f"http://127.0.0.1:{port}"
    wait_for(f"{base}/healthz", app)
    text_mo(base, "hello")
    db = tmp_path / "b.db"
    thread_id = poll(lambda: rows(db, "SELECT id FROM threads WHERE handset = ?", (PHONE,)))[0][0]
    url = f"{base}/dashboard/threads/{thread_id}/events"
    with httpx.stream("GET", url, params={"since": LONG_AGO}, timeout=20.0) as s:
        next(events(s))  # the thread's past: the stream is under way
        app.send_signal(signal.SIGINT)
        try:
            code = app.wait(10)
        except subprocess.TimeoutExpired:
            code = None
    assert code == 0, "the server did not stop while a live transcript was open"
