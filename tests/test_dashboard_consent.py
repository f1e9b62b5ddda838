"""The dashboard's consent page and CSV, and the phone page's links to the dashboard."""

from __future__ import annotations

import csv
import io
import re
from urllib.parse import urljoin

import httpx
import pytest
from playwright.sync_api import expect
from servers import free_port, start, wait_for
from test_dashboard import BOTS, TEMPLATES, client

from botkit.errors import ValidationError
from botkit.export import export_consent
from botkit.messages import ConsentChange
from botkit.numbers import search_forms
from botkit.simulator import Simulator
from botkit.store.consent import COLUMNS
from botkit.testing import Harness

pytestmark = pytest.mark.backends

ADA, BEN, CY, DEE, EVE = (f"+614{n}" for n in range(12345678, 12345683))
ADA_FORMS = ["+61 412 345 678", "61412345678", "0412 345 678", "0061 412 345 678", "(04) 1234-5678"]
JUNK = "<script>alert(1)</script>"


def section(page: str, name: str) -> list[list[str]]:
    """The rows of section `name` (opt-outs or ledger) of a consent page, as cell texts."""
    html = page.split(f'<h2 id="{name}">')[1].split("</section>")[0]
    rows = re.findall(r"<tr>(.*?)</tr>", html, re.S)
    cells = [re.findall(r"<td[^>]*>(.*?)</td>", row, re.S) for row in rows]
    return [[re.sub(r"<[^>]+>", "", cell) for cell in row] for row in cells if row]


def next_link(page: str, text: str) -> str | None:
    """The href of the `rel="next"` link saying `text`, unescaped; None if there is none."""
    found = re.search(rf'<a rel="next" href="([^"]*)">{text}</a>', page)
    return found[1].replace("&amp;", "&") if found else None


async def consent_history(harness: Harness) -> None:
    """ADA stops; BEN stops all, then starts on 4433; CY stops then starts; DEE joins the
    deals list; an operator opts EVE out. A minute passes between each."""
    for number, texts in ((ADA, ["STOP"]), (BEN, ["STOPALL", "START"]), (CY, ["STOP", "START"])):
        for text in texts:
            await harness.phone(number).send(text)
            await harness.advance(minutes=1)
    await harness.phone(DEE).send("JOIN")
    await harness.phone(DEE).send("YES")
    await harness.advance(minutes=1)
    change = ConsentChange(handset=EVE, address="4433", action="opt-out", source="operator")
    await harness.runtime.store.consent.record(change)


async def test_opt_outs_in_force_and_the_ledger_newest_first(database):
    async with Harness(BOTS, TEMPLATES, db=database) as harness:
        await consent_history(harness)
        stop = await harness.runtime.store.db.fetchone(
            "SELECT id, thread_id FROM messages WHERE content = 'STOP' AND handset = ?", (ADA,)
        )
        async with client(harness) as c:
            page = await c.get("/dashboard/consent")
        assert page.status_code == 200
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert section(page.text, "opt-outs") == [
            [EVE, "4433", "2026-01-05 09:06:00 UTC"],
            [BEN, "all numbers except 4433", "2026-01-05 09:01:00 UTC"],
            [ADA, "4433", "2026-01-05 09:00:00 UTC"],
        ]
        ledger = section(page.text, "ledger")
        assert [row[1:6] for row in ledger] == [
            [EVE, "opt-out", "4433", "", "operator"],
            [DEE, "opt-in", "4433", "deals", "sms (JOIN)"],
            [CY, "opt-in", "4433", "", "sms (START)"],
            [CY, "opt-out", "4433", "", "sms (STOP)"],
            [BEN, "opt-in", "4433", "", "sms (START)"],
            [BEN, "opt-out", "all numbers", "", "sms (STOPALL)"],
            [ADA, "opt-out", "4433", "", "sms (STOP)"],
        ]
        assert ledger[0][0] == "2026-01-05 09:06:00 UTC" and ledger[0][6] == ""  # no MO
        assert ledger[-1][6] == "transcript"
        assert (
            f'href="http://localhost/dashboard/threads/{stop["thread_id"]}#m{stop["id"]}"'
            in page.text
        )
        assert 'href="?q=%2B61412345678"' in page.text  # a number leads to its own lines
        assert 'href="http://localhost/dashboard/consent">Consent</a>' in page.text  # in the nav


