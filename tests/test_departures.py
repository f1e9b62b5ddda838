"""Departure logs (botkit/departures.py): each sending process appends an MT's id as its
request leaves, and a start after a crash queues again the MTs left `sending` whose
requests, the log shows, never left, and keeps the others uncertain. A log of another
boot of the machine, or none, tells nothing."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from conftest import ROOT, rows
from servers import (
    BOTKIT,
    free_port,
    gateway_env,
    output,
    poll,
    poll_down,
    start,
    start_simulator,
    wait_for,
)
from test_recovery import mo, open_store

from botkit import departures
from botkit.addresses import OurNumbers
from botkit.departures import (
    DepartureLog,
    Unlogged,
    directory_for,
    read_departures,
    remove_dead_logs,
)
from botkit.messages import Thread
from botkit.store import Effects, Store
from botkit.templates import SMSTemplates

OWNER = "host:123:abcd"
PASSWORD = "departures-Pa55"


def killed(log: DepartureLog) -> None:
    """As a SIGKILL leaves a log: its file as it was, its lock gone with the process."""
    assert log._fd is not None
    os.close(log._fd)
    log._fd = None


async def queue_replies(store: Store, count: int) -> list[int]:
    """One MT queued to each of `count` handsets, as the dispatcher leaves them."""
    templates = SMSTemplates(ROOT / "templates")
    mt_ids = []
    for n in range(1, count + 1):
        phone = f"+6140000000{n}"
        await store.inbox.add(mo(n, "hello", phone))
        (message,) = await store.inbox.claim(1, lease=60)
        thread = Thread(bot="hello", handset=phone, address="4433")
        reply = templates.reply(f"reply {n}", {})
        numbers = OurNumbers(["4433"], message_class="mt_message")
        mt_ids += await store.inbox.finish(message, Effects(thread, [reply], numbers=numbers))
    return mt_ids


def test_a_log_lists_the_mts_that_left_in_this_boot(tmp_path):
    log = DepartureLog.open(tmp_path, OWNER)
    assert log is not None
    log.left(7)
    log.left(7)  # the request's next write: once is enough
    log.left(9)
    log.settled(7)
    killed(log)
    assert read_departures(tmp_path) == {OWNER: {7, 9}}
    assert log.path.read_text().splitlines()[1:] == ["7", "9"]


def test_a_log_of_another_boot_or_cut_short_tells_nothing(tmp_path, monkeypatch):
    log = DepartureLog.open(tmp_path, OWNER)
    assert log is not None
    log.left(7)
    killed(log)
    (tmp_path / "cut.log").write_text("")  # killed before its first line
    boot = tmp_path / "boot_id"
    boot.write_text("another-boot\n")
    monkeypatch.setattr(departures, "BOOT_ID", boot)
    assert read_departures(tmp_path) == {}
    monkeypatch.setattr(departures, "BOOT_ID", tmp_path / "none")  # not Linux
    assert DepartureLog.open(tmp_path, "other:1:x") is None
    assert read_departures(tmp_path) == {}


def test_a_stopped_sender_removes_its_log_unless_an_mt_it_sent_is_unrecorded(tmp_path):
    settled = DepartureLog.open(tmp_path, OWNER)
    unrecorded = DepartureLog.open(tmp_path, "host:124:beef")
    assert settled is not None and unrecorded is not None
    settled.left(1)
    unrecorded.left(2)
    settled.settled(1)
    settled.close()
    unrecorded.close()
    assert read_departures(tmp_path) == {"host:124:beef": {2}}
    remove_dead_logs(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_the_log_of_a_process_still_running_is_neither_read_nor_removed(tmp_path):
    """A second `botkit run` on the same file must not take the first one's MTs for
    never sent: a live process holds a lock on its log."""
    alive = DepartureLog.open(tmp_path, OWNER)
    assert alive is not None
    alive.left(5)
    (tmp_path / "gone.log").write_bytes(b"junk \xff\n\xc2\xb2\n")  # unreadable: ignored
    assert read_departures(tmp_path) == {}
    remove_dead_logs(tmp_path)
    assert list(tmp_path.iterdir()) == [alive.path]
    alive.close()


def test_a_long_log_is_compacted_to_the_mts_in_flight(tmp_path, monkeypatch):
    monkeypatch.setattr(departures, "COMPACT_AT", 200)
    log = DepartureLog.open(tmp_path, OWNER)
    assert log is not None
    for message_id in range(1, 101):
        log.left(message_id)
        if message_id % 10:  # every tenth stays in flight
            log.settled(message_id)
    log.left(101)
    killed(log)
    # Every MT in flight is listed still; most of the settled ones no longer are.
    listed = read_departures(tmp_path)[OWNER]
    assert {*range(10, 101, 10), 101} <= listed
    assert len(listed) < 40
    assert list(tmp_path.iterdir()) == [log.path]


def test_a_log_that_cannot_be_written_is_no_log(tmp_path, caplog):
    (tmp_path / "taken").write_text("a file where the directory should be")
    assert DepartureLog.open(tmp_path / "taken", OWNER) is None
    assert "MTs a crash interrupts stay uncertain" in caplog.text


def test_a_log_whose_write_fails_is_emptied(tmp_path, caplog):
    log = DepartureLog.open(tmp_path, OWNER)
    assert log is not None
    log.left(1)
    full = os.open("/dev/full", os.O_WRONLY)  # every write: no space left on device
    try:
        saved = os.dup(log._fd)
        os.dup2(full, log._fd)
        # The write fails, and the log cannot be emptied through a device: it is removed.
        log.left(2)
    finally:
        os.close(full)
        os.close(saved)
    assert not log.active
    log.left(3)  # abandoned: no more lines, no error
    assert read_departures(tmp_path) == {}
    assert "departure log abandoned" in caplog.text


def test_when_a_log_can_be_neither_written_nor_emptied_no_request_leaves(tmp_path, caplog):
    log = DepartureLog.open(tmp_path, OWNER)
    assert log is not None
    full = os.open("/dev/full", os.O_WRONLY)
    try:
        os.dup2(full, log._fd)
        log.path = tmp_path / "elsewhere" / "gone.log"  # cannot be removed either
        with pytest.raises(Unlogged, match="No space"):
            log.left(2)
    finally:
        os.close(full)
    with pytest.raises(Unlogged):
        log.left(3)
    assert "no MT is sent until botkit is restarted" in caplog.text


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
async def test_a_start_after_a_crash_queues_again_the_mts_that_never_left(settings):
    store = await open_store(settings.db)
    mt_ids = await queue_replies(store, 4)
    claimed = await store.outbox.claim(3, lease=60, default="4433")
    assert [mt.id for mt in claimed] == mt_ids[:3]
    owner = store.owner
    await store.db.close()  # killed: three `sending`, the first one's request had left

    store = await open_store(settings.db)
    _, requeued, uncertain = await store.recover(
        resend_uncertain=False, departed={owner: {mt_ids[0]}}
    )
    assert (requeued, uncertain) == (2, 1)
    statuses = rows(settings.db, "SELECT id, status FROM messages WHERE direction = 'mt'")
    assert dict(statuses) == dict(
        zip(mt_ids, ["uncertain", "queued", "queued", "queued"], strict=True)
    )
    # Queued again as they were: not counted as an attempt, claimable in order.
    outbox = rows(settings.db, "SELECT message_id, state, attempts, claimed_by FROM outbox")
    assert [tuple(r) for r in outbox] == [(i, "queued", 0, None) for i in mt_ids[1:]]
    again = await store.outbox.claim(3, lease=60, default="4433")
    assert [mt.id for mt in again] == mt_ids[1:]
    await store.db.close()


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
async def test_without_its_log_a_crashed_senders_mts_stay_uncertain(settings):
    store = await open_store(settings.db)
    mt_ids = await queue_replies(store, 2)
    await store.outbox.claim(2, lease=60, default="4433")
    await store.db.close()

    store = await open_store(settings.db)
    _, requeued, uncertain = await store.recover(
        resend_uncertain=False, departed={"someone:else:1": set()}
    )
    assert (requeued, uncertain) == (0, 2)
    statuses = rows(settings.db, "SELECT id, status FROM messages WHERE direction = 'mt'")
    assert dict(statuses) == {mt_ids[0]: "uncertain", mt_ids[1]: "uncertain"}
    await store.db.close()


def test_the_log_lives_beside_the_database_file():
    assert departures.directory_for("/srv/botkit/botkit.db") == Path(
        "/srv/botkit/botkit.db-departures"
    )


def test_mts_whose_requests_never_left_go_out_after_a_kill(tmp_path, processes):
    """`botkit run` sends a broadcast to a gateway that takes one connection and no more
    (a listening socket nobody accepts from): one request leaves, the others wait to
    connect, all of them `sending`. Killed then (SIGKILL) and started again with the
    real gateway, the one that left is kept uncertain, and the others are sent, once."""
    everyone = [f"+614{n:08d}" for n in range(1, 31)]
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "sale.txt").write_text("Sale on now. Reply STOP to opt out.\n")
    (tmp_path / "bots").mkdir()
    (tmp_path / "people.csv").write_text("number\n" + "\n".join(everyone) + "\n")
    db = str(tmp_path / "botkit.db")
    app_port = free_port()
    sim_port = start_simulator(processes, app_port, PASSWORD)
    env = {**gateway_env(sim_port, PASSWORD), "BOTKIT_DB": db, "BOTKIT_SEND_RATE": "1000"}
    queued = subprocess.run(
        [BOTKIT, "broadcast", "--csv", "people.csv", "--template", "sale.txt"],
        cwd=tmp_path, env={**os.environ, **env}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert queued.returncode == 0, queued.stderr

    with socket.socket() as hole:
        hole.bind(("127.0.0.1", 0))
        hole.listen(0)  # the kernel completes one connection for it, and drops the rest
        stuck = {**env, **gateway_env(hole.getsockname()[1], PASSWORD)}
        stuck["BOTKIT_DB"] = db
        first = start(processes, ["run", "--port", str(app_port)], env=stuck, cwd=tmp_path)
        # Enough claimed, and one request gone (a connection timing out meanwhile, on a
        # busy machine, is queued again to be retried, and claimed again).
        sending = "SELECT count(*) FROM outbox WHERE state = 'sending'"
        poll(lambda: (rows(db, sending)[0][0] >= 4 and departed(db)) or None, timeout=60)
        first.send_signal(signal.SIGKILL)
        first.wait()
        hole.setblocking(False)
        reached = received_by(hole)
    claimed = rows(
        db,
        """SELECT m.handset FROM outbox o JOIN messages m ON m.id = o.message_id
           WHERE o.state = 'sending'""",
    )
    assert len(reached) == 1, reached  # one connection, one request on it
    assert set(reached) <= {r[0] for r in claimed}

    second = start(processes, ["run", "--port", str(app_port)], env=env, cwd=tmp_path)
    wait_for(f"http://127.0.0.1:{app_port}/healthz", second, timeout=60)
    poll_down(lambda: rows(db, "SELECT count(*) FROM outbox")[0][0])
    answer = httpx.get(f"http://127.0.0.1:{sim_port}/api/messages", timeout=30).json()
    destinations = [m["destination"] for m in answer["messages"]]
    uncertain = rows(db, "SELECT handset FROM messages WHERE status = 'uncertain'")
    assert [r[0] for r in uncertain] == reached
    assert sorted(destinations) == sorted(set(everyone) - set(reached))
    recovered = f"{len(claimed) - 1} never left (queued again) and 1 may have reached the"
    assert recovered in output(second)
    metrics = httpx.get(f"http://127.0.0.1:{app_port}/metrics", timeout=30).text
    assert 'botkit_mt_attempts_total{outcome="uncertain"} 1.0' in metrics
    # The killed process's log went with its recovery: the one left is the running one's.
    assert len(list(directory_for(db).glob("*.log"))) == 1


def departed(db: str) -> set[str]:
    """The MT ids in the departure logs beside `db`, as written so far."""
    logs = directory_for(db).glob("*.log")
    return {line for path in logs for line in path.read_text().splitlines()[1:]}


def received_by(hole: socket.socket) -> list[str]:
    """The destinations of the requests waiting in `hole`'s accepted connections."""
    destinations = []
    while True:
        try:
            conn, _ = hole.accept()
        except BlockingIOError:
            return destinations
        with conn:
            conn.settimeout(10)
            head = conn.recv(65536).decode()
        query = parse_qs(urlsplit(head.split(" ")[1]).query)
        destinations += query["destination"]


def test_a_second_botkit_run_on_the_same_sqlite_file_is_refused(tmp_path, processes):
    """A start settles every claim it finds as a dead process's: a second process on
    the file would take the first one's MTs for interrupted (and resend them, with
    BOTKIT_RESEND_UNCERTAIN). It says so and exits instead."""
    (tmp_path / "bots").mkdir()
    (tmp_path / "templates").mkdir()
    db = str(tmp_path / "botkit.db")
    env = {"BOTKIT_DB": db}
    port = free_port()
    first = start(processes, ["run", "--port", str(port)], env=env, cwd=tmp_path)
    wait_for(f"http://127.0.0.1:{port}/healthz", first, timeout=60)
    second = subprocess.run(
        [BOTKIT, "run", "--port", str(free_port())],
        cwd=tmp_path, env={**os.environ, **env}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert second.returncode != 0
    assert f"another `botkit run` is serving {db}" in second.stderr
    assert "Traceback" not in second.stderr
    first.send_signal(signal.SIGINT)
    assert first.wait(30) == 0
    # Once the first has stopped, the file is free again.
    third = start(processes, ["run", "--port", str(port)], env=env, cwd=tmp_path)
    wait_for(f"http://127.0.0.1:{port}/healthz", third, timeout=60)
