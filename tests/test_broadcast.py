"""Broadcasts: one copy each, never to an opted-out handset, resumable, quiet hours."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from conftest import ROOT, rows

from botkit import Bot, Context
from botkit.broadcast import QuietHours, Row, broadcast, read_csv
from botkit.errors import ValidationError
from botkit.messages import ConsentChange
from botkit.store.broadcasts import Plan
from botkit.testing import FakeClock, Harness

pytestmark = pytest.mark.backends

TEMPLATES = ROOT / "templates"
PHONE = "+61400000001"


def numbers(count: int) -> list[str]:
    return [f"+614{n:08d}" for n in range(1, count + 1)]


async def run(harness: Harness, plan: Plan, rows, **options):
    runtime = harness.runtime
    report = await broadcast(
        runtime.store,
        runtime.templates,
        plan,
        rows,
        numbers=runtime.numbers,
        **options,
    )
    await harness.settle()
    return report


def sent_to(harness: Harness) -> list[str]:
    return [m.destination for m in harness.simulator.sent]


async def test_a_broadcast_to_1000_with_10_opted_out_sends_exactly_990(tmp_path, database):
    (tmp_path / "sale").mkdir()
    (tmp_path / "sale" / "spring.txt").write_text("Spring sale, {{ name }}! Reply STOP to end.\n")
    everyone = numbers(1000)
    async with Harness([], tmp_path, db=database) as harness:
        for number in everyone[::100]:
            await harness.runtime.store.consent.record(
                ConsentChange(number, "4433", "opt-out", "import")
            )
        rows = [Row(i + 2, n, {"name": f"friend {i}"}) for i, n in enumerate(everyone)]
        plan = Plan(name="spring", address="4433", template="sale/spring.txt")
        report = await run(harness, plan, rows)
        assert (report.queued, report.skipped, report.invalid) == (990, 10, [])
        sent = sent_to(harness)
        assert len(sent) == len(set(sent)) == 990
        assert not set(sent) & set(everyone[::100])
        assert harness.simulator.sent[0].content == "Spring sale, friend 1! Reply STOP to end."

        again = await run(harness, plan, rows)  # run twice: nobody gets a second copy
        assert (again.queued, again.already) == (0, 1000)
        assert len(sent_to(harness)) == 990
        summary = await harness.runtime.store.broadcasts.summary(
            await harness.runtime.store.broadcasts.open(plan)
        )
        assert summary == {"accepted": 990, "skipped": 10}


async def test_each_recipient_gets_the_template_in_their_contacts_language(tmp_path, database):
    (tmp_path / "sale").mkdir()
    (tmp_path / "sale" / "spring.txt").write_text("Spring sale, {{ contact.name or 'friend' }}!")
    (tmp_path / "sale" / "spring.es.txt").write_text("¡Rebajas, {{ contact.name }}!")
    async with Harness([], tmp_path, db=database) as harness:
        await harness.phone(PHONE).update_contact(name="Ana", language="es")
        plan = Plan(name="spring", address="4433", template="sale/spring.txt")
        report = await run(harness, plan, [Row(2, PHONE), Row(3, "+61400000002")])
        assert report.queued == 2
        texts = {m.destination: m.content for m in harness.simulator.sent}
        assert texts == {PHONE: "¡Rebajas, Ana!", "+61400000002": "Spring sale, friend!"}


async def test_an_interrupted_broadcast_resumes_where_it_stopped(tmp_path, database):
    (tmp_path / "news.txt").write_text("News!\n")
    everyone = numbers(300)
    rows = [Row(i + 2, n) for i, n in enumerate(everyone)]
    plan = Plan(name="news", address="4433", template="news.txt")
    async with Harness([], tmp_path, db=database) as harness:
        await run(harness, plan, rows[:120])  # the first run stopped here
        report = await run(harness, plan, rows)
        assert (report.queued, report.already) == (180, 120)
        sent = sent_to(harness)
        assert sorted(sent) == sorted(everyone)


async def test_bad_numbers_are_reported_with_their_lines_and_the_rest_sent(tmp_path, database):
    (tmp_path / "hi.txt").write_text("Hi\n")
    csv_file = tmp_path / "people.csv"
    csv_file.write_text("number,name\n+61400000001,Ann\n0400000002,Bob\n+61,Cy\n+64211234567,Di\n")
    async with Harness([], tmp_path, db=database) as harness:
        report = await run(
            harness, Plan(name="hi", address="4433", template="hi.txt"), read_csv(csv_file)
        )
        assert report.queued == 2
        assert [line for line, _ in report.invalid] == [3, 4]
        assert sorted(sent_to(harness)) == ["+61400000001", "+64211234567"]


async def test_a_csv_without_a_number_column_is_refused(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("phone\n+61400000001\n")
    with pytest.raises(ValidationError, match="'number' column"):
        read_csv(path)


async def test_expires_reaches_the_gateway(tmp_path, database):
    (tmp_path / "hi.txt").write_text("Hi\n")
    plan = Plan(name="x", address="4433", template="hi.txt", expires="2026-01-06T09:00:00+11:00")
    async with Harness([], tmp_path, db=database) as harness:
        await run(harness, plan, [Row(2, "+61400000001")])
        assert harness.simulator.sent[0].expires == "2026-01-06T09:00:00+11:00"


async def test_quiet_hours_hold_a_message_until_the_recipients_morning(tmp_path, database):
    (tmp_path / "hi.txt").write_text("Good morning\n")
    # 10:00 UTC is 21:00 in Sydney (summer): quiet there; 23:00 in Auckland: quiet too.
    clock = FakeClock(datetime(2026, 1, 5, 10, 0, tzinfo=UTC))
    quiet = QuietHours.parse("21:00-08:00")
    async with Harness([], tmp_path, clock=clock, db=database) as harness:
        await run(
            harness,
            Plan(name="q", address="4433", template="hi.txt"),
            [Row(2, "+61299999999"), Row(3, "+64211234567")],
            quiet=quiet,
        )
        assert sent_to(harness) == []
        await harness.advance(hours=9)  # 08:00 in Auckland, 06:00 in Sydney
        assert sent_to(harness) == ["+64211234567"]
        await harness.advance(hours=2)  # 08:00 in Sydney
        assert sent_to(harness) == ["+64211234567", "+61299999999"]


def test_quiet_hours_parse_and_windows():
    quiet = QuietHours.parse("21:00-08:00")
    assert quiet.quiet(datetime(2026, 1, 1, 22, 0))
    assert quiet.quiet(datetime(2026, 1, 1, 7, 59))
    assert not quiet.quiet(datetime(2026, 1, 1, 8, 0))
    with pytest.raises(ValidationError, match="--quiet-hours"):
        QuietHours.parse("late")


def survey_like_bot() -> Bot:
    bot = Bot("poll")

    @bot.timer("poll:start")
    async def start(ctx: Context) -> None:
        ctx.reply("Pizza or pasta?")
        ctx.state = "answer"

    @bot.state("answer")
    async def answer(ctx: Context) -> None:
        ctx.data["answer"] = ctx.text.strip().lower()
        ctx.reply("Thanks!")
        ctx.end()

    return bot


async def test_a_broadcast_can_start_a_conversation_for_each_recipient(database):
    plan = Plan(name="poll", address="4433", bot="poll", entry="poll:start")
    async with Harness([survey_like_bot()], TEMPLATES, db=database) as harness:
        report = await run(harness, plan, [Row(2, "+61400000001"), Row(3, "+61400000002")])
        assert report.queued == 2
        ann = harness.phone("+61400000001")
        await ann.send("Pasta")
        ann.expect("Thanks!")
        assert (await ann.thread()).data == {"answer": "pasta"}
        assert [m.content for m in harness.simulator.inbox("+61400000002")] == ["Pizza or pasta?"]


async def test_a_name_reused_for_another_broadcast_is_refused(tmp_path, database):
    (tmp_path / "a.txt").write_text("A\n")
    (tmp_path / "b.txt").write_text("B\n")
    async with Harness([], tmp_path, db=database) as harness:
        await run(harness, Plan(name="same", address="4433", template="a.txt"), [])
        with pytest.raises(ValueError, match="another --name"):
            await run(harness, Plan(name="same", address="4433", template="b.txt"), [])


def test_the_command_queues_a_list_and_a_second_run_adds_nobody(
    tmp_path, monkeypatch, capsys, database
):
    from botkit.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "deal.txt").write_text("Friday deal: 2 for 1.\n")
    (tmp_path / "members.csv").write_text("number\n+61400000001\n+61400000002\nnope\n")
    db = database
    assert main(["lists", "import", "deals", "members.csv", "--db", db]) == 1  # one bad row
    capsys.readouterr()
    command = ["broadcast", "--list", "deals", "--template", "deal.txt", "--db", db]
    assert main(command) == 0
    assert "2 queued, 0 skipped (opted out), 0 already done" in capsys.readouterr().out
    assert main(command) == 0
    assert "0 queued, 0 skipped (opted out), 2 already done" in capsys.readouterr().out


def test_the_command_refuses_bad_input_clearly(tmp_path, monkeypatch, capsys):
    from botkit.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.csv").write_text("number\n+61400000001\n")
    db = ["--db", str(tmp_path / "b.db")]
    base = ["broadcast", "--csv", "p.csv", "--template", "x.txt", *db]
    assert main([*base, "--expires-in", "soon"]) == 2
    assert "--expires-in" in capsys.readouterr().err
    assert main([*base, "--expires", "tomorrow"]) == 2
    assert "--expires" in capsys.readouterr().err
    assert main([*base, "--quiet-hours", "night"]) == 2
    assert "--quiet-hours" in capsys.readouterr().err
    survey = ["broadcast", "--csv", "p.csv", "--survey", "nope", *db]
    assert main(survey) == 2
    assert "no bot" in capsys.readouterr().err
    for option in (["--expires-in", "0m"], ["--expires", "2020-01-01T00:00:00+00:00"]):
        assert main([*base, *option]) == 2
        err = capsys.readouterr().err
        assert "nothing would go" in err or "a time to come" in err
    assert main([*base, "--address", "5000"]) == 2
    assert "'5000' is not one of our numbers (4433)" in capsys.readouterr().err


def test_the_same_message_from_another_number_or_mask_is_another_broadcast(
    tmp_path, monkeypatch, capsys
):
    from botkit.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BOTKIT_NUMBERS", "4433,+61400999000")
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "x.txt").write_text("Flu shots this week.\n")
    (tmp_path / "p.csv").write_text("number\n+61400000001\n")
    base = ["broadcast", "--csv", "p.csv", "--template", "x.txt", "--db", "b.db"]
    for extra in ([], ["--address", "+61400999000"], ["--mask", "Clinic"], []):
        assert main([*base, *extra]) == 0, capsys.readouterr().err
    outcomes = [line for line in capsys.readouterr().out.splitlines() if "queued" in line]
    assert [line.split(":")[1].split(",")[0].strip() for line in outcomes] == [
        "1 queued",
        "1 queued",
        "1 queued",
        "0 queued",  # the first again: resumed, nobody gets a second copy
    ]
    assert main([*base, "--name", "x.txt->" + "0" * 12, "--mask", "Other"]) == 0
    capsys.readouterr()
    assert main([*base, "--name", "x.txt->" + "0" * 12]) == 2
    assert "already exists with other contents" in capsys.readouterr().err


async def test_a_scheduled_broadcast_waits_for_its_time_even_across_a_restart(tmp_path, database):
    (tmp_path / "hi.txt").write_text("It's sale day\n")
    clock = FakeClock(datetime(2026, 1, 5, 0, 0, tzinfo=UTC))
    at = datetime(2026, 1, 5, 6, 0, tzinfo=UTC)
    async with Harness([], tmp_path, db=database, clock=clock) as harness:
        await run(
            harness, Plan(name="s", address="4433", template="hi.txt"), [Row(2, PHONE)], at=at
        )
        await harness.advance(hours=5)
        assert sent_to(harness) == []
    clock.advance(hours=2)  # the app was down when it came due
    async with Harness([], tmp_path, db=database, clock=clock) as harness:
        await harness.settle()
        assert sent_to(harness) == [PHONE]


async def test_a_held_broadcast_does_not_hold_up_replies_or_a_stop_confirmation(tmp_path, database):
    (tmp_path / "hi.txt").write_text("Tomorrow's sale\n")
    clock = FakeClock()
    bot = survey_like_bot()
    async with Harness([bot], tmp_path, clock=clock, db=database) as harness:
        plan = Plan(name="later", address="4433", template="hi.txt")
        tomorrow = clock().replace(day=clock().day + 1)
        await run(harness, plan, [Row(2, PHONE)], at=tomorrow)
        phone = harness.phone(PHONE)
        (help_text,) = await phone.send("HELP")
        assert help_text.template == "compliance/help.txt"
        (confirmation,) = await phone.send("STOP")
        assert confirmation.template == "compliance/stopped.txt"
        await harness.advance(days=1)
        assert [m.content for m in harness.simulator.inbox(PHONE)][-1] == confirmation.text
        statuses = await harness.runtime.store.db.fetchall(
            "SELECT status FROM messages WHERE template = 'hi.txt'"
        )
        assert [row[0] for row in statuses] == ["refused"]


async def test_a_stop_to_our_number_written_without_a_plus_still_skips_the_broadcast(
    tmp_path, database
):
    (tmp_path / "hi.txt").write_text("Hi\n")
    async with Harness([], tmp_path, db=database, numbers="4433,+61412345678") as harness:
        await harness.phone(PHONE).send("STOP", to="61412345678")
        plan = Plan(name="plus", address="+61412345678", template="hi.txt")
        report = await run(harness, plan, [Row(2, PHONE)])
        assert (report.queued, report.skipped) == (0, 1)


# -- BOTKIT_TIMEZONE -------------------------------------------------------------------------
# Sydney in 2030: summer time (+11:00) ends at 03:00 on 7 April, when the clocks go back an
# hour; it starts at 02:00 on 6 October, when they skip to 03:00.


@pytest.fixture
def in_sydney(tmp_path, monkeypatch) -> list[str]:
    """A folder with a template and a CSV of one number, BOTKIT_TIMEZONE Australia/Sydney;
    the broadcast command for them, less its database."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BOTKIT_TIMEZONE", "Australia/Sydney")
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "xmas.txt").write_text("Merry Christmas!\n")
    (tmp_path / "p.csv").write_text(f"number\n{PHONE}\n")
    return ["broadcast", "--csv", "p.csv", "--template", "xmas.txt"]


