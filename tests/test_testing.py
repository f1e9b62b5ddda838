"""botkit.testing itself: errors surface in the test, DLRs and the clock are the test's, and
the simulator plays the account the harness describes (masks, number sequence, expiry)."""

from __future__ import annotations

import asyncio
import tempfile
from datetime import timedelta

import pytest
from conftest import ROOT

from botkit import Bot, Context, testing
from botkit.testing import FakeClock, Harness

pytestmark = pytest.mark.backends

TEMPLATES = ROOT / "templates"
PHONE = "+61400000001"


def echo_bot() -> Bot:
    bot = Bot("echo")

    @bot.keyword("BOOM")
    async def boom(ctx: Context) -> None:
        raise ZeroDivisionError("handler bug")

    @bot.fallback
    async def echo(ctx: Context) -> None:
        ctx.data.setdefault("heard", []).append(ctx.text)
        ctx.reply(f"you said {ctx.text}")

    return bot


async def test_a_handler_exception_fails_the_test_with_that_exception(database):
    async with Harness([echo_bot()], TEMPLATES, db=database) as harness:
        with pytest.raises(ZeroDivisionError, match="handler bug"):
            await harness.phone().send("boom")


async def test_raise_errors_off_leaves_the_mo_failed_with_only_an_apology(database):
    async with Harness([echo_bot()], TEMPLATES, raise_errors=False, db=database) as harness:
        phone = harness.phone()
        (apology,) = await phone.send("boom")
        assert apology.template == "errors/failed.txt"
        status = await harness.runtime.store.db.fetchval(
            "SELECT status FROM messages WHERE direction = 'mo'"
        )
        assert status == "failed"


async def test_a_failed_expectation_shows_the_conversation(database):
    async with Harness([echo_bot()], TEMPLATES, db=database) as harness:
        phone = harness.phone()
        await phone.send("first")
        await phone.send("second")
        with pytest.raises(AssertionError) as failure:
            phone.expect("third")
    message = str(failure.value)
    assert "conversation with +61400000001" in message
    assert "> first\n  < you said first\n  > second\n  < you said second" in message


async def test_reply_to_and_references_reach_the_bot(database):
    async with Harness([echo_bot()], TEMPLATES, db=database, number_sequence=True) as harness:
        phone = harness.phone()
        (first,) = await phone.send("one")
        await phone.send("two")
        await phone.send("three", reply_to=first)
        assert first.reference.startswith(f"t{first.thread_id}.m")
        assert (await phone.thread()).data == {"heard": ["one", "two", "three"]}


async def test_delivery_reports_are_the_tests_to_send(database):
    async with Harness([echo_bot()], TEMPLATES, db=database) as harness:
        phone = harness.phone()
        (reply,) = await phone.send("hi")
        assert reply.statuses == ()
        submitted = await phone.deliver(reply, "submitted")
        failed = await phone.deliver(submitted, "failed")
        # Regression: deliver returned None, and a SentReply is a snapshot that never changes.
        assert (reply.statuses, submitted.statuses) == ((), ("submitted",))
        assert failed == phone.last and failed.statuses == ("submitted", "failed")
        delivery = await harness.runtime.store.db.fetchval(
            "SELECT delivery FROM messages WHERE gateway_id = ?", (reply.id,)
        )
        assert delivery == "failed"


def promo_bot() -> Bot:
    bot = Bot("promo", mask="Shop")

    @bot.fallback
    async def deal(ctx: Context) -> None:
        ctx.reply("For one hour only.", expires=timedelta(hours=1))

    return bot


async def test_a_reply_that_expires_before_it_is_received_never_reaches_the_handset(database):
    async with Harness([promo_bot()], TEMPLATES, db=database) as harness:
        phone = harness.phone()
        (late, in_time) = (await phone.send("deal"))[0], (await phone.send("another"))[0]
        await phone.deliver(in_time, "received")
        await harness.advance(hours=1)  # the simulator tells expiry by the harness's clock
        assert (await phone.deliver(late, "submitted")).statuses == ("expired",)
        await phone.deliver(in_time, "received")  # received before: it stays
        assert [r.id for r in phone.replies] == [in_time.id]
        assert [r.id for r in await harness.replies_to(phone.number)] == [in_time.id]
        assert harness.simulator.sent_by_id[late.id].statuses == ["expired"]
        delivery = await harness.runtime.store.db.fetchval(
            "SELECT delivery FROM messages WHERE gateway_id = ?", (late.id,)
        )
        assert delivery == "expired"
        # The next message goes where the handset's latest (received) reply came from.
        (again,) = await phone.send("again")
        assert again.sender == "4433"


