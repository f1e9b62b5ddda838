"""The dashboard's survey results: a chart per countable question with the real counts,
response and completion rates, free-text answers escaped and capped, the CSV download
as `botkit export survey` writes it, and one look in a real browser under the CSP."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta

import httpx
from conftest import ROOT
from playwright.sync_api import ConsoleMessage, expect
from servers import free_port, poll, start, wait_for
from test_dashboard import client

from botkit import Bot, Question, Survey
from botkit.dashboard.charts import bar_chart, grouped_bar_chart
from botkit.dashboard.surveys import TEXTS
from botkit.export import export_survey
from botkit.testing import Harness

TEMPLATES = ROOT / "templates"
HOSTILE = "<script>alert(1)</script>"


def lunch_bot() -> Bot:
    bot = Bot("canteen")
    Survey(
        "lunch",
        [
            Question.rating("taste", "How did it taste, 1 to 5?"),
            Question.choice("dish", "Which dish?", ["Soup", "Salad", "Pie"]),
            Question.number("guests", "How many of you ate?", min=1, max=20),
            Question.yes_no("again", "Would you come again?"),
            Question.text("comment", "Anything else?"),
        ],
        closing="Thanks!",
        expiry=timedelta(hours=2),
    ).attach(bot, keyword="LUNCH")
    return bot


async def answer(harness: Harness, number: str, *texts: str) -> None:
    phone = harness.phone(number)
    for text in ("LUNCH", *texts):
        await phone.send(text)


async def lunch_results(harness: Harness) -> None:
    """Five respondents: three completed, one who stopped replying (expired), one under way."""
    await answer(harness, "+61400000005", "3")
    await harness.advance(hours=3)  # the first one's question expires: incomplete
    await answer(harness, "+61400000001", "5", "Pie", "2", "yes", HOSTILE)
    await answer(harness, "+61400000002", "4", "pie", "2", "no", "Cold & late")
    await answer(harness, "+61400000003", "5", "Soup", "4", "yes", "ok")
    await answer(harness, "+61400000004", "2", "Salad")


def chart_name(page: str, title: str) -> str:
    """The accessible name of the chart titled `title`: every label with its count."""
    found = re.search(
        rf'<svg class="chart" role="img" aria-label="({re.escape(title)}:[^"]*)"', page
    )
    assert found, f"no chart {title!r}"
    return found.group(1)


async def test_results_chart_each_question_with_rates_and_escaped_free_text():
    async with Harness([lunch_bot()], TEMPLATES) as harness:
        await lunch_results(harness)
        async with client(harness) as c:
            page = await c.get("/dashboard/surveys/lunch")
    assert page.status_code == 200
    assert "script-src 'self'" in page.headers["content-security-policy"]
    text = page.text
    assert chart_name(text, "taste") == "taste: 1: 0; 2: 1; 3: 1; 4: 1; 5: 2"
    assert chart_name(text, "dish") == "dish: Soup: 1; Salad: 1; Pie: 2"
    assert chart_name(text, "guests") == "guests: 2: 2; 4: 1"
    assert chart_name(text, "again") == "again: yes: 2; no: 1"
    assert text.count('<svg class="chart"') == 4  # free text is listed, not charted
    assert "<dt>Started</dt><dd>5</dd>" in text
    assert "<dt>Completed</dt><dd>3</dd>" in text
    assert "<dt>Incomplete</dt><dd>1</dd>" in text
    assert "<dt>In progress</dt><dd>1</dd>" in text
    assert '<dd class="completion">60%</dd>' in text
    assert "5 of 5 answered (100%)" in text  # taste
    assert "4 of 5 answered (80%)" in text  # dish
    assert "3 of 5 answered (60%)" in text  # guests, again, comment
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert HOSTILE not in text
    assert "Cold &amp; late" in text
    assert 'href="http://localhost/dashboard/surveys/lunch.csv"' in text


async def test_the_survey_list_has_each_survey_with_its_completion_rate():
    async with Harness([lunch_bot()], TEMPLATES) as harness, client(harness) as c:
        empty = await c.get("/dashboard/surveys/")
        await lunch_results(harness)
        listed = await c.get("/dashboard/surveys/")
    assert "No survey has been started yet." in empty.text
    row = re.search(
        r'<tr>\s*<td><a href="http://localhost/dashboard/surveys/lunch">lunch</a></td>(.*?)</tr>',
        listed.text,
        re.S,
    )
    assert row, listed.text
    cells = re.findall(r"<td>([^<]*)</td>", row.group(1))
    assert cells[:4] == ["5", "3", "1", "60%"]
    assert 'href="http://localhost/dashboard/surveys/"' in listed.text  # the nav link


async def test_free_text_answers_are_capped_with_a_count():
    async with Harness([lunch_bot()], TEMPLATES) as harness:
        for n in range(TEXTS + 2):
            await answer(harness, f"+614000001{n:02d}", "5", "Pie", "1", "yes", f"note {n}")
        async with client(harness) as c:
            page = await c.get("/dashboard/surveys/lunch")
    assert f"The latest {TEXTS} of {TEXTS + 2} answers" in page.text
    assert "note 21" in page.text and "note 2<" in page.text  # newest first
    assert "note 1<" not in page.text and "note 0<" not in page.text


async def test_the_csv_download_is_the_export(tmp_path):
    async with Harness([lunch_bot()], TEMPLATES) as harness:
        await lunch_results(harness)
        async with client(harness) as c:
            download = await c.get("/dashboard/surveys/lunch.csv")
        exported = io.StringIO()
        await export_survey(harness.runtime.store, exported, "csv", "lunch")
    assert download.status_code == 200
    assert download.headers["content-type"] == "text/csv; charset=utf-8"
    assert download.headers["content-disposition"] == 'attachment; filename="lunch.csv"'
    assert download.text == exported.getvalue()
    rows = list(csv.DictReader(io.StringIO(download.text)))
    assert list(rows[0]) == [
        *("thread_id", "handset", "status", "started_at", "ended_at"),
        *("taste", "dish", "guests", "again", "comment"),
    ]
    by_handset = {row["handset"]: row for row in rows}
    assert len(rows) == 5
    assert by_handset["+61400000001"]["comment"] == HOSTILE  # a CSV keeps text verbatim
    assert by_handset["+61400000002"]["again"] == "no"
    assert by_handset["+61400000005"]["status"] == "incomplete"
    assert by_handset["+61400000004"]["status"] == "started"


async def test_an_unknown_survey_is_404_as_a_page_and_as_csv():
    async with Harness([lunch_bot()], TEMPLATES) as harness, client(harness) as c:
        page = await c.get("/dashboard/surveys/nope")
        download = await c.get("/dashboard/surveys/nope.csv")
        hostile = await c.get("/dashboard/surveys/<b>x")
    assert page.status_code == download.status_code == hostile.status_code == 404
    assert "Nobody has started a survey named <code>nope</code>" in page.text
    assert "content-disposition" not in download.headers
    assert "<b>x" not in hostile.text and "&lt;b&gt;x" in hostile.text


def test_charts_escape_labels_and_write_every_count():
    chart = bar_chart("a <b>", [(HOSTILE, 3), ("ok", 0)])
    assert "<script>" not in chart and "<b>" not in chart
    assert 'aria-label="a &lt;b&gt;: &lt;script&gt;alert(1)&lt;/script&gt;: 3; ok: 0"' in chart
    widths = [float(w) for w in re.findall(r'<rect class="bar s0"[^>]* width="([\d.]+)"', chart)]
    assert widths[0] > 200 and widths[1] == 0
    assert re.findall(r'<text class="count"[^>]*>([^<]*)</text>', chart) == ["3", "0"]
    assert "&lt;script&gt;alert(…" in chart  # cut to its column
    grouped = grouped_bar_chart("days", ("MO", "MT"), [("2026-01-05", (1, 2))])
    assert ">MO 1 · MT 2</text>" in grouped
    assert grouped.count('<rect class="bar s0"') == grouped.count('<rect class="bar s1"') == 1


def test_the_survey_chart_in_a_browser_under_the_csp(tmp_path, processes, page):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    app = start(processes, ["run", "--port", str(port), "--db", str(tmp_path / "botkit.db")])
    wait_for(f"{base}/healthz", app)
    phones = {"+61400000001": ("SURVEY", "5", HOSTILE, "yes"), "+61400000002": ("SURVEY", "4")}
    for number, texts in phones.items():
        for n, text in enumerate(texts, 1):
            sent = httpx.post(f"{base}/simulator/api/handsets/{number}/send", json={"text": text})
            assert sent.status_code == 202
            # Each answer after the question it answers (the bot's n-th reply).
            poll(lambda number=number, n=n: mts(base, number) >= n)

    problems: list[str] = []

    def console(message: ConsoleMessage) -> None:
        # A CSP violation is a console error. The browser's own request for
        # /favicon.ico (which no page links to) 404s, and is no problem of the page.
        if message.type in ("error", "warning") and not message.location["url"].endswith(
            "/favicon.ico"
        ):
            problems.append(message.text)

    page.on("console", console)
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.on("response", lambda r: r.status >= 400 and problems.append(f"{r.status} {r.url}"))
    page.goto(f"{base}/dashboard/surveys/satisfaction")

    chart = page.locator("#q-rating svg.chart")
    expect(chart).to_be_visible()
    expect(chart).to_have_attribute("aria-label", "rating: 1: 0; 2: 0; 3: 0; 4: 1; 5: 1")
    assert chart.locator("text.label").all_text_contents() == ["1", "2", "3", "4", "5"]
    assert chart.locator("text.count").all_text_contents() == ["0", "0", "0", "1", "1"]
    bars = chart.locator("rect.bar")
    assert bars.nth(4).bounding_box()["width"] > 0  # drawn, with its colour from the CSS
    assert page.locator("#q-recommend svg.chart text.count").all_text_contents() == ["1", "0"]
    assert page.locator(".answers .text").first.inner_text() == HOSTILE
    assert page.locator(".answers script").count() == 0
    assert page.locator(".completion").inner_text() == "50%"
    assert problems == []


def mts(base: str, number: str) -> int:
    """How many MTs the simulator has sent to `number`."""
    messages = httpx.get(f"{base}/simulator/api/handsets/{number}").json()["messages"]
    return sum(message["direction"] == "mt" for message in messages)
