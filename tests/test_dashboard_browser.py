"""The dashboard in a real headless Chromium: log in, open a conversation, watch an MO
arrive live, take over and reply, see the reply delivered; hostile content stays text,
and a form posted without its CSRF token is refused. With two numbers of ours, each
conversation and each reply shows its number (and a reply its mask, live too), and the
list filters by number."""

from __future__ import annotations

import httpx
from conftest import rows
from playwright.sync_api import expect
from servers import free_port, output, poll, start, wait_for
from signin import run_with_login

PHONE = "+61400000777"
HOSTILE = ["<script>alert(1)</script>", "<img src=x onerror=alert(1)>"]


def text_mo(base: str, text: str) -> None:
    """Text the app from the phone page's API (behind the dashboard's login, as it is)."""
    path = f"{base}/simulator/api/handsets/{PHONE}/send"
    sent = httpx.post(path, json={"text": text}, auth=("ops", "s3cret!"))
    assert sent.status_code == 202


def test_an_operator_works_a_conversation(tmp_path, processes, page):
    db = tmp_path / "botkit.db"
    app, base = run_with_login(processes, db)
    assert f"{base}/dashboard/ (log in as ops)" in output(app)
    text_mo(base, "hello")
    poll(lambda: rows(db, "SELECT id FROM messages WHERE direction = 'mt'"))

    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on(
        "dialog", lambda dialog: (problems.append(f"dialog: {dialog.message}"), dialog.dismiss())
    )
    page.on("console", lambda m: m.type == "error" and problems.append(f"console: {m.text}"))

    # Log in: the dashboard sends a browser without a session to the form, then back.
    page.goto(f"{base}/dashboard/")
    assert "/dashboard/login" in page.url
    page.fill("#user", "ops")
    page.fill("#password", "wrong")
    page.click("form.login button[type=submit]")
    expect(page.locator(".error")).to_have_text("Wrong user name or password.")
    problems.remove(
        "console: Failed to load resource: the server responded with a status of 401 (Unauthorized)"
    )
    page.fill("#user", "ops")
    page.fill("#password", "s3cret!")
    page.click("form.login button[type=submit]")
    expect(page.locator("table.conversations")).to_contain_text(PHONE)

    # Open the conversation; an MO sent now appears without a reload, as text.
    page.click(f"text={PHONE}")
    expect(page.locator("#chat li.mt").first).to_contain_text("botkit hello bot")
    expect(page.locator("#live")).to_be_visible()
    page.click("text=Take over")
    expect(page.locator("#thread")).to_contain_text("Taken over by ops")
    for text in HOSTILE:
        text_mo(base, text)
    for text in HOSTILE:
        expect(page.locator("#chat li.mo .text", has_text=text)).to_have_count(1)
    assert page.locator("#chat script, #chat img").count() == 0
    assert page.locator("#chat li.mt").count() == 1  # taken over: the bot did not answer

    # The operator's reply goes out, and its status reaches "received" live.
    page.fill("#text", "Hi, Sam here. How can I help?")
    page.click("#reply button[type=submit]")
    mine = page.locator("#chat li.mt", has_text="Sam here")
    expect(mine).to_contain_text("sent by ops")
    expect(mine.locator(".badge")).to_have_text("received", timeout=15_000)

    # A POST without the CSRF token is refused, with the browser's own session cookie.
    thread_id = rows(db, "SELECT thread_id FROM messages WHERE content LIKE 'Hi, Sam%'")[0][0]
    forged = page.request.post(
        f"{base}/dashboard/threads/{thread_id}/reply", form={"text": "forged"}
    )
    assert forged.status == 403
    assert not rows(db, "SELECT 1 FROM messages WHERE content = 'forged'")

    page.click("text=Log out")
    assert "/dashboard/login" in page.url
    page.goto(f"{base}/dashboard/")
    assert "/dashboard/login" in page.url
    assert problems == []
    mts = rows(db, "SELECT sent_by, delivery FROM messages WHERE content LIKE 'Hi, Sam%'")
    assert [tuple(m) for m in mts] == [("ops", "received")]
    assert "s3cret!" not in output(app)


