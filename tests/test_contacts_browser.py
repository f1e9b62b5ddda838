"""A contact in a real headless Chromium against `botkit run`: an operator edits its
fields on the person page, sees the change in its ledger, is shown a bad value by its
input, and finds the conversation by the field."""

from __future__ import annotations

import httpx
from playwright.sync_api import expect
from servers import run_bot

PHONE = "+61400000888"
DENTAL_BOT = """
from datetime import date, datetime

from botkit import Bot, Context

bot = Bot(
    "dental",
    fields={"appointment_at": datetime, "born": date, "clinic": str, "reminders": bool,
            "visits": int},
)


@bot.keyword("HI")
async def hi(ctx: Context) -> None:
    ctx.reply(f"Hi {ctx.contact.name or 'there'}")
"""
LOGIN = {"BOTKIT_DASHBOARD_USER": "ops", "BOTKIT_DASHBOARD_PASSWORD": "s3cret!"}


def test_an_operator_edits_a_contact_and_finds_it_by_a_field(tmp_path, processes, page):
    env = {**LOGIN, "BOTKIT_TIMEZONE": "Australia/Sydney"}
    base = run_bot(processes, tmp_path, "dental", DENTAL_BOT, env)
    sent = httpx.post(
        f"{base}/simulator/api/handsets/{PHONE}/send", json={"text": "HI"}, auth=("ops", "s3cret!")
    )
    assert sent.status_code == 202

    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss()))
    page.on("console", lambda m: m.type == "error" and problems.append(f"console: {m.text}"))

    page.goto(f"{base}/dashboard/people/{PHONE}")
    page.fill("#user", "ops")
    page.fill("#password", "s3cret!")
    page.click("form.login button[type=submit]")
    expect(page.locator("#chat li.mt").first).to_contain_text("Hi there", timeout=15_000)
    contact = page.locator("section.contact")
    expect(contact).to_contain_text("from the number: Australia/Sydney")

    # Edit: every kind of input, one form.
    page.click("details.edit summary")
    page.fill("#name", "Ana <b>Lee</b>")
    page.fill("#field-appointment_at", "2026-12-10T14:30")
    page.fill("#field-born", "1990-02-03")
    page.fill("#field-clinic", "Newtown")
    page.select_option("#field-reminders", "yes")
    page.fill("#field-visits", "3")
    page.click("#contact-form button[type=submit]")
    expect(page.locator(".notice.saved")).to_have_text("Saved.")
    expect(page.locator("h1 .name")).to_have_text("Ana <b>Lee</b>")
    assert page.locator("h1 b").count() == 0
    ledger = page.locator("table.ledger")
    row = ledger.locator("tr", has_text="appointment_at")
    expect(row).to_contain_text("2026-12-10 14:30 AEDT")
    expect(row).to_contain_text("operator ops")
    expect(ledger.locator("tr", has_text="reminders")).to_contain_text("yes")
    expect(page.locator("#field-appointment_at")).to_have_value("2026-12-10T14:30")

    # A value the field cannot take is shown by its input, and nothing is saved.
    page.click("details.edit summary")
    page.fill("#field-visits", "three")
    page.fill("#field-clinic", "Glebe")
    page.click("#contact-form button[type=submit]")
    expect(page.locator("#field-visits-error")).to_have_text(
        "field 'visits': 'three' is not a whole number"
    )
    expect(page.locator("#field-clinic")).to_have_value("Glebe")
    expect(contact.locator("dl.fields")).to_contain_text("Newtown")
    assert problems == [
        "console: Failed to load resource: the server responded with a status of 400 (Bad Request)"
    ]
    problems.clear()

    # The conversations list shows the name, and finds the conversation by its field.
    page.goto(f"{base}/dashboard/")
    expect(page.locator("table.conversations .name")).to_have_text("Ana <b>Lee</b>")
    page.select_option("select[name=field]", "clinic")
    page.fill("input[name=value]", "Glebe")
    page.click("form.filters button[type=submit]")
    expect(page.locator("table.conversations")).to_contain_text("No conversations match.")
    page.fill("input[name=value]", "Newtown")
    page.click("form.filters button[type=submit]")
    expect(page.locator("table.conversations")).to_contain_text(PHONE)
    page.select_option("select[name=field]", "appointment_at")
    page.fill("input[name=value]", "2026-12-10")
    page.click("form.filters button[type=submit]")
    expect(page.locator("table.conversations")).to_contain_text(PHONE)
    assert problems == []
