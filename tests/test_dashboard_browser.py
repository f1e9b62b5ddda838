"""The dashboard in a real headless Chromium: log in, open a conversation, watch an MO
arrive live, take over and reply, see the reply delivered; hostile content stays text,
and a form posted without its CSRF token is refused."""

from __future__ import annotations

import httpx
from conftest import rows
from playwright.sync_api import expect
from servers import free_port, output, poll, start, wait_for

PHONE = "+61400000777"
HOSTILE = ["<script>alert(1)</script>", "<img src=x onerror=alert(1)>"]


def text_mo(base: str, text: str) -> None:
    sent = httpx.post(f"{base}/simulator/api/handsets/{PHONE}/send", json={"text": text})
    assert sent.status_code == 202


def test_an_operator_works_a_conversation(tmp_path, processes, page):
    port, db = free_port(), tmp_path / "botkit.db"
    env = {"BOTKIT_DASHBOARD_USER": "ops", "BOTKIT_DASHBOARD_PASSWORD": "s3cret!"}
    app = start(processes, ["run", "--port", str(port), "--db", str(db)], env=env)
    base = f"http://127.0.0.1:{port}"
    wait_for(f"{base}/healthz", app)
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