CLINIC_BOT = """
from botkit import Bot, Context

bot = Bot("clinic")


@bot.keyword("PROMO")
async def promo(ctx: Context) -> None:
    ctx.reply("20% off this week.", mask="ClinicCo")


@bot.fallback
async def fallback(ctx: Context) -> None:
    ctx.reply("Text PROMO for this week's deal.")
"""
DEFAULT, OTHER = "4433", "+61400999000"
SHOP, CLINIC = "+61400000701", "+61400000702"


def callback_mo(base: str, gateway_id: int, source: str, destination: str, text: str) -> None:
    """An MO as the gateway calls it back: to one of our two numbers."""
    query = {"id": gateway_id, "source": source, "destination": destination}
    query |= {"content": text, "operator": "Telstra"}
    answer = httpx.get(f"{base}/callbacks/tok/mo", params=query)
    assert answer.status_code == 200, answer.text


def test_an_operator_sees_our_numbers_and_filters_by_them(tmp_path, processes, page):
    (tmp_path / "bots").mkdir()
    (tmp_path / "bots" / "clinic.py").write_text(CLINIC_BOT)
    (tmp_path / "templates").mkdir()
    port, db = free_port(), tmp_path / "botkit.db"
    env = {"BOTKIT_NUMBERS": f"{DEFAULT},{OTHER}", "BOTKIT_CALLBACK_TOKEN": "tok"}
    args = ["run", "--port", str(port), "--db", str(db), "--bots", str(tmp_path / "bots")]
    app = start(processes, [*args, "--templates", str(tmp_path / "templates")], env=env)
    base = f"http://127.0.0.1:{port}"
    wait_for(f"{base}/healthz", app)
    callback_mo(base, 1, CLINIC, DEFAULT, "PROMO")
    callback_mo(base, 2, SHOP, OTHER, "hello")
    poll(lambda: len(rows(db, "SELECT id FROM messages WHERE direction = 'mt'")) == 2)

    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on("console", lambda m: m.type == "error" and problems.append(f"console: {m.text}"))

    # Both conversations, each with the number it is on; then only those on OTHER.
    page.goto(f"{base}/dashboard/")
    table = page.locator("table.conversations tbody")
    expect(table.locator("tr", has_text=SHOP)).to_contain_text(OTHER)
    expect(table.locator("tr", has_text=CLINIC)).to_contain_text(DEFAULT)
    page.select_option("select[name=address]", OTHER)
    page.click("form.filters button[type=submit]")
    expect(table.locator("tr")).to_have_count(1)
    expect(table).to_contain_text(SHOP)
    expect(page.locator("select[name=address]")).to_have_value(OTHER)

    # Its reply went from OTHER, without a mask.
    page.click(f"text={SHOP}")
    expect(page.locator("#thread h1")).to_contain_text(f"on {OTHER}")
    expect(page.locator("#chat li.mt .number")).to_have_text(f"from {OTHER}")

    # The clinic's reply went from the default number, masked; a new one shows the
    # same when it arrives live.
    page.goto(f"{base}/dashboard/?address={DEFAULT}")
    page.click(f"text={CLINIC}")
    expect(page.locator("#chat li.mt .number")).to_have_text(f"from {DEFAULT} as ClinicCo")
    expect(page.locator("#live")).to_be_visible()
    callback_mo(base, 3, CLINIC, DEFAULT, "thanks")
    callback_mo(base, 4, CLINIC, DEFAULT, "PROMO")
    expect(page.locator("#chat li.mt")).to_have_count(3)
    expect(page.locator("#chat li.mt .number").last).to_have_text(f"from {DEFAULT} as ClinicCo")
    expect(page.locator("#chat li.mt .number").nth(1)).to_have_text(f"from {DEFAULT}")
    assert problems == []