async def test_search_by_a_number_in_any_common_form(database):
    async with Harness(BOTS, TEMPLATES, db=database) as harness:
        await consent_history(harness)
        async with client(harness) as c:
            for typed in ADA_FORMS:
                page = await c.get("/dashboard/consent", params={"q": typed})
                assert page.status_code == 200, typed
                assert [row[0] for row in section(page.text, "opt-outs")] == [ADA], typed
                assert [row[1] for row in section(page.text, "ledger")] == [ADA], typed
                assert f'value="{typed}"' in page.text
            page = await c.get("/dashboard/consent", params={"q": CY})
            assert section(page.text, "opt-outs") == [["No opt-outs of this number."]]
            assert [row[2] for row in section(page.text, "ledger")] == ["opt-in", "opt-out"]


@pytest.mark.parametrize("typed", ADA_FORMS)
def test_every_form_of_a_number_may_mean_its_stored_form(typed):
    forms = search_forms(typed)
    assert ADA in forms and all(form.startswith("+") for form in forms)
    if typed.startswith(("+", "00")):
        assert forms == (ADA,)  # a country code leaves no doubt


@pytest.mark.parametrize("typed", ["", "  ", "ada", "12", "+", "+61 412 ABC", JUNK, "0" * 30])
def test_text_that_cannot_be_a_number_is_refused(typed):
    with pytest.raises(ValidationError, match="is not a phone number"):
        search_forms(typed)


async def test_a_search_that_cannot_be_a_number_says_so_escaped(database):
    async with Harness(BOTS, TEMPLATES, db=database) as harness:
        await consent_history(harness)
        async with client(harness) as c:
            for typed in ["ada", "12", "+", "0412 345 678 ext 9", JUNK]:
                page = await c.get("/dashboard/consent", params={"q": typed})
                assert page.status_code == 400, typed
                assert "is not a phone number" in page.text
            assert JUNK not in page.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
            download = await c.get("/dashboard/consent.csv", params={"q": JUNK})
            assert download.status_code == 400 and "is not a phone number" in download.text
            assert download.headers["content-type"].startswith("text/plain")


async def test_filter_by_source_and_change(database):
    async with Harness(BOTS, TEMPLATES, db=database) as harness:
        await consent_history(harness)
        async with client(harness) as c:
            operator = await c.get("/dashboard/consent", params={"source": "operator"})
            assert [row[1] for row in section(operator.text, "ledger")] == [EVE]
            opt_ins = await c.get("/dashboard/consent", params={"change": "opt-in"})
            assert [row[1] for row in section(opt_ins.text, "ledger")] == [DEE, CY, BEN]
            both = await c.get("/dashboard/consent", params={"source": "sms", "change": "opt-out"})
            assert [row[1] for row in section(both.text, "ledger")] == [CY, BEN, ADA]
            assert '<option value="sms" selected>' in both.text
            one = await c.get("/dashboard/consent", params={"q": "0400 000 009", "source": "web"})
            assert section(one.text, "ledger") == [["No changes match."]]
            custom = await c.get("/dashboard/consent", params={"source": "<b>fair</b>"})
            assert "<b>fair</b>" not in custom.text and "&lt;b&gt;fair&lt;/b&gt;" in custom.text
            bad = await c.get("/dashboard/consent", params={"change": "maybe"})
            assert bad.status_code == 400 and "is not a change" in bad.text


async def test_keyset_pages_of_the_ledger_and_of_the_opt_outs(database):
    async with Harness(BOTS, TEMPLATES, db=database) as harness:
        consent = harness.runtime.store.consent
        numbers = [f"+614000001{n:02d}" for n in range(60)]
        for number in numbers:
            await consent.record(ConsentChange(number, "4433", "opt-out", source="import"))
        await harness.phone(ADA).send("STOP")
        async with client(harness) as c:
            first = await c.get("/dashboard/consent", params={"source": "import"})
            ledger = [row[1] for row in section(first.text, "ledger")]
            assert ledger == numbers[::-1][:50]
            link = next_link(first.text, "Older changes")
            assert link is not None and "source=import" in link
            second = await c.get(f"/dashboard/consent{link}")
            assert [row[1] for row in section(second.text, "ledger")] == numbers[::-1][50:]
            assert next_link(second.text, "Older changes") is None

            every = await c.get("/dashboard/consent")
            opt_outs = [row[0] for row in section(every.text, "opt-outs")]
            assert len(opt_outs) == 50 and opt_outs[0] == ADA
            link = next_link(every.text, "Older opt-outs")
            assert link is not None
            more = await c.get(f"/dashboard/consent{link}")
            rest = [row[0] for row in section(more.text, "opt-outs")]
            assert sorted(opt_outs + rest) == sorted([ADA, *numbers])
            assert next_link(more.text, "Older opt-outs") is None
            # Paging the opt-outs keeps the ledger where it was, and the other way round.
            assert section(more.text, "ledger") == section(every.text, "ledger")
            for name, junk in [
                ("after", "²"),
                ("after", "abc"),
                ("after", "9" * 40),
                ("optouts_after", "x~y"),
                ("optouts_after", "~~"),
            ]:
                page = await c.get("/dashboard/consent", params={name: junk})
                assert page.status_code == 400 and f"{name}: " in page.text


