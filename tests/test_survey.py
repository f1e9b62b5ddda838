"""Surveys: each question type takes its valid answers and re-asks for the rest; branches;
one reminder and an expiry on the harness's clock; two surveys on one handset kept apart
by `reply_to`; results exported one row per respondent."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from datetime import timedelta

import pytest
from conftest import ROOT

from botkit import Bot, Question, Survey
from botkit.broadcast import Row, broadcast
from botkit.cli import main
from botkit.errors import HandlerError
from botkit.questions import InvalidAnswer
from botkit.store.broadcasts import Plan
from botkit.templates import SMSTemplates
from botkit.testing import FakeClock, Harness

pytestmark = pytest.mark.backends

BOTS, TEMPLATES = ROOT / "bots", ROOT / "templates"
PHONE = "+61400000001"


def order_survey(**options) -> Survey:
    return Survey(
        "order",
        [
            Question.rating("rating", "How was your order, 1 to 5?", next={1: "wrong"}),
            Question.choice("channel", "How did you order?", ["Phone", "Website", "In store"]),
            Question.number("guests", "How many people ate?", min=1, max=20),
            Question.yes_no("again", "Would you order again?", next={False: "why_not"}),
            Question.text("comment", "Anything else?", next=Survey.END),
            Question.text("why_not", "Why not?", next=Survey.END),
            Question.text("wrong", "Sorry! What went wrong?", next=Survey.END),
        ],
        closing="Thanks for your feedback!",
        **options,
    )


def delivery_survey() -> Survey:
    return Survey(
        "delivery",
        [
            Question.yes_no("on_time", "Did your delivery arrive on time?"),
            Question.rating("driver", "How was the driver, 1 to 5?"),
        ],
        closing="Thanks, we'll tell the driver.",
    )


def shop_bot(**options) -> Bot:
    bot = Bot("shop")
    order_survey(**options).attach(bot, keyword="FEEDBACK", aliases=["REVIEW"])
    delivery_survey().attach(bot)
    return bot


async def answers(harness: Harness, survey: str) -> dict[str, object]:
    rows = await harness.runtime.store.db.fetchall(
        "SELECT question, value FROM survey_answers WHERE survey = ? ORDER BY answered_at",
        (survey,),
    )
    return {row["question"]: json.loads(row["value"]) for row in rows}


async def status(harness: Harness, thread_id: int | None = None) -> str:
    (row,) = [
        row
        async for row in harness.runtime.store.surveys.rows("order", [])
        if thread_id is None or row["thread_id"] == thread_id
    ]
    return row["status"]


# Each question type, on its own


@pytest.mark.parametrize(
    ("question", "text", "value"),
    [
        (Question.text("q", "?"), "  Hot & fresh  ", "Hot & fresh"),
        (Question.number("q", "?", min=1, max=20), "4", 4),
        (Question.number("q", "?", min=1, max=20), "12 people", 12),
        (Question.number("q", "?", min=1, max=2000), "1,200", 1200),
        (Question.number("q", "?", min=1, max=20), "three", 3),
        (Question.number("q", "?", whole=False), "-2.5", -2.5),
        (Question.choice("q", "?", ["Phone", "Website"]), "2", "Website"),
        (Question.choice("q", "?", ["Phone", "Website"]), "b)", "Website"),
        (Question.choice("q", "?", ["Phone", "Website"]), "A", "Phone"),
        (Question.choice("q", "?", ["Phone", "Website"]), " website. ", "Website"),
        (Question.choice("q", "?", ["Phone", "In store"]), "in  STORE", "In store"),
        (Question.yes_no("q", "?"), "YES", True),
        (Question.yes_no("q", "?"), "y", True),
        (Question.yes_no("q", "?"), "Yep!", True),
        (Question.yes_no("q", "?"), "yes please", True),
        (Question.yes_no("q", "?"), "Sure", True),
        (Question.yes_no("q", "?"), "👍🏽", True),
        (Question.yes_no("q", "?"), "no", False),
        (Question.yes_no("q", "?"), "N", False),
        (Question.yes_no("q", "?"), "nah", False),
        (Question.yes_no("q", "?"), "Nope.", False),
        (Question.yes_no("q", "?"), "no thanks", False),
        (Question.yes_no("q", "?"), "not really", False),
        (Question.rating("q", "?"), "5", 5),
        (Question.rating("q", "?"), "4/5", 4),
        (Question.rating("q", "?"), "3 stars", 3),
        (Question.rating("q", "?"), "Four!", 4),
        (Question.rating("q", "?"), "⭐⭐", 2),
        (Question.rating("q", "?", scale=10), "10", 10),
    ],
)
def test_a_valid_answer_reads_as_its_value(question, text, value):
    parsed = question.parse(text)
    assert parsed == value and type(parsed) is type(value)


@pytest.mark.parametrize(
    ("question", "text"),
    [
        (Question.text("q", "?"), "   "),
        (Question.number("q", "?", min=1, max=20), "0"),
        (Question.number("q", "?", min=1, max=20), "21"),
        (Question.number("q", "?", min=1, max=20), "2.5"),
        (Question.number("q", "?", min=1, max=20), "3 or 4"),
        (Question.number("q", "?"), "lots"),
        (Question.number("q", "?", whole=False), "9" * 400),
        (Question.choice("q", "?", ["Phone", "Website"]), "3"),
        (Question.choice("q", "?", ["Phone", "Website"]), "c"),
        (Question.choice("q", "?", ["Phone", "Website"]), "email"),
        (Question.yes_no("q", "?"), "maybe"),
        (Question.yes_no("q", "?"), "not sure"),
        (Question.yes_no("q", "?"), ""),
        (Question.rating("q", "?"), "0"),
        (Question.rating("q", "?"), "6"),
        (Question.rating("q", "?"), "4.5"),
        (Question.rating("q", "?"), "great"),
    ],
)
def test_an_invalid_answer_is_refused(question, text):
    with pytest.raises(InvalidAnswer):
        question.parse(text)


@pytest.mark.parametrize(
    ("question", "hint"),
    [
        (Question.text("q", "?"), "Please reply with your answer in words."),
        (Question.number("q", "?", max=20), "Please answer with a whole number of at most 20."),
        (Question.number("q", "?", min=0), "Please answer with a whole number of at least 0."),
        (Question.number("q", "?", whole=False), "Please answer with a number."),
        (Question.number("q", "?", min=1, max=12),
         "Please answer with a whole number from 1 to 12."),
        (Question.number("q", "?", min=0.5, whole=False),
         "Please answer with a number of at least 0.5."),
        (Question.choice("q", "?", ["A", "B", "C"]), "Please answer with a number from 1 to 3."),
        (Question.yes_no("q", "?"), "Please answer YES or NO."),
        (Question.rating("q", "?"), "Please answer with a number from 1 to 5."),
        (Question.yes_no("q", "?", reask="Just YES or NO, please."), "Just YES or NO, please."),
    ],
)  # fmt: skip
def test_the_hint_says_what_is_expected(question, hint, tmp_path):
    assert question.hint(SMSTemplates(tmp_path).render) == hint


# Through the harness


async def test_every_question_type_reasks_an_invalid_answer_then_stores_the_valid_one(database):
    async with Harness([shop_bot()], TEMPLATES, db=database) as harness:
        phone = harness.phone(PHONE)
        (first,) = await phone.send("feedback")
        assert first.text == "How was your order, 1 to 5?"
        turns = [
            ("great", "Please answer with a number from 1 to 5.\nHow was your order, 1 to 5?"),
            ("4/5", "How did you order?\n1) Phone\n2) Website\n3) In store"),
            ("email", "Please answer with a number from 1 to 3.\nHow did you order?\n1) Phone"),
            ("b", "How many people ate?"),
            ("lots", "Please answer with a whole number from 1 to 20.\nHow many people ate?"),
            ("3 people", "Would you order again?"),
            ("dunno", "Please answer YES or NO.\nWould you order again?"),
            ("Yep!", "Anything else?"),
            ("", "Please reply with your answer in words.\nAnything else?"),
            ("Crust was perfect & hot", "Thanks for your feedback!"),
        ]
        for text, expected in turns:
            (reply,) = await phone.send(text)
            assert reply.text.startswith(expected), (text, reply.text)
        assert await answers(harness, "order") == {
            "rating": 4,
            "channel": "Website",
            "guests": 3,
            "again": True,
            "comment": "Crust was perfect & hot",
        }
        thread = await phone.thread()
        assert thread.status == "closed"
        assert await status(harness) == "completed"


async def test_each_answer_is_stored_with_its_raw_text_and_the_mo_that_gave_it(database):
    async with Harness([shop_bot()], TEMPLATES, db=database) as harness:
        phone = harness.phone(PHONE)
        await phone.send("review")  # the alias
        await phone.send("Four!")
        row = await harness.runtime.store.db.fetchone(
            """SELECT a.value, a.raw, m.content, m.direction FROM survey_answers a
               JOIN messages m ON m.id = a.message_id"""
        )
        assert tuple(row) == ("4", "Four!", "Four!", "mo")


async def test_after_max_reasks_the_next_invalid_answer_skips_the_question(database):
    async with Harness([shop_bot(max_reasks=1)], TEMPLATES, db=database) as harness:
        phone = harness.phone(PHONE)
        await phone.send("feedback")
        await phone.send("brilliant")
        phone.expect("Please answer with a number from 1 to 5.")
        (reply,) = await phone.send("superb")
        assert reply.text.startswith("How did you order?")
        assert await answers(harness, "order") == {}


async def test_a_branch_leads_to_its_question_and_the_survey_ends_where_it_says(database):
    async with Harness([shop_bot()], TEMPLATES, db=database) as harness:
        low, unhappy = harness.phone("+61400000001"), harness.phone("+61400000002")
        await low.send("feedback")
        (reply,) = await low.send("1")
        assert reply.text == "Sorry! What went wrong?"
        (reply,) = await low.send("Cold pizza")
        assert reply.text == "Thanks for your feedback!"

        for text in ("feedback", "5", "1", "2"):
            await unhappy.send(text)
        (reply,) = await unhappy.send("no")
        assert reply.text == "Why not?"
        (reply,) = await unhappy.send("Too dear")
        assert reply.text == "Thanks for your feedback!"
        rows = [row async for row in harness.runtime.store.surveys.rows("order", ["wrong"])]
        assert [(row["handset"], row["wrong"]) for row in rows] == [
            ("+61400000001", "Cold pizza"),
            ("+61400000002", None),
        ]


async def test_next_may_be_a_function_of_the_answer(database):
    def by_size(guests: int) -> str | None:
        return "party" if guests >= 10 else "bogus" if guests == 7 else None

    survey = Survey(
        "size",
        [
            Question.number("guests", "How many?", min=1, next=by_size),
            Question.text("small", "Table or takeaway?", next=Survey.END),
            Question.text("party", "What's the occasion?"),
        ],
    )
    bot = Bot("size")
    survey.attach(bot, keyword="SIZE")
    async with Harness([bot], TEMPLATES, db=database) as harness:
        big, small, odd = (harness.phone(f"+6140000000{n}") for n in (1, 2, 3))
        await big.send("size")
        (reply,) = await big.send("12")
        assert reply.text == "What's the occasion?"
        await small.send("size")
        (reply,) = await small.send("2")
        assert reply.text == "Table or takeaway?"
        await odd.send("size")
        with pytest.raises(HandlerError, match="'guests' leads to no 'bogus'"):
            await odd.send("7")


async def test_a_question_unanswered_gets_one_reminder_and_past_the_expiry_ends_incomplete(
    database,
):
    clock = FakeClock()
    bot = shop_bot(reminder=timedelta(hours=2), expiry=timedelta(hours=24))
    async with Harness([bot], TEMPLATES, clock=clock, db=database) as harness:
        phone = harness.phone(PHONE)
        await phone.send("feedback")
        await harness.advance(hours=1, minutes=59)
        assert len(phone.replies) == 1
        await harness.advance(minutes=1)
        assert phone.last.text == "Reminder: How was your order, 1 to 5?"
        await harness.advance(hours=20)
        assert len(phone.replies) == 2  # one reminder only
        await harness.advance(hours=2)
        thread = await phone.thread()
        assert (thread.status, await status(harness)) == ("closed", "incomplete")
        assert len(phone.replies) == 2  # no expired message configured


async def test_an_answer_resets_the_reminder_and_the_expiry_for_the_next_question(database):
    clock = FakeClock()
    bot = shop_bot(reminder=timedelta(hours=2), expiry=timedelta(hours=24))
    async with Harness([bot], TEMPLATES, clock=clock, db=database) as harness:
        phone = harness.phone(PHONE)
        await phone.send("feedback")
        await harness.advance(hours=23)  # reminded already
        await phone.send("5")
        await harness.advance(hours=2)
        assert phone.last.text.startswith("Reminder: How did you order?")
        await harness.advance(hours=21, minutes=59)
        assert (await phone.thread()).status == "open"
        await phone.send("phone")
        assert phone.last.text == "How many people ate?"


async def test_an_invalid_answer_after_the_reminder_brings_no_second_reminder(database):
    clock = FakeClock()
    bot = shop_bot(reminder=timedelta(hours=2), expiry=timedelta(hours=24))
    async with Harness([bot], TEMPLATES, clock=clock, db=database) as harness:
        phone = harness.phone(PHONE)
        await phone.send("feedback")
        await harness.advance(hours=3)
        await phone.send("hmm")
        await harness.advance(hours=3)
        assert [reply.text.split("\n")[0] for reply in phone.replies] == [
            "How was your order, 1 to 5?",
            "Reminder: How was your order, 1 to 5?",
            "Please answer with a number from 1 to 5.",
        ]


async def test_the_expired_message_is_sent_when_given(database):
    survey = Survey(
        "quick",
        [Question.yes_no("ok", "All good?")],
        expiry=timedelta(hours=1),
        expired="This survey has closed. Thanks anyway!",
    )
    bot = Bot("quick")
    survey.attach(bot, keyword="QUICK")
    async with Harness([bot], TEMPLATES, db=database) as harness:
        phone = harness.phone(PHONE)
        await phone.send("quick")
        await harness.advance(hours=1)
        phone.expect("This survey has closed.")
        assert (await phone.thread()).status == "closed"


async def start_by_broadcast(harness: Harness, survey: str, number: str) -> None:
    """Start `survey` for `number` as `botkit broadcast --survey` does."""
    plan = Plan(name=survey, address="4433", bot="shop", entry=f"survey:{survey}")
    store = harness.runtime.store
    rows = [Row(2, number)]
    await broadcast(store, harness.runtime.templates, plan, rows, numbers=harness.runtime.numbers)
    await harness.advance()


async def test_two_surveys_on_one_handset_are_kept_apart_by_reply_to(database):
    async with Harness([shop_bot()], TEMPLATES, db=database, number_sequence=True) as harness:
        phone = harness.phone(PHONE)
        await start_by_broadcast(harness, "order", PHONE)
        await start_by_broadcast(harness, "delivery", PHONE)
        order_q, delivery_q = phone.replies
        assert order_q.text == "How was your order, 1 to 5?"
        assert delivery_q.text == "Did your delivery arrive on time?"
        assert order_q.thread_id != delivery_q.thread_id

        # "5" and "no" would each be a valid answer to either question.
        (driver_q,) = await phone.send("no", reply_to=delivery_q)
        assert driver_q.text == "How was the driver, 1 to 5?"
        (channel_q,) = await phone.send("5", reply_to=order_q)
        assert channel_q.text.startswith("How did you order?")
        (thanks,) = await phone.send("4", reply_to=driver_q)
        assert thanks.text == "Thanks, we'll tell the driver."
        (guests_q,) = await phone.send("1", reply_to=channel_q)
        assert guests_q.text == "How many people ate?"

        assert await answers(harness, "delivery") == {"on_time": False, "driver": 4}
        assert await answers(harness, "order") == {"rating": 5, "channel": "Phone"}
        threads = await harness.runtime.store.db.fetchall(
            "SELECT survey, thread_id FROM survey_answers GROUP BY survey, thread_id"
        )
        assert {row["survey"]: row["thread_id"] for row in threads} == {
            "order": order_q.thread_id,
            "delivery": delivery_q.thread_id,
        }


async def test_without_reply_to_an_answer_goes_to_the_most_recent_open_survey(database):
    async with Harness([shop_bot()], TEMPLATES, db=database) as harness:
        phone = harness.phone(PHONE)
        await start_by_broadcast(harness, "order", PHONE)
        await start_by_broadcast(harness, "delivery", PHONE)
        (reply,) = await phone.send("yes")
        assert reply.text == "How was the driver, 1 to 5?"
        await phone.send("5")  # the delivery survey closes
        (reply,) = await phone.send("3")
        assert reply.text.startswith("How did you order?")
        assert await answers(harness, "order") == {"rating": 3}


async def test_a_broadcast_survey_does_not_disturb_a_conversation_under_way(database):
    async with Harness([shop_bot()], TEMPLATES, db=database, number_sequence=True) as harness:
        phone = harness.phone(PHONE)
        await phone.send("feedback")
        (order_q,) = phone.replies
        await start_by_broadcast(harness, "delivery", PHONE)
        await phone.send("2", reply_to=order_q)
        assert phone.last.text.startswith("How did you order?")
        assert await answers(harness, "delivery") == {}


async def test_stop_mid_survey_leaves_the_respondent_incomplete(database):
    async with Harness([shop_bot()], TEMPLATES, db=database) as harness:
        phone = harness.phone(PHONE)
        await phone.send("feedback")
        await phone.send("4")
        await phone.send("STOP")
        assert await status(harness) == "incomplete"


async def test_template_prompts_get_the_hint_the_reminder_the_options_and_the_answers(
    tmp_path, database
):
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "pick.txt").write_text(
        "{% if reminder %}Still there? {% endif %}{% if hint %}{{ hint }} {% endif %}"
        "Pick: {{ options | join('/') }}\n"
    )
    (tmp_path / "t" / "done.txt").write_text("You picked {{ answers.pick }}.\n")
    survey = Survey(
        "tpl",
        [Question.choice("pick", "t/pick.txt", ["Red", "Blue"])],
        closing="t/done.txt",
        reminder=timedelta(minutes=5),
    )
    bot = Bot("tpl")
    survey.attach(bot, keyword="PICK")
    async with Harness([bot], tmp_path, db=database) as harness:
        phone = harness.phone(PHONE)
        (reply,) = await phone.send("pick")
        assert (reply.text, reply.template) == ("Pick: Red/Blue", "t/pick.txt")
        await harness.advance(minutes=5)
        assert phone.last.text == "Still there? Pick: Red/Blue"
        (reply,) = await phone.send("green")
        assert reply.text == "Please answer with a number from 1 to 2. Pick: Red/Blue"
        (reply,) = await phone.send("b")
        assert reply.text == "You picked Blue."


async def test_the_example_bot_runs_from_its_keyword_with_the_hello_bot_beside_it(database):
    async with Harness(BOTS, TEMPLATES, db=database) as harness:
        phone = harness.phone(PHONE)
        (reply,) = await phone.send("SURVEY")
        assert reply.text.startswith("Thanks for choosing us! How did we do")
        (reply,) = await phone.send("5")
        assert reply.text == "Glad to hear it! What did you like most?"
        (reply,) = await phone.send("Friendly staff")
        assert reply.text == "Would you recommend us to a friend? YES or NO"
        (reply,) = await phone.send("yes")
        assert reply.template == "survey/thanks.txt"
        assert reply.text.startswith("Thank you for your feedback, and for recommending us!")
        (reply,) = await phone.send("hello")  # the survey is over: other bots answer again
        assert reply.template == "hello/ask_name.txt"


async def test_the_example_bot_asks_what_went_wrong_after_a_low_rating(database):
    async with Harness(BOTS, TEMPLATES, db=database) as harness:
        phone = harness.phone(PHONE)
        for text in ("survey", "2", "Late and cold"):
            await phone.send(text)
        phone.expect("Would you recommend us")
        (reply,) = await phone.send("nah")
        assert reply.text.startswith("Thank you for your feedback! Every answer")


# Declaring a survey


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Survey("x", []), "has no questions"),
        (lambda: Survey("x y", [Question.text("a", "?")]), "survey name"),
        (lambda: Survey("x", [Question.text("a", "?"), Question.text("a", "?")]), "one id"),
        (lambda: Survey("x", [Question.text("status", "?")]), "result column"),
        (lambda: Survey("x", [Question.text("a", "?", next="b")]), "leads to no 'b'"),
        (lambda: Survey("x", [Question.text("a", " ")]), "no prompt"),
        (lambda: Question.yes_no("a", "?", next={"no": "b"}), "no answer can be 'no'"),
        (lambda: Question.rating("a", "?", next={6: "b"}), "no answer can be 6"),
        (lambda: Question.choice("a", "?", ["One"]), "two options"),
        (lambda: Question.choice("a", "?", ["One", "one!"]), "read the same"),
        (lambda: Question.text("a b", "?"), "question id"),
        (
            lambda: Survey(
                "x",
                [Question.text("a", "?")],
                reminder=timedelta(days=2),
                expiry=timedelta(days=1),
            ),
            "before the expiry",
        ),
        (lambda: Survey("x", [Question.text("a", "?")], max_reasks=-1), "max_reasks"),
    ],
)
def test_a_survey_that_could_not_run_is_refused_when_declared(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_attach_registers_ordinary_handlers_and_the_broadcast_entry():
    bot = Bot("shop")
    survey = order_survey().attach(bot, keyword="FEEDBACK")
    assert set(bot.keywords) == {"FEEDBACK"}
    assert list(bot.states) == ["survey:order"]
    assert sorted(bot.timers) == ["survey:order", "survey:order:expire", "survey:order:remind"]
    assert survey.entry == "survey:order"
    with pytest.raises(ValueError, match="registered twice"):
        order_survey().attach(bot)


# Results


async def run_survey_for_two(db) -> None:
    clock = FakeClock()
    async with Harness([shop_bot(expiry=timedelta(hours=1))], TEMPLATES, db=db, clock=clock) as h:
        ada, bob = h.phone("+61400000001"), h.phone("+61400000002")
        for text in ("feedback", "5", "website", "2", "y", "Great, thanks"):
            await ada.send(text)
        for text in ("feedback", "3"):
            await bob.send(text)
        await h.advance(hours=1)


async def export(*args: str, capsys) -> tuple[int, str, str]:
    code = await asyncio.to_thread(main, ["export", *args])
    out, err = capsys.readouterr()
    return code, out, err


async def test_export_csv_has_a_row_per_respondent_and_a_column_per_question(tmp_path, capsys):
    db = tmp_path / "s.db"
    await run_survey_for_two(db)
    code, out, err = await export(
        "survey", "order", "--format", "csv", "--db", str(db), capsys=capsys
    )
    assert (code, err) == (0, "")
    reader = csv.DictReader(io.StringIO(out))
    assert reader.fieldnames == [
        "thread_id", "handset", "status", "started_at", "ended_at",
        "rating", "channel", "guests", "again", "comment", "why_not", "wrong",
    ]  # fmt: skip
    ada, bob = list(reader)
    assert {k: ada[k] for k in ("handset", "status", "rating", "channel", "guests", "again")} == {
        "handset": "+61400000001",
        "status": "completed",
        "rating": "5",
        "channel": "Website",
        "guests": "2",
        "again": "yes",
    }
    assert (ada["comment"], ada["why_not"]) == ("Great, thanks", "")
    assert (bob["status"], bob["rating"], bob["channel"]) == ("incomplete", "3", "")
    assert bob["ended_at"] > bob["started_at"]


async def test_export_json_keeps_the_answers_types(tmp_path, capsys):
    db = tmp_path / "s.db"
    await run_survey_for_two(db)
    code, out, _ = await export(
        "survey", "order", "--format", "json", "--number", "+61400000001", "--db", str(db),
        capsys=capsys,
    )  # fmt: skip
    (ada,) = json.loads(out)
    assert (code, ada["rating"], ada["again"], ada["guests"], ada["wrong"]) == (0, 5, True, 2, None)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["survey", "nope"], "no survey named 'nope' has been started"),
        (["survey"], "give a survey's name after survey"),
        (["transcripts", "order"], "give a survey's name after survey"),
    ],
)
async def test_export_refuses_a_missing_or_unknown_survey(tmp_path, capsys, args, message):
    db = tmp_path / "s.db"
    await run_survey_for_two(db)
    code, out, err = await export(*args, "--format", "csv", "--db", str(db), capsys=capsys)
    assert (code, out) == (2, "")
    assert message in err
