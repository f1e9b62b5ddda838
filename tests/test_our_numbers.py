"""Our numbers: every MT goes from the number its conversation is on, named as the spec
says (class for the default, source for the others), and consent is checked against
that number on every path: a bot's reply, a timer, a survey, an opt-in, a compliance
reply, an operator's reply and a broadcast."""

from __future__ import annotations

import logging
import os
import subprocess
from datetime import timedelta

import httpx
import pytest
from conftest import ROOT, eventually, rows
from servers import BOTKIT

from botkit import Bot, Context, Settings
from botkit.addresses import Origin, OurNumbers
from botkit.broadcast import Row, broadcast
from botkit.errors import ValidationError
from botkit.loader import load_bots
from botkit.messages import ConsentChange
from botkit.store.broadcasts import Plan
from botkit.testing import Harness

pytestmark = pytest.mark.backends

PHONE = "+61400000001"
DEFAULT, OTHER = "4433", "+61400999000"
NUMBERS = f"{DEFAULT},{OTHER}"


def surgery() -> Bot:
    bot = Bot("surgery")

    @bot.keyword("APPOINT")
    async def book(ctx: Context) -> None:
        ctx.reply("Booked. We will remind you.")
        ctx.schedule("remind", hours=1)

    @bot.timer("remind")
    async def remind(ctx: Context) -> None:
        ctx.reply("Your visit is soon.")

    @bot.keyword("PROMO")
    async def promo(ctx: Context) -> None:
        ctx.reply("20% off this week.", mask="ClinicCo")

    @bot.keyword("WHERE")
    async def where(ctx: Context) -> None:
        mask = "ClinicCo" if ctx.number == ctx.numbers.default else None
        ctx.reply(f"You texted {ctx.number}.", mask=mask)

    @bot.keyword("SOON")
    async def soon(ctx: Context) -> None:
        ctx.reply("Only for two hours.", expires=timedelta(hours=2))

    return bot


class harness(Harness):
    """The example bots and a surgery, on our two numbers."""

    def __init__(self, database: str, *bots: Bot) -> None:
        bots = (surgery(), *load_bots(ROOT / "bots"), *bots)
        super().__init__(bots, ROOT / "templates", db=database, numbers=NUMBERS)


def request_of(harness: Harness, reply) -> tuple[str | None, str | None, str | None]:
    """(class, source, mask) of the request that sent `reply`."""
    sent = harness.simulator.sent_by_id[reply.id]
    return sent.message_class, sent.source, sent.mask


async def opt_out(harness: Harness, number: str, address: str) -> None:
    """An opt-out given outside SMS (a web form): it closes no conversation."""
    change = ConsentChange(number, address, "opt-out", "web")
    await harness.runtime.store.consent.record(change)


async def mt_rows(harness: Harness) -> list[tuple[str, str, str | None, str | None]]:
    """(content, status, address, source) of every MT, oldest first."""
    found = await harness.runtime.store.db.fetchall(
        "SELECT content, status, address, source FROM messages WHERE direction = 'mt' ORDER BY id"
    )
    return [tuple(row) for row in found]


def test_the_default_goes_by_class_the_others_by_source():
    numbers = OurNumbers(["4433", "+61 400 999 000"], message_class="mt_message")
    assert numbers.numbers == ("4433", "+61400999000") and numbers.default == "4433"
    assert numbers.origin() == Origin("4433", message_class="mt_message")
    assert numbers.origin("4433", mask="Acme") == Origin("4433", "mt_message", None, "Acme")
    assert numbers.origin("+61400999000") == Origin("+61400999000", source="+61400999000")
    assert numbers.origin("61400999000") == Origin("+61400999000", source="+61400999000")
    # A number BOTKIT_NUMBERS lacks (a handset texted it): named as it came.
    assert numbers.origin("7777") == Origin("7777", source="7777")
    with pytest.raises(ValidationError, match="mask goes only on messages from the default"):
        numbers.origin("+61400999000", mask="Acme")
    with pytest.raises(ValidationError, match=r"'5000' is not one of our numbers \(4433, \+61"):
        numbers.ours("5000")