async def test_the_csv_is_the_export_with_the_same_filters(database):
    async with Harness(BOTS, TEMPLATES, db=database) as harness:
        await consent_history(harness)
        exported = io.StringIO()
        await export_consent(harness.runtime.store, exported, "csv")
        async with client(harness) as c:
            every = await c.get("/dashboard/consent.csv")
            assert every.status_code == 200
            assert every.headers["content-type"] == "text/csv; charset=utf-8"
            assert every.headers["content-disposition"] == "attachment; filename=consent.csv"
            assert every.text == exported.getvalue()
            ben = await c.get("/dashboard/consent.csv", params={"q": "0412 345 679"})
            page = await c.get("/dashboard/consent", params={"q": "0412 345 679"})
            assert 'href="http://localhost/dashboard/consent.csv?q=0412+345+679"' in page.text
        header, *rows = csv.reader(io.StringIO(ben.text))
        assert tuple(header) == COLUMNS
        assert [(row[2], row[3], row[4], row[5]) for row in rows] == [
            (BEN, "*", "opt-out", "STOPALL"),
            (BEN, "4433", "opt-in", "START"),
        ]
        async with client(harness) as c:
            opt_ins = await c.get("/dashboard/consent.csv", params={"change": "opt-in"})
        assert [row["handset"] for row in csv.DictReader(io.StringIO(opt_ins.text))] == [
            BEN,
            CY,
            DEE,
        ]


async def test_consent_is_private(database):
    async with (
        Harness(BOTS, TEMPLATES, db=database) as harness,
        client(harness, ip="203.0.113.9") as c,
    ):
        assert (await c.get("/dashboard/consent")).status_code == 403
        assert (await c.get("/dashboard/consent.csv")).status_code == 403


async def test_phone_page_links_to_the_dashboard_and_the_thread(database):
    async with Harness(BOTS, TEMPLATES, db=database) as harness, client(harness) as c:
        page = await c.get("/simulator/")
        dashboard = re.search(r'<a href="([^"]+)">Dashboard</a>', page.text)
        assert dashboard is not None
        assert urljoin(str(page.url), dashboard[1]) == "http://localhost/dashboard/"
        assert (await c.get(urljoin(str(page.url), dashboard[1]))).status_code == 200
        assert re.search(r'id="transcript" href="[^"]*" hidden>', page.text)
        (reply,) = await harness.phone(ADA).send("hello")
        page = await c.get("/simulator/", params={"number": ADA})
        transcript = re.search(r'id="transcript" href="([^"]+)">', page.text)
        assert transcript is not None
        url = urljoin(str(page.url), transcript[1])
        assert url == f"http://localhost/dashboard/threads/{reply.thread_id}"
        conversation = (await c.get(f"/simulator/api/handsets/{ADA}")).json()
        assert conversation["transcript"] == transcript[1]
        assert "What&#39;s your name?" in (await c.get(url)).text


async def test_a_simulator_on_its_own_has_no_dashboard_link():
    simulator = Simulator(dlr_delay=0)
    transport = httpx.ASGITransport(app=simulator.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sim.test") as c:
        page = await c.get("/")
        assert "Dashboard" not in page.text and 'id="transcript"' not in page.text
        assert (await c.get(f"/api/handsets/{ADA}")).json()["transcript"] is None
    await simulator.aclose()


def test_in_a_browser_the_phone_links_to_its_thread_and_consent_fits_a_phone(
    tmp_path, processes, page
):
    port = free_port()
    app = start(processes, ["run", "--port", str(port), "--db", str(tmp_path / "botkit.db")])
    wait_for(f"http://127.0.0.1:{port}/healthz", app)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"http://127.0.0.1:{port}/simulator/")
    expect(page.locator("#transcript")).to_be_hidden()
    page.fill("#text", "HELLO")
    page.click("#compose button[type=submit]")
    expect(page.locator("#transcript")).to_be_visible(timeout=15_000)
    page.fill("#text", "STOP")
    page.click("#compose button[type=submit]")
    expect(page.locator("#conversation li.mt")).to_have_count(2, timeout=15_000)
    page.click("text=Dashboard")
    page.click("nav >> text=Consent")
    expect(page.locator("h1")).to_have_text("Consent")
    expect(page.locator(".ledger td[data-label=Source]")).to_have_text("sms (STOP)")
    width = page.viewport_size["width"]
    assert page.locator("table.ledger").bounding_box()["width"] <= width
    assert page.locator(".filters").bounding_box()["width"] <= width
    assert errors == []
