"""Human takeover from the dashboard: an operator's reply goes through the outbox (consent
and the send rate hold, the MT says who sent it); a paused thread's MOs reach no bot and
its timers wait until it is handed back."""

from __future__ import annotations

import re

import httpx
import pytest
from conftest import ROOT

from botkit.testing import Harness

pytestmark = pytest.mark.backends

BOTS, TEMPLATES = ROOT / "bots", ROOT / "templates"
PHONE = "+61400000001"


def client(harness: Harness) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=harness.app, client=("127.0.0.1", 1234))
    return httpx.AsyncClient(transport=transport, base_url="http://localhost")


async def post(c: httpx.AsyncClient, thread_id: int, action: str, **data: str) -> httpx.Response:
    """POST a transcript's form as a browser would: with the page's CSRF token."""
    page = await c.get(f"/dashboard/threads/{thread_id}")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    return await c.post(f"/dashboard/threads/{thread_id}/{action}", data={"csrf": token, **data})


async def mts(harness: Harness, thread_id: int) -> list[dict]:
    rows = await harness.runtime.store.db.fetchall(
        """SELECT content, status, sent_by, error FROM messages
           WHERE direction = 'mt' AND thread_id = ? ORDER BY id""",
        (thread_id,),
    )
    return [dict(row) for row in rows]


async def test_an_operator_reply_reaches_the_handset_and_says_who_sent_it(database):
    async with Harness(BOTS, TEMPLATES, db=database) as harness, client(harness) as c:
        phone = harness.phone(PHONE)
        await phone.send("hello")
        thread = await phone.thread()
        sent = await post(c, thread.id, "reply", text="  Hi, this is Sam from the clinic.  ")
        assert sent.status_code == 303
        assert re.fullmatch(rf"/dashboard/threads/{thread.id}#m\d+", sent.headers["location"])
        await harness.settle()
        assert harness.simulator.inbox(PHONE)[-1].content == "Hi, this is Sam from the clinic."
        last = (await mts(harness, thread.id))[-1]
        assert last == {
            "content": "Hi, this is Sam from the clinic.",
            "status": "accepted",
            "sent_by": "localhost",
            "error": None,
        }
        await phone._refresh()
        await phone.deliver(phone.last, "received")
        page = await c.get(f"/dashboard/threads/{thread.id}")
        assert "sent by localhost" in page.text
        assert "received" in page.text


async def test_a_paused_thread_gets_no_bot_reply_until_handed_back(database):
    async with Harness(BOTS, TEMPLATES, db=database) as harness, client(harness) as c:
        phone = harness.phone(PHONE)
        await phone.send("hello")
        thread = await phone.thread()
        assert thread.state is not None
        assert (await post(c, thread.id, "pause")).status_code == 303
        page = await c.get(f"/dashboard/threads/{thread.id}")
        assert "Taken over by localhost" in page.text and "Hand back to the bot" in page.text

        replies = await phone.send("Ada")
        assert replies == []  # the bot stays quiet
        held = await harness.runtime.store.db.fetchone(
            "SELECT status, thread_id FROM messages WHERE direction = 'mo' ORDER BY id DESC"
        )
        assert (held["status"], held["thread_id"]) == ("handled", thread.id)
        assert (await phone.thread()).state == thread.state  # the bot's state is untouched

        assert (await post(c, thread.id, "resume")).status_code == 303
        replies = await phone.send("Grace")
        assert [r.text for r in replies] == [
            r.text for r in replies if r.text.startswith("Nice to meet you, Grace!")
        ]
        assert len(replies) == 1


async def test_stop_still_works_in_a_paused_thread_and_the_operator_cannot_send_after_it(database):
    async with Harness(BOTS, TEMPLATES, db=database) as harness, client(harness) as c:
        phone = harness.phone(PHONE)
        await phone.send("hello")
        thread = await phone.thread()
        await post(c, thread.id, "pause")
        await phone.send("STOP")
        assert phone.last.template == "compliance/stopped.txt"
        page = await c.get(f"/dashboard/threads/{thread.id}")  # STOP ends the takeover too
        assert "Closed" in page.text and "Hand back to the bot" not in page.text
        paused = await c.get("/dashboard/", params={"status": "paused"})
        assert "No conversations match." in paused.text
        received = len(harness.simulator.inbox(PHONE))

        assert (await post(c, thread.id, "reply", text="Are you sure?")).status_code == 303
        await harness.settle()
        assert len(harness.simulator.inbox(PHONE)) == received  # nothing reached the handset
        last = (await mts(harness, thread.id))[-1]
        assert (last["status"], last["sent_by"]) == ("refused", "localhost")
        assert "opted out" in last["error"]
        page = await c.get(f"/dashboard/threads/{thread.id}")
        assert "refused" in page.text