@pytest.mark.parametrize(
    "given, reason",
    [
        ("0400 999 000", "international format"),
        ("12", "neither a short code"),
        ("123456789", "neither a short code"),
        ("4433,4433", "names 4433 twice"),
        ("+61400999000,+61 400 999 000", "twice"),
        ("61400999000", "international format"),
        ("4433,", None),  # a trailing comma is no number
    ],
)
def test_numbers_that_are_not_numbers_are_refused(given, reason):
    if reason is None:
        assert OurNumbers([n for n in given.split(",") if n], message_class="c").numbers
        return
    with pytest.raises(ValidationError, match=reason) as info:
        OurNumbers(given.split(","), message_class="c")
    assert info.value.field == "BOTKIT_NUMBERS"


async def test_a_reply_goes_from_the_number_the_handset_texted(database):
    async with harness(database) as h:
        phone = h.phone(PHONE)
        (to_default,) = await phone.send("HELLO", to=DEFAULT)
        assert request_of(h, to_default) == ("mt_message", None, None)
        assert to_default.sender == DEFAULT
        (to_other,) = await phone.send("APPOINT", to=OTHER)
        assert request_of(h, to_other) == (None, OTHER, None)
        assert to_other.sender == OTHER
        await h.advance(hours=1)  # the timer's reply: the thread's number too
        assert phone.last.text == "Your visit is soon."
        assert request_of(h, phone.last) == (None, OTHER, None)
        assert [(r[2], r[3]) for r in await mt_rows(h)] == [
            (DEFAULT, None),
            (OTHER, OTHER),
            (OTHER, OTHER),
        ]


async def test_stop_to_one_number_refuses_every_path_from_it_and_only_it(database):
    async with harness(database) as h:
        phone = h.phone(PHONE)
        await phone.send("APPOINT", to=OTHER)  # a reminder is pending in a thread on OTHER
        (confirmation,) = await phone.send("STOP", to=OTHER)
        assert confirmation.sender == OTHER  # the confirmation: from where STOP went
        assert request_of(h, confirmation) == (None, OTHER, None)
        before = len(h.simulator.inbox(PHONE))
        # A bot's reply, a survey's first question, an opt-in's confirmation request and
        # the help text: none goes from OTHER.
        for text in ("HELLO", "SURVEY", "JOIN", "HELP"):
            assert await phone.send(text, to=OTHER) == []
        await h.advance(hours=2)
        assert len(h.simulator.inbox(PHONE)) == before
        refused = [r for r in await mt_rows(h) if r[1] == "refused"]
        assert len(refused) == 4 and {r[2] for r in refused} == {OTHER}
        # The default number is another matter: STOP said nothing about it.
        (hello,) = await phone.send("HELLO", to=DEFAULT)
        assert hello.sender == DEFAULT


async def test_an_opt_out_given_elsewhere_holds_for_timers_surveys_and_operators(database):
    async with harness(database) as h:
        phone = h.phone(PHONE)
        await phone.send("APPOINT", to=OTHER)
        (question,) = await phone.send("SURVEY", to=DEFAULT)
        await opt_out(h, PHONE, OTHER)
        await h.advance(hours=1)  # the reminder of the thread on OTHER: refused
        assert phone.last == question
        # The survey on DEFAULT goes on; an opt-out of DEFAULT then stops it too.
        (follow_up,) = await phone.send("5", to=DEFAULT)
        assert follow_up.sender == DEFAULT
        await opt_out(h, PHONE, DEFAULT)
        assert await phone.send("the staff", to=DEFAULT) == []
        # An operator's reply in the thread on OTHER is refused as well.
        thread_id = (await h.runtime.store.threads.open_for(PHONE, OTHER)).id
        mt_id = await h.runtime.store.takeover.reply(thread_id, "hi", "ops", h.runtime.numbers)
        await h.settle()
        (status,) = rows(
            h.runtime.settings.db, "SELECT status FROM messages WHERE id = ?", (mt_id,)
        )
        assert status[0] == "refused"
        statuses = [r[1] for r in await mt_rows(h)]
        assert statuses.count("refused") == 3


