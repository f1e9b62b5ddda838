"""Messages in the person's language: a template's version for the language beside it,
else for its base language, else the default; compliance texts alike; junk codes
refused, since a code ends up in a file name."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from botkit import Bot, Context, Question, Survey
from botkit.check import check
from botkit.languages import choose, fallbacks, language_code, texts
from botkit.templates import SMSTemplates, split_variant, variant_name
from botkit.testing import Harness

PHONE = "+64210000001"


def write(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return folder


@pytest.mark.parametrize(
    ("given", "code"),
    [("es", "es"), ("pt-br", "pt-br"), ("pt_BR", "pt-br"), ("PT-Br", "pt-br"),
     ("zh-Hant-TW", "zh-hant-tw"), ("haw", "haw"), ("es-419", "es-419"), ("mi", "mi")],
)  # fmt: skip
def test_a_language_code_is_kept_in_lower_case_with_dashes(given, code):
    assert language_code(given) == code


@pytest.mark.parametrize(
    "junk",
    ["", "e", "e s", "../x", "es/../../etc", "es.txt", "english", "es-", "-es", "es--mx",
     "es\n", " es", "é", "es-toolongpart", "x" * 40, "a" * 2 + "-b" * 20],
)  # fmt: skip
def test_anything_else_is_refused_as_a_language_code(junk):
    with pytest.raises(ValueError, match="is not a language code"):
        language_code(junk)


def test_a_code_falls_back_part_by_part():
    assert fallbacks("pt-BR") == ["pt-br", "pt"]
    assert fallbacks("zh-hant-tw") == ["zh-hant-tw", "zh-hant", "zh"]
    assert fallbacks("es") == ["es"]
    assert fallbacks(None) == []


def test_a_versions_name_carries_its_language():
    assert variant_name("survey/q1.txt", "pt-br") == "survey/q1.pt-br.txt"
    assert split_variant("survey/q1.pt-br.txt") == ("survey/q1.txt", "pt-br")
    assert split_variant("survey/q1.txt") is None
    assert split_variant("v1.2/notes.txt") is None
    assert split_variant("menu.final.txt") is None


def test_the_templates_version_for_the_language_is_rendered_and_named(tmp_path):
    sms = SMSTemplates(
        write(
            tmp_path,
            {
                "s/q1.txt": "How was it, {{ name }}?",
                "s/q1.es.txt": "¿Qué tal, {{ name }}?",
                "s/q1.pt.txt": "Como foi, {{ name }}?",
            },
        )
    )
    spanish = sms.reply("s/q1.txt", {"name": "Ana"}, "es")
    assert (spanish.content, spanish.template) == ("¿Qué tal, Ana?", "s/q1.es.txt")
    brazilian = sms.reply("s/q1.txt", {"name": "Ana"}, "pt_BR")  # no pt-br: its base
    assert (brazilian.content, brazilian.template) == ("Como foi, Ana?", "s/q1.pt.txt")
    french = sms.reply("s/q1.txt", {"name": "Ana"}, "fr-ca")  # neither: the default
    assert (french.content, french.template) == ("How was it, Ana?", "s/q1.txt")
    default = sms.reply("s/q1.txt", {"name": "Ana"})
    assert (default.content, default.template) == ("How was it, Ana?", "s/q1.txt")


def test_a_regional_version_comes_before_its_base(tmp_path):
    sms = SMSTemplates(write(tmp_path, {"a.txt": "a", "a.pt.txt": "pt", "a.pt-br.txt": "br"}))
    assert [sms.choose("a.txt", lang) for lang in ("pt-br", "pt", "pt-pt")] == [
        "a.pt-br.txt",
        "a.pt.txt",
        "a.pt.txt",
    ]


def test_a_junk_language_is_refused_before_any_file_is_looked_for(tmp_path):
    sms = SMSTemplates(write(tmp_path, {"a.txt": "a", "x.txt": "secret"}))
    for junk in ("../x", "e s", "a/..", ""):
        with pytest.raises(ValueError, match="is not a language code"):
            sms.reply("a.txt", {}, junk)


def test_literal_text_is_the_same_in_every_language(tmp_path):
    sms = SMSTemplates(tmp_path)
    assert sms.reply("Hi & bye", {}, "es").content == "Hi & bye"


def test_without_reload_the_choice_is_kept_and_with_it_a_new_version_is_used(tmp_path):
    write(tmp_path, {"a.txt": "hi"})
    fixed, reloading = SMSTemplates(tmp_path), SMSTemplates(tmp_path, auto_reload=True)
    assert fixed.choose("a.txt", "es") == reloading.choose("a.txt", "es") == "a.txt"
    write(tmp_path, {"a.es.txt": "hola"})
    assert fixed.choose("a.txt", "es") == "a.txt"  # as deployed, until a restart
    assert reloading.reply("a.txt", {}, "es").content == "hola"


def test_a_projects_version_comes_before_botkits_and_botkits_default_is_the_last(tmp_path):
    sms = SMSTemplates(write(tmp_path, {"compliance/help.es.txt": "Ayuda: {{ sender }}"}))
    variables = {"sender": "Acme", "stop_word": "STOP", "start_word": "START"}
    assert sms.reply("compliance/help.txt", variables, "es-mx").content == "Ayuda: Acme"
    assert sms.reply("compliance/help.txt", variables, "fr").template == "compliance/help.txt"


def test_texts_by_language_fall_back_like_templates_the_first_being_the_default():
    asked = texts({"en": "How was it?", "PT": "Como foi?", "es": "¿Qué tal?"}, "q1")
    assert choose(asked, "pt-br") == "Como foi?"
    assert choose(asked, "es") == "¿Qué tal?"
    assert choose(asked, "fr") == choose(asked, None) == "How was it?"
    assert choose("Same for all", "es") == "Same for all"


@pytest.mark.parametrize(
    ("junk", "error"),
    [({}, "give a text, or texts by language"), ({"en": "a", "e s": "b"}, "not a language code"),
     ({"en": "a", "es": " "}, "'es' text is empty"), ({"es": "a", "ES": "b"}, "two texts are for")],
)  # fmt: skip
def test_texts_by_language_are_checked(junk, error):
    with pytest.raises(ValueError, match=error):
        texts(junk, "question 'q1'")


# Through the harness


def greeter() -> Bot:
    bot = Bot("greeter")

    @bot.keyword("HI")
    async def hi(ctx: Context) -> None:
        ctx.reply("greeter/hi.txt", name="Ana")
        ctx.schedule("later", minutes=5)

    @bot.keyword("BOOM")
    async def boom(ctx: Context) -> None:
        raise RuntimeError("boom")

    @bot.timer("later")
    async def later(ctx: Context) -> None:
        ctx.reply("greeter/later.txt")

    return bot


LANGUAGES = {
    "greeter/hi.txt": "Hello {{ name }}!",
    "greeter/hi.mi.txt": "Kia ora {{ name }}!",
    "greeter/later.txt": "Still here.",
    "greeter/later.mi.txt": "Kei konei tonu.",
    "compliance/stopped.mi.txt": "Kua mutu: {{ sender }}. {{ start_word }} hei tīmata anō.",
    "errors/failed.mi.txt": "Aroha mai, {{ sender }}.",
}


async def test_each_phone_gets_its_language_in_replies_timers_compliance_and_apologies(
    tmp_path, database
):
    templates = write(tmp_path / "templates", LANGUAGES)
    async with Harness([greeter()], templates, db=database, raise_errors=False) as harness:
        maori, other = harness.phone(PHONE, language="mi"), harness.phone("+64210000002")
        (reply,) = await maori.send("hi")
        assert (reply.text, reply.template) == ("Kia ora Ana!", "greeter/hi.mi.txt")
        (reply,) = await other.send("hi")
        assert (reply.text, reply.template) == ("Hello Ana!", "greeter/hi.txt")
        await harness.advance(minutes=5)
        assert maori.last.text == "Kei konei tonu."
        assert other.last.text == "Still here."
        (apology,) = await maori.send("boom")
        assert apology.template == "errors/failed.mi.txt"
        assert apology.text == "Aroha mai, this service."
        (stopped,) = await maori.send("STOP")
        assert stopped.template == "compliance/stopped.mi.txt"
        assert stopped.text == "Kua mutu: this service. START hei tīmata anō."
        (stopped,) = await other.send("STOP")
        assert stopped.template == "compliance/stopped.txt"


async def test_a_phone_with_a_junk_language_is_refused(tmp_path):
    async with Harness([greeter()], write(tmp_path / "t", LANGUAGES)) as harness:
        with pytest.raises(ValueError, match="'e s' is not a language code"):
            harness.phone(PHONE, language="e s")


# Surveys


def spanish_survey(reminder: timedelta | None = None) -> Bot:
    bot = Bot("feedback")
    Survey(
        "visit",
        [
            Question.choice(
                "how", {"en": "How did you come?", "es": "¿Cómo vino?"}, ["Bus", "Car"]
            ),
            Question.rating("rating", "s/rating.txt"),
            Question.yes_no("again", "Again?", reask={"en": "YES or NO", "es": "SÍ o NO"}),
        ],
        closing={"en": "Thanks!", "es": "¡Gracias!"},
        reminder=reminder,
    ).attach(bot, keyword="VISIT")
    return bot


SURVEY_TEXTS = {
    "s/rating.txt": "{% if hint %}{{ hint }} {% endif %}Rate us 1-{{ scale }}",
    "s/rating.es.txt": "{% if hint %}{{ hint }} {% endif %}Puntúenos 1-{{ scale }}",
    "survey/hints/choice.es.txt": "Responda con un número del 1 al {{ options | length }}.",
    "survey/hints/rating.es.txt": "Responda del 1 al {{ scale }}.",
    "survey/reminder.es.txt": "Recordatorio: {{ question }}",
}


async def test_a_survey_speaks_the_respondents_language_and_the_default_to_others(tmp_path):
    templates = write(tmp_path / "templates", SURVEY_TEXTS)
    async with Harness([spanish_survey(timedelta(hours=1))], templates) as harness:
        spanish, english = harness.phone(PHONE, language="es"), harness.phone("+64210000002")
        await spanish.send("visit")
        assert spanish.last.text == "¿Cómo vino?\n1) Bus\n2) Car"
        await english.send("visit")
        assert english.last.text == "How did you come?\n1) Bus\n2) Car"
        await harness.advance(hours=1)
        assert spanish.last.text == "Recordatorio: ¿Cómo vino?\n1) Bus\n2) Car"
        assert english.last.text == "Reminder: How did you come?\n1) Bus\n2) Car"
        await spanish.send("tren")
        assert (
            spanish.last.text == "Responda con un número del 1 al 2.\n¿Cómo vino?\n1) Bus\n2) Car"
        )
        await english.send("train")
        assert english.last.text.startswith("Please answer with a number from 1 to 2.\nHow")
        (reply,) = await spanish.send("2")
        assert (reply.text, reply.template) == ("Puntúenos 1-5", "s/rating.es.txt")
        (reply,) = await spanish.send("9")
        assert reply.text == "Responda del 1 al 5. Puntúenos 1-5"
        await spanish.send("5")
        assert spanish.last.text == "Again?"  # one text for all: the default
        await spanish.send("quizás")
        assert spanish.last.text == "SÍ o NO\nAgain?"
        assert (await spanish.send("yes"))[0].text == "¡Gracias!"


@pytest.mark.parametrize(
    ("prompt", "error"),
    [({}, "give a text, or texts by language"),
     ({"en": "Hi", "es": "s/q.es.txt"}, "give its name alone"),
     ({"en": "Hi", "xx-": "Hi"}, "'xx-' is not a language code")],
)  # fmt: skip
def test_a_question_refuses_texts_by_language_it_could_not_send(prompt, error):
    with pytest.raises(ValueError, match=error):
        Question.text("q", prompt)
    with pytest.raises(ValueError, match=error):
        Survey("s", [Question.text("q", "Hi")], closing=prompt)


# botkit check


def checked(folder: Path, files: dict[str, str]) -> list[tuple[str, str, str]]:
    write(folder, {"bots/.keep": "", **{f"templates/{n}": t for n, t in files.items()}})
    problems = check(folder / "bots", folder / "templates")
    return [(p.file.relative_to(p.file.parents[1]).as_posix(), p.kind, p.message) for p in problems]


def test_check_reports_each_language_a_template_lacks_a_base_version_covering_its_regions(
    tmp_path,
):
    problems = checked(
        tmp_path,
        {"s/a.txt": "a", "s/a.pt-br.txt": "a", "s/b.txt": "b", "s/b.pt.txt": "b", "t/c.txt": "c"},
    )
    assert problems == [
        (
            "s/a.txt",
            "missing-language",
            "s/a.txt has no pt version (s/b.pt.txt is one): pt speakers get the default; "
            "add s/a.pt.txt",
        )
    ]  # b.pt serves pt-br speakers; t/ has versions in no language


def test_check_reports_botkits_texts_a_project_has_put_in_only_some_languages(tmp_path):
    problems = checked(tmp_path, {"compliance/stopped.es.txt": "Baja: {{ sender }}"})
    assert [(where, kind) for where, kind, _ in problems] == [
        ("compliance/help.txt", "missing-language"),
        ("compliance/started.txt", "missing-language"),
        ("compliance/stopped_all.txt", "missing-language"),
    ]
    assert problems[0][2].endswith("add compliance/help.es.txt")


def test_check_reads_a_version_as_its_default_is_read(tmp_path):
    problems = checked(
        tmp_path,
        {
            "s/a.txt": "Hi {{ name }}",
            "s/a.es.txt": "Hola {{ nombre }}",
            "s/a.mi.txt": "Kia ora {% if name %}",
        },
    )
    assert problems == [
        ("s/a.es.txt", "missing-variable", "uses 'nombre', which its default s/a.txt does not: "
         "its replies may not pass it"),
        ("s/a.mi.txt", "template-error", "Unexpected end of template. Jinja was looking for the "
         "following tags: 'elif' or 'else' or 'endif'. The innermost block that needs to be "
         "closed is 'if'."),
    ]  # fmt: skip


def test_example_bots_speak_two_languages_and_check_clean():
    root = Path(__file__).resolve().parent.parent
    assert check(root / "bots", root / "templates") == []
    assert list((root / "templates").rglob("*.es.txt"))
