"""The dashboard's delivery overview: messages per day, MTs by send status and by latest
receipt, and the MTs not delivered, keyset-paginated; every figure from real traffic
through the simulator, an unknown carrier status shown escaped."""

from __future__ import annotations

import re

import httpx
import pytest
from conftest import ROOT
from test_dashboard import client
from test_dashboard_surveys import chart_name

from botkit.testing import Harness

pytestmark = pytest.mark.backends

BOTS, TEMPLATES = ROOT / "bots", ROOT / "templates"
HOSTILE = "<script>alert(1)</script>"
DELIVERED, REJECTED, UNROUTABLE, FAILED, ODD = (f"+6140000000{n}" for n in range(1, 6))


def handsets(page: str) -> list[str]:
    """The numbers in the table of undelivered MTs, in order."""
    table = page.split('<table class="undelivered">')[1].split("</table>")[0]
    return re.findall(r'<td><a href="[^"]*">([^<]*)</a></td>', table)


async def traffic(harness: Harness, c: httpx.AsyncClient) -> None:
    """Two days with messages: a conversation on the 5th of January; on the 7th one MT
    rejected, one the gateway would not queue, one whose receipt says failed, and one
    with a status no spec knows."""
    await harness.phone(DELIVERED).send("HELLO")
    await harness.phone(DELIVERED).send("Ada")
    await harness.advance(days=2)
    harness.simulator.set_fate(REJECTED, ["submitted", "rejected"])
    await harness.phone(REJECTED).send("HELLO")
    harness.simulator.set_unroutable(UNROUTABLE)
    await harness.phone(UNROUTABLE).send("HELLO")
    (reply,) = await harness.phone(FAILED).send("HELLO")
    await harness.phone(FAILED).deliver(reply, "failed")
    (reply,) = await harness.phone(ODD).send("HELLO")
    dlr = await c.get("/callbacks/harness/dlr", params={"id": str(reply.id), "status": HOSTILE})
    assert dlr.status_code == 200


async def test_the_overview_counts_messages_per_day_and_how_mts_fared(database):
    async with Harness(BOTS, TEMPLATES, db=database) as harness, client(harness) as c:
        await traffic(harness, c)
        page = (await c.get("/dashboard/deliveries")).text
        day = (await c.get("/dashboard/deliveries", params={"days": "1"})).text
        mts = await harness.runtime.store.db.fetchall(
            "SELECT id, thread_id, handset FROM messages WHERE direction = 'mt' ORDER BY id"
        )
    per_day = chart_name(page, "Messages per day")
    assert per_day.startswith("Messages per day: 2025-12-09: MO 0 · MT 0; ")  # 30 days
    assert per_day.endswith(
        "2026-01-05: MO 2 · MT 2; 2026-01-06: MO 0 · MT 0; 2026-01-07: MO 4 · MT 4"
    )
    assert per_day.count("MO ") == 30
    assert "6 MO, 6 MT" in page
    assert chart_name(page, "MTs by send status") == (
        "MTs by send status: queued: 0; sending: 0; accepted: 5; failed: 1; refused: 0; "
        "uncertain: 0"
    )
    assert chart_name(page, "MTs by latest delivery receipt") == (
        "MTs by latest delivery receipt: submitted: 0; sent: 0; frozen: 0; received: 0; "
        "failed: 1; dead: 0; rejected: 1; expired: 0; "
        "&lt;script&gt;alert(1)&lt;/script&gt;: 1"
    )
    assert HOSTILE not in page

    # Newest first, each linking to its transcript at the MT; the gateway's error shown.
    assert handsets(page) == [FAILED, UNROUTABLE, REJECTED]
    by_handset = {mt["handset"]: mt for mt in mts}
    failed = by_handset[FAILED]
    assert (
        f'href="http://localhost/dashboard/threads/{failed["thread_id"]}#m{failed["id"]}"' in page
    )
    assert "Failed to queue message" in page
    assert "<td>accepted</td>\n        <td>rejected</td>" in page

    assert chart_name(day, "Messages per day") == "Messages per day: 2026-01-07: MO 4 · MT 4"
    assert "4 MO, 4 MT" in day
    assert "accepted: 3; failed: 1" in chart_name(day, "MTs by send status")


async def test_days_and_pages_that_are_not_numbers_get_a_clear_error(database):
    async with Harness(BOTS, TEMPLATES, db=database) as harness, client(harness) as c:
        page = await c.get("/dashboard/deliveries", params={"days": ""})
        assert page.status_code == 200
        assert "<h1>Deliveries, last 30 days</h1>" in page.text
        assert "Every MT of the period was delivered or is on its way." in page.text
        assert 'href="http://localhost/dashboard/deliveries"' in page.text  # the nav link
        assert (
            "<h1>Deliveries, last 1 day</h1>"
            in (await c.get("/dashboard/deliveries", params={"days": "1"})).text
        )
        for name, value in [
            ("days", "0"),
            ("days", "367"),
            ("days", "x"),
            ("days", "²"),
            ("days", "9" * 5000),
            ("before", "y"),
            ("before", "-1"),
            ("before", "99999999999999999999"),
        ]:
            page = await c.get("/dashboard/deliveries", params={name: value})
            assert page.status_code == 400, (name, value)
            assert f"{name}: must be a whole number from 1 to" in page.text


async def test_undelivered_mts_page_by_keyset(database):
    async with Harness(BOTS, TEMPLATES, db=database) as harness, client(harness) as c:
        numbers = [f"+614000002{n:02d}" for n in range(52)]
        for number in numbers:
            harness.simulator.set_fate(number, ["rejected"])
            await harness.phone(number).send("HELLO")
        first = (await c.get("/dashboard/deliveries")).text
        link = first.split('rel="next" href="')[1].split('"')[0].replace("&amp;", "&")
        assert re.fullmatch(r"\?days=30&before=\d+#undelivered", link)
        second = (await c.get(f"/dashboard/deliveries{link.split('#')[0]}")).text
    assert handsets(first) == numbers[::-1][:50]
    assert handsets(second) == numbers[::-1][50:]
    assert 'rel="next"' not in second