async def test_stopall_refuses_every_number_and_start_lifts_one(database):
    async with harness(database) as h:
        phone = h.phone(PHONE)
        (confirmation,) = await phone.send("STOPALL", to=DEFAULT)
        assert confirmation.template == "compliance/stopped_all.txt"
        assert "no more messages from any of our numbers" in confirmation.text
        assert await phone.send("HELLO", to=OTHER) == []
        (started,) = await phone.send("START", to=OTHER)
        assert started.sender == OTHER
        (hello,) = await phone.send("HELLO", to=OTHER)
        assert hello.sender == OTHER
        assert await phone.send("HELLO", to=DEFAULT) == []
        ledger = [(r["address"], r["action"]) for r in await h.runtime.store.consent.ledger()]
        assert ledger == [("*", "opt-out"), (OTHER, "opt-in")]


async def test_the_broadcast_reproduction_skips_the_handset_that_stopped(database, tmp_path):
    (tmp_path / "sale.txt").write_text("Sale on now\n")
    async with Harness([], tmp_path, db=database, numbers=NUMBERS) as h:
        runtime = h.runtime
        phone = h.phone(PHONE)

        async def send(name: str):
            plan = Plan(name=name, address=OTHER, template="sale.txt")
            report = await broadcast(
                runtime.store, runtime.templates, plan, [Row(2, PHONE)], numbers=runtime.numbers
            )
            await h.settle()
            return report

        first = await send("first")
        assert (first.queued, first.skipped) == (1, 0)
        (sale,) = await h.replies_to(PHONE)
        assert (sale.sender, request_of(h, sale)) == (OTHER, (None, OTHER, None))
        # The handset answers STOP to the number the sale came from.
        await phone.send("STOP")
        assert (phone.last.template, phone.last.sender) == ("compliance/stopped.txt", OTHER)
        second = await send("second")
        assert (second.queued, second.skipped) == (0, 1)
        assert len(h.simulator.inbox(PHONE)) == 2
        with pytest.raises(ValidationError, match=r"'5000' is not one of our numbers"):
            plan = Plan(name="third", address="5000", template="sale.txt")
            await broadcast(runtime.store, runtime.templates, plan, [], numbers=runtime.numbers)
        names = await runtime.store.db.fetchall("SELECT name FROM broadcasts ORDER BY id")
        assert [n[0] for n in names] == ["first", "second"]  # nothing of the third


async def queued_while_the_sender_is_stopped(h: Harness, text: str, to: str) -> None:
    """Text the bots with the sender stopped: the reply waits in the outbox."""
    await h.runtime.sender.stop()
    await h.simulator.send_mo(PHONE, text, destination=to)
    await eventually(lambda: rows(h.runtime.settings.db, "SELECT 1 FROM outbox"))


async def test_an_mt_naming_a_class_is_checked_against_the_default_when_sent(database):
    """An MT queued by class goes from whatever number is the default when it is sent:
    after BOTKIT_NUMBERS changed its default, consent is checked against the new one."""
    async with harness(database) as h:
        await queued_while_the_sender_is_stopped(h, "HELLO", DEFAULT)
        await opt_out(h, PHONE, OTHER)
        # Started again with OTHER first: the class now sends from OTHER.
        assert await h.runtime.store.outbox.claim(1, lease=60, default=OTHER) == []
        assert [(r[1], r[2]) for r in await mt_rows(h)] == [("refused", DEFAULT)]


