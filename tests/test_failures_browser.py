"""Failures in sight, in a real headless Chromium against `botkit run`: the phone page
says a message failed and why; the dashboard lists the conversation among those with a
failure, and the handset's page shows the failed message and its error, as text."""

from __future__ import annotations

from conftest import rows
from playwright.sync_api import expect
from servers import run_bot

PHONE = "+61400000555"
HOSTILE = "<img src=x onerror=alert(1)><script>alert(2)</script>"
FRAGILE_BOT = """
from botkit import Bot, Context

bot = Bot("fragile")


@bot.keyword("BEGIN")
async def begin(ctx: Context) -> None:
    ctx.state = "talk"
    ctx.reply("Go on.")


@bot.state("talk")
async def talk(ctx: Context) -> None:
    raise ValueError(f"cannot take {ctx.text}")
"""


def test_a_failed_message_is_seen_on_the_phone_and_the_dashboard(tmp_path, processes, page):
    base = run_bot(processes, tmp_path, "fragile", FRAGILE_BOT)

    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss()))
    page.on("console", lambda m: m.type == "error" and problems.append(f"console: {m.text}"))
    page.on("response", lambda r: r.status >= 400 and problems.append(f"{r.status} {r.url}"))

    # The phone: the first message is handled, the second fails, and says why.
    page.goto(f"{base}/simulator/?number=%2B61400000555")
    page.fill("#text", "BEGIN")
    page.click("#compose button[type=submit]")
    first = page.locator("#conversation li.mo .meta").first
    expect(first).to_contain_text("handled", timeout=15_000)
    page.fill("#text", HOSTILE)
    page.click("#compose button[type=submit]")
    failed = page.locator("#conversation li.mo", has_text=HOSTILE).locator(".meta")
    expect(failed).to_contain_text(f"failed: ValueError: cannot take {HOSTILE[:25]}")
    assert page.locator("#conversation img, #conversation script").count() == 0

    # The dashboard: only conversations with a failure, marked; then the handset's page.
    page.goto(f"{base}/dashboard/")
    page.check("input[name=failed]")
    page.click("form.filters button[type=submit]")
    row = page.locator("table.conversations tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("1 failed")
    row.locator("a.person").click()
    expect(page.locator("h1")).to_have_text(PHONE)
    mo = page.locator("#chat li.mo", has_text=HOSTILE)
    expect(mo.locator(".badge")).to_have_text("failed")
    expect(mo.locator(".error")).to_have_text(f"ValueError: cannot take {HOSTILE}")
    expect(mo.locator(".origin")).to_contain_text("fragile, conversation")
    expect(page.locator("#chat li.mo", has_text="BEGIN").locator(".badge")).to_have_text("handled")
    assert page.locator("#chat img, #chat script").count() == 0

    # From the handset's page to the conversation, whose header links back.
    page.click("table.person a")
    expect(page.locator("#chat li.mo .badge").last).to_have_text("failed")
    page.click("#thread h1 a")
    expect(page.locator("h1")).to_have_text(PHONE)
    assert problems == []
    db = tmp_path / "botkit.db"
    assert [r[0] for r in rows(db, "SELECT status FROM messages WHERE direction = 'mo'")] == [
        "handled",
        "failed",
    ]
