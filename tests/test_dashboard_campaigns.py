"""The dashboard's campaigns page: each campaign's events in words with their counts,
the next events with their contacts (names escaped), and those that fired or were
cancelled, with why."""

from __future__ import annotations

import re

import pytest
from test_campaigns import AU, NZ, START, dental
from test_dashboard import client

from botkit import Bot
from botkit.testing import FakeClock, Harness

pytestmark = pytest.mark.backends

HOSTILE = "<script>alert(1)</script>"


@pytest.fixture
def templates(tmp_path):
    (tmp_path / "dental").mkdir()
    (tmp_path / "dental" / "reminder.txt").write_text("See you tomorrow, {{ contact.name }}")
    return tmp_path


def cells(page: str, table: str) -> list[list[str]]:
    """The text of each row of the table of class `table` (tags left out)."""
    body = re.search(rf'<table class="{table}">.*?<tbody>(.*?)</tbody>', page, re.S)
    assert body, page
    rows = re.findall(r"<tr>(.*?)</tr>", body.group(1), re.S)
    return [
        [re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td>(.*?)</td>", row, re.S)]
        for row in rows
    ]


async def test_the_page_shows_each_event_its_next_and_what_fired(database, templates):
    clock = FakeClock(START)
    async with (
        Harness([dental()], templates, db=database, clock=clock, timezone="Australia/Sydney") as h,
        client(h) as http,
    ):
        await h.phone(AU).update_contact(
            name=HOSTILE, fields={"appointment_at": "2026-12-10 14:30"}
        )
        await h.phone(NZ).update_contact(name="Fay", fields={"appointment_at": "2026-12-09 14:30"})
        await h.advance(days=1, hours=1)  # Fay's reminder (09:00 Auckland) went
        await h.phone(AU).send("STOP")
        page = (await http.get("/dashboard/campaigns/")).text
    assert HOSTILE not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "timed from each contact's <code>appointment_at</code>, sent from 4433" in page
    assert cells(page, "events") == [
        ["1 day before, at 09:00: sends dental/reminder.txt", "0", "1", "1", "0"],
        ["2 hours after: starts aftercare", "1", "0", "1", "0"],
    ]
    assert cells(page, "upcoming") == [
        ["2026-12-09 14:30:00 AEDT", "Fay", "2 hours after: starts aftercare"]
    ]
    # Fay's reminder, and what the STOP cancelled (all at 10:00, as the clock moved).
    assert sorted(tuple(row[1:]) for row in cells(page, "fired")) == [
        (
            "&lt;script&gt;alert(1)&lt;/script&gt;",
            "1 day before, at 09:00: sends dental/reminder.txt",
            "cancelled (opted out)",
        ),
        (
            "&lt;script&gt;alert(1)&lt;/script&gt;",
            "2 hours after: starts aftercare",
            "cancelled (opted out)",
        ),
        ("Fay", "1 day before, at 09:00: sends dental/reminder.txt", "fired"),
    ]


async def test_without_campaigns_the_page_says_how_to_declare_one(tmp_path):
    async with Harness([Bot("plain")], tmp_path) as h, client(h) as http:
        page = await http.get("/dashboard/campaigns/")
    assert page.status_code == 200
    assert "No bot carries a campaign" in page.text
    assert 'href="http://localhost/dashboard/campaigns/"' in page.text  # the nav link
