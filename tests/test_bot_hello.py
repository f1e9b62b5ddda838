"""The hello bot's own tests, written with botkit.testing as a bot author would."""

from __future__ import annotations

import re

import pytest
from conftest import ROOT

from botkit.testing import Harness

pytestmark = pytest.mark.backends

BOTS, TEMPLATES = ROOT / "bots", ROOT / "templates"


async def test_asks_a_name_then_greets_by_it(database):
    async with Harness(BOTS, TEMPLATES, db=database) as harness:
        phone = harness.phone()
        (ask,) = await phone.send("HELLO")
        assert ask.template == "hello/ask_name.txt"
        assert (await phone.thread()).state == "ask_name"

        (greet,) = await phone.send("  Ada   Lovelace ")
        assert greet.text == (
            "Nice to meet you, Ada Lovelace! Text HELLO any time and I'll remember you."
        )
        thread = await phone.thread()
        assert (thread.state, thread.data) == (None, {"name": "Ada Lovelace"})
        assert greet.thread_id == ask.thread_id == thread.id


async def test_remembers_the_name_next_time(database):
    async with Harness(BOTS, TEMPLATES, db=database) as harness:
        phone = harness.phone()
        await phone.send("hi")
        await phone.send("Grace")
        (welcome,) = await phone.send("hey")
        assert welcome.template == "hello/welcome_back.txt"
        phone.expect(re.compile(r"^Welcome back, Grace!"))


async def test_name_can_be_changed(database):
    async with Harness(BOTS, TEMPLATES, db=database) as harness:
        phone = harness.phone()
        for text in ("hello", "Grace", "NAME", "Ada"):
            await phone.send(text)
        phone.expect("Nice to meet you, Ada!")
        assert (await phone.thread()).data == {"name": "Ada"}


async def test_a_name_too_long_is_asked_again(database):
    async with Harness(BOTS, TEMPLATES, db=database) as harness:
        phone = harness.phone()
        await phone.send("hello")
        (again,) = await phone.send("x" * 41)
        assert again.template == "hello/ask_name_again.txt"
        assert (await phone.thread()).state == "ask_name"


async def test_anything_else_lists_the_keywords(database):
    async with Harness(BOTS, TEMPLATES, db=database) as harness:
        phone = harness.phone()
        (help_text,) = await phone.send("pizza?")
        assert (
            help_text.text == "I didn't catch that. Text one of: "
            "BOOK, RESCHEDULE, UNBOOK, ESPAÑOL, ENGLISH, HELLO, NAME, JOIN, OFFERS, SURVEY"
        )


async def test_handsets_are_kept_apart(database):
    async with Harness(BOTS, TEMPLATES, db=database) as harness:
        ada, grace = harness.phone("+61400000001"), harness.phone("+64211234567")
        await ada.send("hello")
        await grace.send("hello")
        await ada.send("Ada")
        await grace.send("Grace")
        ada.expect("Ada")
        grace.expect("Grace")
        assert (await ada.thread()).id != (await grace.thread()).id


async def test_a_greeting_again_is_no_name(database):
    async with Harness(BOTS, TEMPLATES, db=database) as harness:
        phone = harness.phone()
        await phone.send("HELLO")
        (again,) = await phone.send("hello")
        assert again.template == "hello/ask_name.txt"
        assert (await phone.thread()).state == "ask_name"
        (greet,) = await phone.send("Hi there")  # a name may start with one
        assert greet.text.startswith("Nice to meet you, Hi there!")


async def test_speaks_spanish_to_a_spanish_speaker_and_the_default_to_others(database):
    async with Harness(BOTS, TEMPLATES, db=database) as harness:
        spanish, brazilian = (
            harness.phone(language="es"),
            harness.phone("+61400000002", language="pt-br"),
        )
        (ask,) = await spanish.send("HOLA")  # not a keyword: the help, in Spanish
        assert ask.template == "hello/help.es.txt"
        assert ask.text.startswith("No te he entendido. Escribe una de estas palabras: ")
        (ask,) = await spanish.send("HELLO")
        assert (ask.template, ask.text) == (
            "hello/ask_name.es.txt",
            "¡Hola! Soy el bot de saludo de botkit. ¿Cómo te llamas?",
        )
        (greet,) = await spanish.send("Ana")
        assert greet.text.startswith("¡Encantado de conocerte, Ana!")
        (ask,) = await brazilian.send("HELLO")  # no Portuguese: the default
        assert ask.template == "hello/ask_name.txt"
