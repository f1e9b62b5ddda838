"""The events as bots cause them, received by the test harness (`harness.webhooks`, each
signature checked) on both backends: a survey completed, conversations ended for each
reason, an opt-out only when it changes consent; and a webhook added to the database."""

from __future__ import annotations

import pytest
from conftest import ROOT

from botkit.testing import Harness

pytestmark = pytest.mark.backends

BOTS, TEMPLATES = ROOT / "bots", ROOT / "templates"
SECRET = "whsec_0123456789abcdef"
URL = "https://crm.example/botkit?key=1"
HANDSET = "+61400000001"


def harness(database: str, events: str) -> Harness:
    return Harness(
        BOTS,
        TEMPLATES,
        db=database,
        webhook_url=URL,
        webhook_secret=SECRET,
        webhook_events=events,
    )


def kinds(h: Harness) -> list[str]:
    return [hook.type for hook in h.webhooks]


async def test_a_completed_survey_then_its_thread_ended(database):
    async with harness(database, "survey.completed,thread.ended,mo.received") as h:
        phone = h.phone(HANDSET)
        for text in ("SURVEY", "5", "the coffee", "YES"):
            await phone.send(text)
        assert kinds(h) == ["mo.received"] * 4 + ["survey.completed", "thread.ended"]
        first, *_, completed, ended = h.webhooks
    assert first.data == {
        "message_id": first.data["message_id"],
        "gateway_id": first.data["gateway_id"],
        "handset": HANDSET,
        "number": "4433",
        "text": "SURVEY",
        "binary": False,
        "operator": "Telstra",
        "reply_to": None,
        "reference": None,
    }
    thread = completed.data["thread_id"]
    assert completed.data == {
        "survey": "satisfaction",
        "thread_id": thread,
        "handset": HANDSET,
        "number": "4433",
        "answers": {"rating": 5, "liked": "the coffee", "recommend": True},
    }
    assert ended.data == {
        "thread_id": thread,
        "handset": HANDSET,
        "number": "4433",
        "bot": "survey",
        "reason": "ended",
    }
    assert completed.url == URL and completed.id != ended.id
    assert completed.payload["created_at"] == "2026-01-05T09:00:00.000000Z"


async def test_an_expired_survey_ends_its_thread_and_completes_nothing(database):
    async with harness(database, "survey.completed,thread.ended") as h:
        await h.phone(HANDSET).send("SURVEY")
        await h.advance(days=2)
        assert [(hook.type, hook.data["reason"]) for hook in h.webhooks] == [
            ("thread.ended", "expired")
        ]


async def test_stop_opts_out_once_and_ends_the_open_conversations(database):
    async with harness(database, "contact.opted_out,thread.ended") as h:
        phone = h.phone(HANDSET)
        await phone.send("HELLO")
        await phone.send("STOP")
        await phone.send("STOP")  # nothing changes: no event
        await phone.send("STOPALL")
        assert [(hook.type, hook.data.get("reason")) for hook in h.webhooks] == [
            ("contact.opted_out", None),
            ("thread.ended", "opted_out"),
            ("contact.opted_out", None),
        ]
        out, ended, everywhere = h.webhooks
    assert out.data == {
        "handset": HANDSET,
        "number": "4433",
        "keyword": "STOP",
        "source": "sms",
        "message_id": out.data["message_id"],
    }
    assert ended.data["bot"] == "hello"
    assert (everywhere.data["number"], everywhere.data["keyword"]) == ("*", "STOPALL")


async def test_an_operator_closing_a_conversation(database):
    async with harness(database, "thread.ended") as h:
        await h.phone(HANDSET).send("HELLO")
        thread = await h.phone(HANDSET).thread()
        assert await h.runtime.store.takeover.close(thread.id)
        assert not await h.runtime.store.takeover.close(thread.id)  # ended already
        await h.settle()
        assert [(hook.data["thread_id"], hook.data["reason"]) for hook in h.webhooks] == [
            (thread.id, "operator")
        ]


async def test_a_webhook_of_the_database_is_delivered_through_the_harness_too(database):
    async with Harness(BOTS, TEMPLATES, db=database) as h:
        await h.phone(HANDSET).send("HELLO")  # nobody subscribes yet
        store = h.runtime.store
        await store.webhooks.add("https://other.example/in", SECRET, ("mo.received",))
        await h.runtime.webhooks.refresh()
        await h.phone(HANDSET).send("Ada")
        (hook,) = h.webhooks
    assert (hook.url, hook.type, hook.data["text"]) == (
        "https://other.example/in",
        "mo.received",
        "Ada",
    )