async def test_a_paused_threads_timers_wait_until_it_is_handed_back(database):
    async with Harness(BOTS, TEMPLATES, db=database) as harness, client(harness) as c:
        phone = harness.phone(PHONE)
        await phone.send("SURVEY")
        thread = await phone.thread()
        await post(c, thread.id, "pause")
        await harness.advance(hours=5)  # the survey's reminder is due after four hours
        assert len(phone.replies) == 1
        await post(c, thread.id, "resume")
        await harness.advance(seconds=1)
        assert len(phone.replies) == 2
        assert phone.replies[1].text == f"Reminder: {phone.replies[0].text}"


@pytest.mark.parametrize(
    ("text", "problem"),
    [("", "Write a reply first."), ("   ", "Write a reply first."), ("x" * 1000, "7 SMS long")],
)
async def test_a_reply_that_cannot_be_sent_is_refused_with_the_reason(text, problem, database):
    async with Harness(BOTS, TEMPLATES, db=database) as harness, client(harness) as c:
        await harness.phone(PHONE).send("hello")
        thread = await harness.phone(PHONE).thread()
        refused = await post(c, thread.id, "reply", text=text)
        assert refused.status_code == 400
        assert problem in refused.text
        assert len(await mts(harness, thread.id)) == 1  # only the bot's greeting


async def test_takeover_forms_need_their_csrf_token_and_a_thread(database):
    async with Harness(BOTS, TEMPLATES, db=database) as harness, client(harness) as c:
        phone = harness.phone(PHONE)
        await phone.send("hello")
        thread = await phone.thread()
        await c.get("/dashboard/")
        for action in ("reply", "pause", "resume"):
            forged = await c.post(f"/dashboard/threads/{thread.id}/{action}", data={"text": "x"})
            assert forged.status_code == 403
        assert len(await mts(harness, thread.id)) == 1
        assert (await phone.thread()).paused_by is None
        page = await c.get(f"/dashboard/threads/{thread.id}")
        token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
        missing = await c.post(
            "/dashboard/threads/999999/reply", data={"csrf": token, "text": "hi"}
        )
        assert missing.status_code == 404


async def test_only_an_open_thread_can_be_taken_over(database):
    async with Harness(BOTS, TEMPLATES, db=database) as harness, client(harness) as c:
        phone = harness.phone(PHONE)
        await phone.send("hello")
        await phone.send("STOP")
        first = await harness.runtime.store.db.fetchval(
            "SELECT id FROM threads WHERE handset = ? ORDER BY id", (PHONE,)
        )
        refused = await post(c, first, "pause")
        assert refused.status_code == 409
        assert "Only an open conversation" in refused.text


async def test_a_long_transcript_is_read_a_page_at_a_time(database):
    async with Harness(BOTS, TEMPLATES, db=database) as harness, client(harness) as c:
        phone = harness.phone(PHONE)
        await phone.send("hello")
        thread = await phone.thread()
        await post(c, thread.id, "pause")  # no replies: one message a text
        for n in range(205):
            await phone.send(f"message {n}")
        latest = await c.get(f"/dashboard/threads/{thread.id}")
        assert latest.text.count('<li class="msg') == 200
        assert "message 204" in latest.text and ">message 4<" not in latest.text
        assert "data-events=" in latest.text  # the latest page is live
        link = re.search(r'rel="prev" href="\?before=(\d+)"', latest.text).group(1)
        earlier = await c.get(f"/dashboard/threads/{thread.id}", params={"before": link})
        assert earlier.text.count('<li class="msg') == 7  # hello, its reply, messages 0-4
        assert ">message 4<" in earlier.text and 'rel="prev"' not in earlier.text
        assert "data-events=" not in earlier.text and "Latest messages" in earlier.text
        api = (await c.get(f"/api/threads/{thread.id}")).json()
        assert len(api["messages"]) == 200 and api["earlier"] == int(link)
        rest = (await c.get(f"/api/threads/{thread.id}", params={"before": link})).json()
        assert len(rest["messages"]) == 7 and rest["earlier"] is None
        assert (await c.get(f"/api/threads/{thread.id}", params={"before": "x"})).status_code == 400


