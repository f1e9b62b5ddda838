"""`make run`'s promise, in a real browser: type on the phone page, get the hello bot's
reply with its delivery status, and find it all in the database. Behind a login, a
text sent once the session has ended is kept, with word to log in again."""

from __future__ import annotations

from conftest import rows
from playwright.sync_api import Page, expect
from servers import free_port, start, wait_for
from signin import run_with_login


def test_phone_page_reaches_the_hello_bot(tmp_path, processes, page):
    port = free_port()
    db = tmp_path / "botkit.db"
    app = start(processes, ["run", "--port", str(port), "--db", str(db)])
    wait_for(f"http://127.0.0.1:{port}/healthz", app)

    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("response", lambda r: r.status >= 400 and errors.append(f"{r.status} {r.url}"))
    page.goto(f"http://127.0.0.1:{port}/")
    assert page.url.endswith("/simulator/")

    page.fill("#text", "HELLO")
    page.click("#compose button[type=submit]")
    reply = page.locator("#conversation li.mt").first
    reply.locator(".text").wait_for()
    assert reply.locator(".text").inner_text() == "Hi! I'm the botkit hello bot. What's your name?"
    # The page's CSP forbids eval, so wait with locators rather than wait_for_function.
    expect(reply.locator(".meta")).to_contain_text("received", timeout=15_000)

    page.fill("#text", "<b>Grace</b> & co")
    page.click("#compose button[type=submit]")
    second = page.locator("#conversation li.mt").nth(1).locator(".text")
    second.wait_for()
    assert second.inner_text().startswith("Nice to meet you, <b>Grace</b> & co!")
    assert page.locator("#conversation b").count() == 0  # shown as text, not markup
    assert errors == []

    mts = rows(db, "SELECT content, status FROM messages WHERE direction = 'mt' ORDER BY id")
    assert [m["status"] for m in mts] == ["accepted", "accepted"]
    mos = rows(db, "SELECT content FROM messages WHERE direction = 'mo' ORDER BY id")
    assert [m[0] for m in mos] == ["HELLO", "<b>Grace</b> & co"]


def test_the_handset_picks_which_of_our_numbers_it_texts(tmp_path, processes, page):
    port = free_port()
    env = {"BOTKIT_NUMBERS": "4433,+61400999000"}
    app = start(processes, ["run", "--port", str(port), "--db", str(tmp_path / "b.db")], env=env)
    wait_for(f"http://127.0.0.1:{port}/healthz", app)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"http://127.0.0.1:{port}/simulator/")
    expect(page.locator("#to")).to_have_value("4433")  # the default number, before any MT

    page.select_option("#to", "+61400999000")
    page.fill("#text", "HELLO")
    page.click("#compose button[type=submit]")
    expect(page.locator("#conversation li.mo .meta").first).to_contain_text("to +61400999000")
    reply = page.locator("#conversation li.mt").first
    expect(reply.locator(".meta")).to_contain_text("from +61400999000", timeout=15_000)
    expect(page.locator("#to")).to_have_value("+61400999000")

    page.reload()  # a fresh page follows the latest MT's number
    expect(page.locator("#to")).to_have_value("+61400999000")
    page.select_option("#to", "4433")
    page.fill("#text", "HELLO")
    page.click("#compose button[type=submit]")
    second = page.locator("#conversation li.mt").nth(1).locator(".meta")
    expect(second).to_contain_text("from 4433", timeout=15_000)
    expect(page.locator("#to")).to_have_value("4433")  # picked: it stays
    assert errors == []


def test_a_text_sent_after_the_session_ended_says_to_log_in_again(tmp_path, processes, page):
    db = tmp_path / "botkit.db"
    _, base = run_with_login(processes, db)
    page.goto(f"{base}/simulator/")
    log_in(page)
    expect(page.locator("#conversation")).to_contain_text("No messages yet")

    page.context.clear_cookies()  # the session ends: logged out elsewhere, or expired
    page.fill("#text", "HELLO")
    page.click("#compose button[type=submit]")
    logged_out = "Not sent: you are logged out. Reload the page to log in again."
    expect(page.locator("#error")).to_have_text(logged_out)
    expect(page.locator("#text")).to_have_value("HELLO")  # kept, to send again
    for _ in range(2):  # the poll, refused as well, leaves the error as it is
        with page.expect_response(lambda r: "/api/handsets/" in r.url and r.status == 401):
            pass
    expect(page.locator("#error")).to_have_text(logged_out)
    assert rows(db, "SELECT id FROM messages WHERE direction = 'mo'") == []

    page.reload()
    log_in(page)
    page.fill("#text", "HELLO")
    page.click("#compose button[type=submit]")
    expect(page.locator("#conversation li.mt").first).to_contain_text("botkit hello bot")
    expect(page.locator("#error")).to_be_hidden()


def log_in(page: Page) -> None:
    """Log in on the form the page was sent to, and be sent back."""
    assert "/dashboard/login" in page.url
    page.fill("#user", "ops")
    page.fill("#password", "s3cret!")
    page.click("form.login button[type=submit]")
    page.wait_for_url("**/simulator/")