async def test_a_mask_goes_with_the_class_from_the_default_number_only(database):
    async with harness(database) as h:
        phone = h.phone(PHONE)
        (promo,) = await phone.send("PROMO", to=DEFAULT)
        assert request_of(h, promo) == ("mt_message", None, "ClinicCo")
        (row,) = rows(h.runtime.settings.db, "SELECT mask FROM messages WHERE direction = 'mt'")
        assert row[0] == "ClinicCo"
        # From another number the gateway would refuse it: the MO fails, visibly.
        with pytest.raises(ValidationError, match="a mask goes only on messages from the default"):
            await phone.send("PROMO", to=OTHER)
        failed = rows(
            h.runtime.settings.db,
            "SELECT status, error FROM messages WHERE direction = 'mo' AND content = 'PROMO' "
            "ORDER BY id",
        )
        assert [f[0] for f in failed] == ["handled", "failed"]
        assert "mask goes only on messages from the default number 4433" in failed[1][1]


async def test_a_handler_knows_its_number_and_masks_only_where_it_can(database):
    async with harness(database) as h:
        phone = h.phone(PHONE)
        (here,) = await phone.send("WHERE", to=DEFAULT)
        (there,) = await phone.send("WHERE", to=OTHER)
        assert (here.text, request_of(h, here)) == (
            "You texted 4433.",
            ("mt_message", None, "ClinicCo"),
        )
        assert (there.text, request_of(h, there)) == (f"You texted {OTHER}.", (None, OTHER, None))


async def test_expires_is_sent_and_a_bot_sets_defaults(database):
    promo = Bot("promo", mask="Shop", expires=timedelta(hours=24))

    @promo.keyword("DEAL")
    async def deal(ctx: Context) -> None:
        ctx.reply("A deal for you.")
        ctx.reply("A shorter one.", expires=timedelta(minutes=30))

    async with harness(database, promo) as h:
        now, phone = h.clock.now, h.phone(PHONE)
        first, second = await phone.send("DEAL", to=DEFAULT)
        sent = [h.simulator.sent_by_id[r.id] for r in (first, second)]
        assert [s.mask for s in sent] == ["Shop", "Shop"]
        stamps = [
            (now + delta).isoformat() for delta in (timedelta(hours=24), timedelta(minutes=30))
        ]
        assert [s.expires for s in sent] == stamps
        (soon,) = await phone.send("SOON", to=OTHER)
        assert h.simulator.sent_by_id[soon.id].expires == (now + timedelta(hours=2)).isoformat()


def test_a_bot_refuses_defaults_no_request_could_carry():
    with pytest.raises(ValueError, match="give a sender name"):
        Bot("x", mask=" ")
    with pytest.raises(ValueError, match="must live for some time"):
        Bot("x", expires=timedelta(0))
    with pytest.raises(TypeError, match="timedelta or an aware datetime"):
        Bot("x", expires=3600)


async def test_an_mt_whose_expiry_passed_while_it_waited_is_not_sent(database):
    async with harness(database) as h:
        await queued_while_the_sender_is_stopped(h, "SOON", DEFAULT)
        h.clock.advance(hours=3)
        assert await h.runtime.store.outbox.claim(1, lease=60, default=DEFAULT) == []
        ((status, error),) = rows(
            h.runtime.settings.db, "SELECT status, error FROM messages WHERE direction = 'mt'"
        )
        assert status == "failed" and error.startswith("expired at ")
        assert h.simulator.sent == []


async def test_a_number_we_do_not_list_is_answered_from_itself_and_warned_once(database, caplog):
    async with harness(database) as h:
        h.simulator.numbers = (*h.simulator.numbers, "7777")  # the account has it, we forgot
        phone = h.phone(PHONE)
        with caplog.at_level(logging.WARNING, logger="botkit.addresses"):
            (first,) = await phone.send("HELLO", to="7777")
            await phone.send("Ada", to="7777")
        assert request_of(h, first) == (None, "7777", None)
        warnings = [r for r in caplog.records if r.name == "botkit.addresses"]
        assert len(warnings) == 1 and "7777, which is not in BOTKIT_NUMBERS" in warnings[0].message