@pytest.mark.parametrize("to", ["+61 400 999 000", "0400999000", "0061400999000"])
async def test_a_phone_texts_our_number_in_any_spelling(database, to):
    """Regression: to="+61 400 999 000" reached the app as written, which answered 400;
    to="0400999000" raised ValueError."""
    numbers = "4433,+61400999000"
    async with Harness([echo_bot()], TEMPLATES, db=database, numbers=numbers) as harness:
        phone = harness.phone()
        (reply,) = await phone.send("hi", to=to)
        assert reply.sender == "+61400999000"
        assert harness.simulator.mos[0].destination == "+61400999000"
        with pytest.raises(ValueError, match=r"'0400999001' is not one of our numbers \(4433, "):
            await phone.send("hi", to="0400999001")


@pytest.mark.parametrize(
    ("masks", "sender"), [((), "4433"), (("Shop",), "Shop"), (("shop",), "4433")]
)
async def test_a_mask_shows_only_if_the_account_has_it(database, masks, sender):
    async with Harness([promo_bot()], TEMPLATES, db=database, masks=masks) as harness:
        (reply,) = await harness.phone().send("deal")
        assert reply.sender == sender
        assert harness.simulator.sent_by_id[reply.id].mask == "Shop"


async def test_without_a_number_sequence_mos_name_no_mt(database):
    async with Harness([echo_bot()], TEMPLATES, db=database) as harness:
        phone = harness.phone()
        (first,) = await phone.send("one")
        await phone.send("two")
        assert [mo.reply_to for mo in harness.simulator.mos] == [None, None]
        with pytest.raises(ValueError, match="reply_to needs number_sequence=True"):
            await phone.send("three", reply_to=first)


async def test_the_clock_stands_still_until_moved(database):
    clock = FakeClock()
    async with Harness([echo_bot()], TEMPLATES, clock=clock, db=database) as harness:
        start = clock()
        await harness.phone().send("hi")
        assert clock() == start
        await harness.advance(hours=2)
        assert (clock() - start).total_seconds() == 7200
        stamps = await harness.runtime.store.db.fetchall("SELECT created_at FROM messages")
        assert {row[0] for row in stamps} == {"2026-01-05T09:00:00.000000Z"}
    with pytest.raises(ValueError):
        clock.advance(-1)


def slow_bot(gate: asyncio.Event | None, seconds: float = 0.0) -> Bot:
    """A bot whose handler waits for `gate` (None: does not wait), then `seconds` more."""
    bot = Bot("slow")

    @bot.fallback
    async def slow(ctx: Context) -> None:
        if gate is not None:
            await gate.wait()
        await asyncio.sleep(seconds)  # slow work, not a wait for something
        ctx.reply("done")

    return bot


async def test_settling_fails_when_nothing_moves_for_the_settle_timeout(database, monkeypatch):
    monkeypatch.setattr(testing, "SETTLE_TIMEOUT", 0.5)
    gate = asyncio.Event()
    async with Harness([slow_bot(gate)], TEMPLATES, db=database) as harness:
        with pytest.raises(TimeoutError, match="not settled: 1 MOs"):
            await harness.phone().send("hi")
        gate.set()  # the handler goes on: the harness stops cleanly
        await harness.settle()


async def test_settling_waits_as_long_as_the_work_goes_down(database, monkeypatch):
    """Four MOs of one handset, handled one at a time, 0.4 s each: longer in all than the
    settle timeout of 1 s, each step well within it."""
    monkeypatch.setattr(testing, "SETTLE_TIMEOUT", 1.0)
    async with Harness([slow_bot(None, 0.4)], TEMPLATES, db=database) as harness:
        for n in range(4):
            await harness.simulator.send_mo(PHONE, f"hi {n}")
        await harness.settle()
        assert len(await harness.replies_to(PHONE)) == 4