def queued(database: str) -> list[tuple[str, str | None]]:
    """When each queued MT may go, and its expiry."""
    return [
        tuple(row)
        for row in rows(
            database,
            """SELECT o.next_attempt_at, m.expires FROM outbox o
               JOIN messages m ON m.id = o.message_id ORDER BY m.id""",
        )
    ]


def test_a_time_without_an_offset_is_in_botkit_timezone_and_printed_back_in_it(
    in_sydney, capsys, database
):
    from botkit.cli import main

    times = ["--at", "2030-12-24T09:00", "--expires", "2030-12-24T18:00"]
    assert main([*in_sydney, *times, "--db", database]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[-1] == (
        "botkit broadcast: sends at 2030-12-24T09:00:00+11:00, "
        "expires at 2030-12-24T18:00:00+11:00 (Australia/Sydney)"
    )
    assert queued(database) == [("2030-12-23T22:00:00.000000Z", "2030-12-24T18:00:00+11:00")]

    # An offset wins; the time is still printed in BOTKIT_TIMEZONE.
    offset = ["--at", "2030-12-24T09:00:00Z", "--name", "utc"]
    assert main([*in_sydney, *offset, "--db", database]) == 0
    assert "sends at 2030-12-24T20:00:00+11:00 (Australia/Sydney)" in capsys.readouterr().out
    assert queued(database)[1] == ("2030-12-24T09:00:00.000000Z", None)


def test_a_time_daylight_saving_skips_is_refused_and_a_repeated_one_is_the_first(
    in_sydney, capsys, database
):
    from botkit.cli import main

    assert main([*in_sydney, "--at", "2030-10-06T02:30", "--db", database]) == 2
    err = capsys.readouterr().err
    assert "--at: 2030-10-06 02:30 does not exist in Australia/Sydney" in err
    assert main([*in_sydney, "--expires", "2030-10-06T02:00", "--db", database]) == 2
    assert "--expires: 2030-10-06 02:00 does not exist" in capsys.readouterr().err

    assert main([*in_sydney, "--at", "2030-04-07T02:30", "--db", database]) == 0
    assert "sends at 2030-04-07T02:30:00+11:00 (Australia/Sydney)" in capsys.readouterr().out
    assert queued(database) == [("2030-04-06T15:30:00.000000Z", None)]


async def test_quiet_hours_of_a_number_of_no_known_zone_keep_botkit_timezone(tmp_path, database):
    (tmp_path / "hi.txt").write_text("Good morning\n")
    uk = "+447700900123"  # a UK mobile: its prefix tells no zone
    # 21:30 in Sydney on the night summer time ends: 08:00 comes 11.5 hours later, not 10.5.
    clock = FakeClock(datetime(2030, 4, 6, 10, 30, tzinfo=UTC))
    quiet = QuietHours.parse("21:00-08:00", ZoneInfo("Australia/Sydney"))
    async with Harness([], tmp_path, clock=clock, db=database) as harness:
        plan = Plan(name="q", address="4433", template="hi.txt")
        await run(harness, plan, [Row(2, uk)], quiet=quiet)
        assert sent_to(harness) == []
        await harness.advance(hours=10, minutes=30)  # 07:00 by the new (winter) time
        assert sent_to(harness) == []
        await harness.advance(hours=1)
        assert sent_to(harness) == [uk]


async def test_quiet_hours_without_a_zone_keep_utc_for_a_number_of_no_known_zone(
    tmp_path, database
):
    (tmp_path / "hi.txt").write_text("Good morning\n")
    clock = FakeClock(datetime(2030, 4, 6, 22, 0, tzinfo=UTC))
    async with Harness([], tmp_path, clock=clock, db=database) as harness:
        plan = Plan(name="q", address="4433", template="hi.txt")
        await run(harness, plan, [Row(2, "+447700900123")], quiet=QuietHours.parse("21:00-08:00"))
        assert sent_to(harness) == []
        await harness.advance(hours=10)
        assert sent_to(harness) == ["+447700900123"]
