"""SMS templates: rendered without HTML escaping, strict about undefined variables, with
errors that name the file and line; and replies from templates or literal text."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from botkit import Bot, Context, Message, Reply, TemplateError, Thread
from botkit.addresses import OurNumbers
from botkit.templates import SMSTemplates, is_template_name


def templates_with(tmp_path: Path, files: dict[str, str]) -> SMSTemplates:
    """An SMSTemplates over tmp_path holding `files` (template name -> text)."""
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return SMSTemplates(tmp_path)


def test_html_characters_come_out_verbatim(tmp_path):
    sms = templates_with(tmp_path, {"offer.txt": "{{ shop }} & <b>{{ deal }}</b> \"now\" 'today'"})
    text = sms.render("offer.txt", shop="Fish & Chips", deal="<2 for 1>")
    assert text == "Fish & Chips & <b><2 for 1></b> \"now\" 'today'"


def test_variables_are_substituted(tmp_path):
    sms = templates_with(tmp_path, {"hello/greet.txt": "Hi {{ name }}, you are #{{ n }}."})
    assert sms.render("hello/greet.txt", name="Ann", n=3) == "Hi Ann, you are #3."


def test_undefined_variable_is_a_template_error_naming_the_template(tmp_path):
    sms = templates_with(tmp_path, {"greet.txt": "Hi {{ name }}"})
    with pytest.raises(TemplateError, match=r"greet\.txt.*'name' is undefined"):
        sms.render("greet.txt")


def test_undefined_attribute_is_a_template_error(tmp_path):
    sms = templates_with(tmp_path, {"greet.txt": "Hi {{ user.name }}"})
    with pytest.raises(TemplateError, match=r"greet\.txt"):
        sms.render("greet.txt", user={})


def test_missing_template_is_a_template_error_naming_it(tmp_path):
    sms = SMSTemplates(tmp_path)
    with pytest.raises(TemplateError, match=r"'nope/missing\.txt' not found"):
        sms.render("nope/missing.txt")


def test_syntax_error_names_the_file_and_line(tmp_path):
    sms = templates_with(tmp_path, {"bad.txt": "Line one\n{% if %}\nend"})
    with pytest.raises(TemplateError, match=r"bad\.txt, line 2"):
        sms.render("bad.txt")


def test_syntax_error_in_an_included_template_names_that_file(tmp_path):
    sms = templates_with(
        tmp_path, {"outer.txt": 'Hi {% include "_footer.txt" %}', "_footer.txt": "ok\n\n{{ }"}
    )
    with pytest.raises(TemplateError, match=r"_footer\.txt, line 3"):
        sms.render("outer.txt")


def test_missing_included_template_is_named(tmp_path):
    sms = templates_with(tmp_path, {"outer.txt": 'Hi {% include "_missing.txt" %}'})
    with pytest.raises(TemplateError, match=r"_missing\.txt"):
        sms.render("outer.txt")


def test_error_while_rendering_is_a_template_error_naming_the_file(tmp_path):
    sms = templates_with(tmp_path, {"price.txt": "Total: {{ total|round(2) }}"})
    with pytest.raises(TemplateError, match=r"price\.txt"):
        sms.render("price.txt", total="12.5")


def test_trailing_newline_is_stripped(tmp_path):
    sms = templates_with(tmp_path, {"greet.txt": "Hello {{ name }}\n"})
    assert sms.render("greet.txt", name="Ann") == "Hello Ann"


def test_block_tags_leave_no_blank_lines(tmp_path):
    sms = templates_with(
        tmp_path, {"list.txt": "Items:\n{% for item in items %}\n- {{ item }}\n{% endfor %}\n"}
    )
    assert sms.render("list.txt", items=["a", "b"]) == "Items:\n- a\n- b"


def test_render_that_is_all_whitespace_makes_no_reply(tmp_path):
    sms = templates_with(tmp_path, {"blank.txt": "{% if show %}text{% endif %}\n   \n"})
    with pytest.raises(TemplateError, match=r"blank\.txt.*empty"):
        sms.reply("blank.txt", {"show": False})


def test_literal_text_that_is_all_whitespace_makes_no_reply(tmp_path):
    with pytest.raises(TemplateError, match="empty"):
        SMSTemplates(tmp_path).reply("  \n ", {})


def test_reply_from_template_records_template_encoding_and_segments(tmp_path):
    sms = templates_with(tmp_path, {"hello/greet.txt": "Hi {{ name }}!"})
    reply = sms.reply("hello/greet.txt", {"name": "Ann"})
    assert reply == Reply("Hi Ann!", "hello/greet.txt", "GSM-7", 1)


def test_reply_from_literal_text_is_sent_as_it_is(tmp_path):
    reply = SMSTemplates(tmp_path).reply("Thanks {name} & bye", {})
    assert reply == Reply("Thanks {name} & bye", None, "GSM-7", 1)


@pytest.mark.parametrize("text", ["Kia ora, Tāne", "Thanks 🙂"])
def test_reply_outside_gsm7_is_ucs2(tmp_path, text):
    reply = SMSTemplates(tmp_path).reply(text, {})
    assert (reply.encoding, reply.segments) == ("UCS-2", 1)


def test_long_template_reply_counts_its_segments(tmp_path):
    sms = templates_with(tmp_path, {"long.txt": "{{ 'x' * 161 }}"})
    reply = sms.reply("long.txt", {})
    assert (len(reply.content), reply.encoding, reply.segments) == (161, "GSM-7", 2)


def test_literal_text_with_variables_is_refused(tmp_path):
    with pytest.raises(TemplateError, match=r"name.*\.txt"):
        SMSTemplates(tmp_path).reply("Hi {{ name }}", {"name": "Ann"})


@pytest.mark.parametrize("text", ["greet.txt", "hello/greet.txt", "_footer.txt"])
def test_one_word_ending_in_txt_is_a_template_name(text):
    assert is_template_name(text)


@pytest.mark.parametrize(
    "text", ["See notes.txt", "Terms at example.com/terms.txt", "greet.txt\n", "greet.txt.", "hi"]
)
def test_anything_else_is_literal_text(text):
    assert not is_template_name(text)


def test_sentence_ending_in_txt_is_sent_as_text(tmp_path):
    reply = SMSTemplates(tmp_path).reply("Read the rules in rules.txt", {})
    assert (reply.content, reply.template) == ("Read the rules in rules.txt", None)


def test_one_word_txt_name_without_a_file_is_a_missing_template(tmp_path):
    with pytest.raises(TemplateError, match="not found"):
        SMSTemplates(tmp_path).reply("rules.txt", {})


# Context.reply ----------------------------------------------------------------------------


def context_over(sms: SMSTemplates) -> Context:
    bot = Bot("hello")
    message = Message(
        id=1,
        gateway_id=100,
        source="+61400000001",
        destination="1234",
        content="HELLO",
        received_at=datetime(2024, 1, 1, tzinfo=UTC),
    )
    thread = Thread(bot="hello", handset="+61400000001", address="1234")
    numbers = OurNumbers(["1234"], message_class="mt_message")
    return Context(message, thread, bot, sms, now=message.received_at, numbers=numbers)


def test_context_reply_renders_a_template_and_queues_it(tmp_path):
    ctx = context_over(templates_with(tmp_path, {"hello/greet.txt": "Hi {{ name }} & co"}))
    reply = ctx.reply("hello/greet.txt", name="Ann")
    assert reply.content == "Hi Ann & co"
    assert ctx.replies == (reply,)


def test_context_reply_sends_literal_text(tmp_path):
    ctx = context_over(SMSTemplates(tmp_path))
    ctx.reply("First")
    ctx.reply("Second")
    assert [r.content for r in ctx.replies] == ["First", "Second"]
    assert all(r.template is None for r in ctx.replies)


def test_context_reply_refuses_literal_text_with_variables_and_queues_nothing(tmp_path):
    ctx = context_over(SMSTemplates(tmp_path))
    with pytest.raises(TemplateError, match="literal text"):
        ctx.reply("Hi there", name="Ann")
    assert ctx.replies == ()