@pytest.mark.parametrize(
    "env, message",
    [
        ({}, "botkit: BOTKIT_NUMBERS: is required with gateway credentials"),
        ({"BOTKIT_NUMBERS": "0400999000"}, "is neither a short code"),
        ({"BOTKIT_NUMBERS": "4433", "BOTKIT_SOURCE": "4433"}, "BOTKIT_SOURCE: is gone"),
        (
            {"BOTKIT_NUMBERS": "4433", "BOTKIT_GATEWAY_URL": "http://gateway.example/message"},
            "is plain http to another machine",
        ),
    ],
)
def test_botkit_run_with_credentials_refuses_to_start_without_its_numbers(tmp_path, env, message):
    environ = {
        **os.environ,
        "BOTKIT_APPLICATION": "acme",
        "BOTKIT_PASSWORD": "Sekr1t-pw",
        "BOTKIT_CALLBACK_TOKEN": "tok",
        "BOTKIT_DB": str(tmp_path / "botkit.db"),
        "BOTKIT_BOTS": str(ROOT / "bots"),  # tests run from an empty folder
        **env,
    }
    done = subprocess.run(
        [BOTKIT, "run", "--port", "9"], env=environ, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert done.stderr.startswith(message if message.startswith("botkit:") else "botkit: ")
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert "Sekr1t-pw" not in done.stderr + done.stdout


@pytest.mark.parametrize(
    "url",
    ["https://api.sms.optus.com.au/message", "http://127.0.0.1:9/message", "http://localhost/m"],
)
def test_https_or_this_machine_is_where_the_password_may_go(url):
    settings = Settings.load(
        environ={"BOTKIT_APPLICATION": "a", "BOTKIT_PASSWORD": "p", "BOTKIT_GATEWAY_URL": url},
        config_file="/nonexistent/botkit.toml",
    )
    assert settings.gateway_url == url
    # In simulator mode no password travels: any URL is only a setting.
    assert Settings.load(environ={"BOTKIT_GATEWAY_URL": "http://x/m"}).gateway_url == "http://x/m"


def test_simulator_mode_is_on_4433_unless_told():
    assert Settings.load(environ={}, config_file="/nonexistent/botkit.toml").numbers == ("4433",)
    told = Settings.load(environ={"BOTKIT_NUMBERS": " +61 400 999 000 , 4433"}).numbers
    assert told == ("+61400999000", "4433")


async def gateway_mo(h: Harness, gateway_id: int, destination: str, content: str) -> None:
    """An MO callback as a gateway that spells our number its own way would make it."""
    transport = httpx.ASGITransport(app=h.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        params = {"id": str(gateway_id), "source": PHONE, "destination": destination}
        answer = await client.get("/callbacks/harness/mo", params={**params, "content": content})
        assert answer.status_code == 200
    await h.settle()


async def test_our_number_spelled_without_its_plus_is_one_conversation(database):
    async with harness(database) as h:
        phone = h.phone(PHONE)
        (ask,) = await phone.send("HELLO", to=OTHER)
        await gateway_mo(h, 7300000000009, OTHER.removeprefix("+"), "Ada")
        greet = (await h.replies_to(PHONE))[-1]
        assert greet.template == "hello/greet.txt" and greet.thread_id == ask.thread_id
        assert request_of(h, greet) == (None, OTHER, None)
        (mo,) = rows(h.runtime.settings.db, "SELECT address FROM messages WHERE content = 'Ada'")
        assert mo[0] == OTHER.removeprefix("+")  # the MO as it came


@pytest.mark.parametrize("spelled", ["0400999000", "0061400999000", "61400999000"])
async def test_stop_to_our_number_in_any_spelling_stops_that_number(database, spelled):
    """However the gateway writes our number in an MO, a STOP to it is a STOP to it."""
    async with harness(database) as h:
        await gateway_mo(h, 7300000000003, spelled, "STOP")
        (stopped,) = h.simulator.inbox(PHONE)
        assert stopped.source == OTHER  # confirmed from our number, spelled as configured
        await h.phone(PHONE).send("HELLO", to=OTHER)
        assert len(h.simulator.inbox(PHONE)) == 1  # the bot's answer was refused
        opt_outs, _ = await h.runtime.store.consent.opt_outs()
        assert [(o.handset, o.address) for o in opt_outs] == [(PHONE, OTHER)]