# Settings: botkit.toml and the environment, as `botkit run` reads them.


async def test_the_harness_reads_botkit_toml_in_the_current_folder(tmp_path, monkeypatch):
    """Regression: the harness read neither botkit.toml nor BOTKIT_*, so a project that
    freed CANCEL from the stop words saw it opt handsets out in its tests only."""
    (tmp_path / "botkit.toml").write_text('stop_words = ["HALT"]\nsender_name = "Pizza Co"\n')
    monkeypatch.chdir(tmp_path)
    async with Harness([echo_bot()], TEMPLATES) as harness:
        phone = harness.phone()
        await phone.send("cancel")
        phone.expect("you said cancel")
        await phone.send("halt")
        phone.expect("unsubscribed from Pizza Co")


async def test_config_names_another_file_and_the_environment_is_over_it(tmp_path, monkeypatch):
    config = tmp_path / "elsewhere.toml"
    config.write_text('help_words = ["AIDE"]\nsender_name = "From the file"\n')
    monkeypatch.setenv("BOTKIT_SENDER_NAME", "From the environment")
    async with Harness([echo_bot()], TEMPLATES, config=config) as harness:
        (reply,) = await harness.phone().send("aide")
        assert reply.text.startswith("From the environment: reply STOP to unsubscribe")


async def test_keywords_of_the_harness_win_over_file_and_environment(tmp_path, monkeypatch):
    (tmp_path / "botkit.toml").write_text('sender_name = "From the file"\n')
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BOTKIT_SENDER_NAME", "From the environment")
    monkeypatch.setenv("BOTKIT_DB", str(tmp_path / "not-this.db"))
    async with Harness([echo_bot()], TEMPLATES, sender_name="From the test") as harness:
        (reply,) = await harness.phone().send("help")
        assert reply.text.startswith("From the test:")
        assert harness.runtime.settings.db != str(tmp_path / "not-this.db")
    assert not (tmp_path / "not-this.db").exists()  # the harness keeps its own database


async def test_gateway_settings_of_the_developer_are_ignored(tmp_path, monkeypatch):
    """A shell set up for production (credentials, gateway URL, allow-list) or a
    botkit.toml that names the gateway changes nothing: the harness plays the simulator."""
    (tmp_path / "botkit.toml").write_text('application = "prod"\ncallback_allow = ["10.0.0.0/8"]\n')
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BOTKIT_PASSWORD", "secret")
    monkeypatch.setenv("BOTKIT_GATEWAY_URL", "http://gateway.example/message")
    async with Harness([echo_bot()], TEMPLATES) as harness:
        settings = harness.runtime.settings
        assert settings.simulator_mode and settings.callback_allow == ()
        (reply,) = await harness.phone().send("hi")
        assert reply.text == "you said hi"


def test_gateway_settings_as_keywords_are_refused():
    with pytest.raises(TypeError, match=r"plays the gateway simulator itself: drop \['appl"):
        Harness([echo_bot()], TEMPLATES, application="prod", password="secret")


async def test_folders_default_to_those_of_the_settings(tmp_path, monkeypatch):
    (tmp_path / "src" / "bots").mkdir(parents=True)
    (tmp_path / "src" / "bots" / "hi.py").write_text(
        "from botkit import Bot, Context\n\nbot = Bot('hi')\n\n\n"
        "@bot.fallback\nasync def hi(ctx: Context) -> None:\n    ctx.reply('hi/hello.txt')\n"
    )
    (tmp_path / "src" / "texts" / "hi").mkdir(parents=True)
    (tmp_path / "src" / "texts" / "hi" / "hello.txt").write_text("Hello from src!\n")
    (tmp_path / "botkit.toml").write_text('bots = "src/bots"\ntemplates = "src/texts"\n')
    monkeypatch.chdir(tmp_path)
    async with Harness() as harness:
        (reply,) = await harness.phone().send("hey")
        assert (reply.template, reply.text) == ("hi/hello.txt", "Hello from src!")


async def test_bots_that_do_not_load_leave_no_temporary_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # this test's folders only
    with pytest.raises(ValueError, match="two bots are named 'echo'"):
        async with Harness([echo_bot(), echo_bot()], TEMPLATES):
            pass
    assert list(tmp_path.glob("botkit-test-*")) == []