async def test_a_paused_thread_holds_up_no_other_thread_of_the_handset(database):
    harness = Harness(BOTS, TEMPLATES, db=database, numbers="4433,5544")
    async with harness, client(harness) as c:
        phone = harness.phone(PHONE)
        await phone.send("SURVEY", to="4433")
        first = await phone.thread()
        await phone.send("SURVEY", to="5544")
        second = await phone.thread()
        assert first.id != second.id
        await post(c, first.id, "pause")
        await harness.advance(hours=5)  # both surveys' reminders are due
        reminders = [r for r in phone.replies if r.text.startswith("Reminder:")]
        assert [r.thread_id for r in reminders] == [second.id]


async def test_a_takeover_during_the_bots_turn_silences_its_reply(database):
    from botkit import Bot, Context

    bot = Bot("slow")
    running: list[Harness] = []

    @bot.keyword("SLOW")
    async def start(ctx: Context) -> None:
        ctx.reply("Say something.")
        ctx.state = "talking"

    @bot.state("talking")
    async def talking(ctx: Context) -> None:
        # The operator takes the thread over while the handler runs.
        await running[0].runtime.store.takeover.pause(ctx.thread.id, "sam")
        ctx.reply("The bot's answer, too late.")

    async with Harness([bot], TEMPLATES, db=database) as harness:
        running.append(harness)
        phone = harness.phone(PHONE)
        await phone.send("SLOW")
        assert await phone.send("hello?") == []
        thread = await phone.thread()
        assert thread.paused_by == "sam"
        mts = await harness.runtime.store.db.fetchall(
            "SELECT content FROM messages WHERE direction = 'mt'"
        )
        assert [m[0] for m in mts] == ["Say something."]


async def test_an_operator_ends_a_conversation_and_its_bots_on_end_runs(database, caplog):
    async with Harness(BOTS, TEMPLATES, db=database) as harness, client(harness) as c:
        phone = harness.phone(PHONE)
        await phone.send("BOOK")  # the clinic bot: a visit booked, and on_end
        (booked,) = await phone.send("2")
        thread_id = booked.thread_id
        page = await c.get(f"/dashboard/threads/{thread_id}")
        assert "End the conversation" in page.text
        closed = await post(c, thread_id, "close")
        assert closed.status_code == 303
        await harness.settle()
        hook = await harness.runtime.store.db.fetchone(
            "SELECT state, data FROM timers WHERE name = 'botkit:end' AND thread_id = ?",
            (thread_id,),
        )
        assert (hook["state"], hook["data"]) == ("fired", '{"reason": "operator"}')
        assert await harness.runtime.store.timers.pending(thread_id) == []
        page = await c.get(f"/dashboard/threads/{thread_id}")
        assert "End the conversation" not in page.text
        assert "(ended by an operator)" in page.text
        token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
        again = await c.post(f"/dashboard/threads/{thread_id}/close", data={"csrf": token})
        assert again.status_code == 409
        assert "This conversation has ended already." in again.text
        (hello,) = await phone.send("hello")  # a new conversation: not the old one
        assert hello.thread_id != thread_id
        await harness.advance(days=3)
        # The visit is the patient's, not the conversation's: its reminder still comes.
        (reminder,) = [reply for reply in phone.replies if reply.text.startswith("Reminder")]
        assert reminder.thread_id not in (thread_id, hello.thread_id)


async def test_closing_a_conversation_needs_the_csrf_token(database):
    async with Harness(BOTS, TEMPLATES, db=database) as harness, client(harness) as c:
        phone = harness.phone(PHONE)
        await phone.send("hello")
        thread = await phone.thread()
        refused = await c.post(f"/dashboard/threads/{thread.id}/close", data={"csrf": "forged"})
        assert refused.status_code == 403
        assert (await phone.thread()).status == "open"
