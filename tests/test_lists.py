"""Subscription lists: the store part, and `botkit lists import` and `show`: every row of
a CSV checked, bad ones reported by line and left out, good ones kept and in the ledger."""

from __future__ import annotations

import asyncio
import csv
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from botkit.cli import main
from botkit.db import Database
from botkit.errors import ValidationError
from botkit.messages import ConsentChange
from botkit.migrations import migrate
from botkit.store import Store
from botkit.store.lists import ALREADY, NOT_MEMBER, OPTED_OUT, SUBSCRIBED, UNSUBSCRIBED

pytestmark = pytest.mark.backends

ADA, BEN, CAL = "+61400000001", "+61400000002", "+64211234567"


@pytest.fixture
async def store(database: str) -> AsyncIterator[Store]:
    db = await Database.open(database)
    await migrate(db)
    yield Store(db)
    await db.close()


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working folder with no BOTKIT_ settings: the database is botkit.db."""
    for name in [name for name in os.environ if name.startswith("BOTKIT_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write_csv(folder: Path, text: str, name: str = "people.csv") -> str:
    (folder / name).write_text(text)
    return name


def query(sql: str, *params: object) -> list[tuple]:
    async def read() -> list[tuple]:
        db = await Database.open("botkit.db")
        try:
            return [tuple(row) for row in await db.fetchall(sql, params)]
        finally:
            await db.close()

    return asyncio.run(read())


async def test_subscribe_and_unsubscribe_write_the_ledger(store: Store):
    lists = store.lists
    assert await lists.subscribe("deals", ADA, "4433", source="web") == SUBSCRIBED
    assert await lists.subscribe("deals", ADA, "4433", source="web") == ALREADY
    assert await lists.unsubscribe("deals", ADA, source="operator") == UNSUBSCRIBED
    assert await lists.unsubscribe("deals", ADA, source="operator") == NOT_MEMBER
    assert await lists.members("deals") == []
    ledger = await store.consent.ledger(ADA)
    assert [(e["action"], e["list"], e["source"], e["address"]) for e in ledger] == [
        ("opt-in", "deals", "web", "4433"),
        ("opt-out", "deals", "operator", "4433"),
    ]


async def test_members_are_the_subscribed_handsets_in_number_order(store: Store):
    for handset in (CAL, ADA, BEN):
        await store.lists.subscribe("deals", handset, "4433", source="import")
    await store.lists.unsubscribe("deals", BEN, source="operator")
    await store.lists.subscribe("news", BEN, "4433", source="import")
    assert await store.lists.members("deals") == [ADA, CAL]
    assert await store.lists.members("news") == [BEN]
    summary = [tuple(row) for row in await store.lists.summary()]
    assert [
        (name, subscribed, unsubscribed) for name, _, _, subscribed, unsubscribed in summary
    ] == [
        ("deals", 2, 1),
        ("news", 1, 0),
    ]


async def test_an_unknown_list_is_an_error_not_an_empty_one(store: Store):
    with pytest.raises(ValidationError, match="no list named 'dealz'"):
        await store.lists.members("dealz")


async def test_an_opted_out_handset_is_not_subscribed_and_an_opt_out_ends_memberships(
    store: Store,
):
    await store.consent.record(ConsentChange(ADA, "4433", "opt-out", "operator"))
    assert await store.lists.subscribe("deals", ADA, "4433", source="web") == OPTED_OUT
    assert await store.lists.subscribe("deals", ADA, "5000", source="web") == SUBSCRIBED
    await store.lists.subscribe("deals", BEN, "4433", source="web")
    await store.consent.record(ConsentChange(BEN, "*", "opt-out", "web"))
    assert await store.lists.members("deals") == [ADA]


def test_import_keeps_good_rows_and_reports_bad_ones_by_line(folder, capsys):
    name = write_csv(
        folder,
        "number,source,consented_at\n"
        f"{ADA},web,2026-01-04T10:30:00+11:00\n"
        "0400 000 000,,\n"
        f"{BEN},,\n"
        "+61 4,,\n"
        f"{CAL},,yesterday\n"
        f"{ADA},,\n"
        ",,\n"
        f"{CAL},two words,\n",
    )
    assert main(["lists", "import", "deals", name, "--description", "Weekly deals"]) == 1
    out, err = capsys.readouterr()
    assert err.splitlines() == [
        "people.csv:3: number: '0400 000 000' is not in international format (+ and country code)",
        "people.csv:5: number: '+61 4' is not a phone number "
        "((3) The string supplied is too short to be a phone number.)",
        "people.csv:6: consented_at: 'yesterday' is not an ISO date or time "
        "(2026-12-24, 2026-12-24T09:00, 2026-12-24T09:00:00+11:00)",
        "people.csv:8: number: is empty",
        "people.csv:9: source: 'two words' is not a source (one word: web, import, ...)",
    ]
    assert out == (
        "botkit lists import: deals: 2 subscribed, 1 already subscribed, "
        "0 opted out (not subscribed), 5 bad rows\n"
    )
    # A row's consented_at is when it consented; without one, it is the time of the import.
    ledger = query(
        "SELECT handset, address, action, source, list, message_id, created_at FROM consent"
    )
    assert ledger == [
        (ADA, "4433", "opt-in", "web", "deals", None, "2026-01-03T23:30:00.000000Z"),
        (BEN, "4433", "opt-in", "import", "deals", None, ledger[1][-1]),
    ]
    assert ledger[1][-1] >= query("SELECT created_at FROM lists")[0][0]
    assert query("SELECT name, description FROM lists") == [("deals", "Weekly deals")]


def test_import_of_good_rows_only_exits_0_and_show_lists_them(folder, capsys, monkeypatch):
    monkeypatch.setenv("BOTKIT_NUMBERS", "4433,5000")
    name = write_csv(folder, f"number\n{CAL}\n{ADA}\n+61 400 000 002\n")
    assert main(["lists", "import", "deals", name, "--source", "Web", "--address", "5000"]) == 0
    assert capsys.readouterr().out.startswith("botkit lists import: deals: 3 subscribed,")
    assert main(["lists", "show"]) == 0
    assert capsys.readouterr().out.split() == ["deals", "3", "subscribed", "0", "unsubscribed"]
    assert main(["lists", "show", "deals"]) == 0
    lines = [line.split()[:3] for line in capsys.readouterr().out.splitlines()]
    assert lines == [[ADA, "5000", "web"], [BEN, "5000", "web"], [CAL, "5000", "web"]]


def test_import_does_not_subscribe_a_number_that_opted_out(folder, capsys):
    async def opt_out() -> None:
        db = await Database.open("botkit.db")
        await migrate(db)
        await Store(db).consent.record(ConsentChange(BEN, "4433", "opt-out", "sms"))
        await db.close()

    asyncio.run(opt_out())
    name = write_csv(folder, f"number\n{ADA}\n{BEN}\n")
    assert main(["lists", "import", "deals", name]) == 0
    out, err = capsys.readouterr()
    assert err == f"people.csv:3: {BEN} opted out of 4433, not subscribed\n"
    assert "1 subscribed, 0 already subscribed, 1 opted out (not subscribed), 0 bad" in out
    assert query("SELECT handset FROM list_members") == [(ADA,)]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["deals", "people.csv", "--source", "a b"], "--source: 'a b' is not a source"),
        (["Deals", "people.csv"], "list: 'Deals' is not a list name"),
        (["deals", "missing.csv"], "missing.csv: cannot be read"),
        (["deals", "nonumber.csv"], "nonumber.csv: needs a header line with a 'number' column"),
    ],
)
def test_import_refuses_bad_arguments_before_writing_anything(folder, capsys, args, message):
    write_csv(folder, f"number\n{ADA}\n")
    write_csv(folder, f"phone\n{ADA}\n", name="nonumber.csv")
    assert main(["lists", "import", *args]) == 2
    assert message in capsys.readouterr().err
    assert not (folder / "botkit.db").exists()


def test_import_is_from_one_of_our_numbers_the_default_unless_told(folder, capsys, monkeypatch):
    monkeypatch.setenv("BOTKIT_APPLICATION", "acme")
    monkeypatch.setenv("BOTKIT_PASSWORD", "secret")
    write_csv(folder, f"number\n{ADA}\n")
    assert main(["lists", "import", "deals", "people.csv"]) == 2
    assert "BOTKIT_NUMBERS: is required with gateway credentials" in capsys.readouterr().err
    monkeypatch.setenv("BOTKIT_NUMBERS", "+61411111111,4433")
    assert main(["lists", "import", "deals", "people.csv", "--address", "5000"]) == 2
    assert "'5000' is not one of our numbers (+61411111111, 4433)" in capsys.readouterr().err
    assert main(["lists", "import", "deals", "people.csv"]) == 0
    assert query("SELECT address FROM list_members") == [("+61411111111",)]


def test_show_of_an_unknown_list_or_database_exits_2(folder, capsys):
    assert main(["lists", "show"]) == 2
    assert "botkit.db does not exist" in capsys.readouterr().err
    write_csv(folder, f"number\n{ADA}\n")
    main(["lists", "import", "deals", "people.csv"])
    assert main(["lists", "show", "dealz"]) == 2
    assert "there is no list named 'dealz'" in capsys.readouterr().err


def test_the_consent_export_names_the_list(folder, capsys):
    write_csv(folder, f"number\n{ADA}\n")
    main(["lists", "import", "deals", "people.csv", "--source", "web"])
    capsys.readouterr()
    assert main(["export", "consent", "--format", "csv"]) == 0
    (row,) = csv.DictReader(capsys.readouterr().out.splitlines())
    assert (row["handset"], row["action"], row["source"], row["list"]) == (
        ADA,
        "opt-in",
        "web",
        "deals",
    )


def test_times_without_an_offset_are_in_botkit_timezone_and_shown_in_it(
    folder, capsys, monkeypatch
):
    monkeypatch.setenv("BOTKIT_TIMEZONE", "Australia/Sydney")
    name = write_csv(folder, f"number,consented_at\n{ADA},2026-01-04T10:30\n")
    assert main(["lists", "import", "deals", name]) == 0
    assert query("SELECT created_at FROM consent") == [("2026-01-03T23:30:00.000000Z",)]
    capsys.readouterr()
    assert main(["lists", "show", "deals"]) == 0
    assert capsys.readouterr().out.split() == [ADA, "4433", "import", "2026-01-04T10:30:00+11:00"]
