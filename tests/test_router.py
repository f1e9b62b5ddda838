"""Routing an MO to a handler (interrupting keyword, state, keyword, the thread's fallback,
any fallback), the rules `Bot` enforces when handlers are registered, and the handler's
`Context`."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from botkit import Bot, Context, HandlerError, Message, Thread
from botkit.addresses import OurNumbers
from botkit.router import Router
from botkit.templates import SMSTemplates


def open_thread(bot: str, state: str | None = None) -> Thread:
    return Thread(bot=bot, handset="+61400000001", address="1234", id=7, state=state)


class Club:
    """A bot with a keyword and alias, a state, and a fallback; its handlers kept by name."""

    def __init__(self, name: str = "club") -> None:
        self.bot = bot = Bot(name)

        @bot.keyword("JOIN", aliases=["SIGNUP"])
        async def join(ctx: Context) -> None:
            pass

        @bot.keyword("HELLO")
        async def hello(ctx: Context) -> None:
            pass

        @bot.state("ask_name")
        async def ask_name(ctx: Context) -> None:
            pass

        @bot.fallback
        async def fallback(ctx: Context) -> None:
            pass

        self.join, self.hello, self.ask_name, self.fallback = join, hello, ask_name, fallback


def keyword_bot(name: str, word: str, *, fallback: bool = False) -> Bot:
    bot = Bot(name)

    @bot.keyword(word)
    async def on_keyword(ctx: Context) -> None:
        pass

    if fallback:

        @bot.fallback
        async def on_anything(ctx: Context) -> None:
            pass

    return bot


# Routing order --------------------------------------------------------------------------


def test_state_handler_wins_over_any_keyword():
    club = Club()
    thread = open_thread("club", state="ask_name")
    route = Router([club.bot, keyword_bot("quiz", "QUIZ")]).route(thread, "QUIZ")
    assert route is not None
    assert (route.bot, route.handler, route.kind) == (club.bot, club.ask_name, "state")
    assert route.thread is thread


def test_state_without_handler_falls_through_to_keyword():
    quiz = keyword_bot("quiz", "QUIZ")
    thread = open_thread("club", state="removed_state")
    route = Router([Club().bot, quiz]).route(thread, "quiz")
    assert route is not None
    assert (route.bot, route.kind) == (quiz, "keyword")
    assert thread.status == "open"  # left as it was: the dispatcher finds quiz's own


def test_state_without_handler_falls_through_to_thread_bots_fallback():
    club = Club()
    thread = open_thread("club", state="removed_state")
    route = Router([club.bot]).route(thread, "whatever")
    assert route is not None
    assert (route.handler, route.kind) == (club.fallback, "fallback")
    assert route.thread is thread


def test_thread_of_a_bot_no_longer_loaded_goes_to_first_fallback():
    club = Club()
    thread = open_thread("retired", state="ask_name")
    route = Router([club.bot]).route(thread, "hi")
    assert route is not None
    assert route.handler is club.fallback
    assert route.thread is None
    assert thread.status == "open"  # left as it was: the dispatcher finds quiz's own


def test_keyword_without_open_thread_starts_a_thread():
    club = Club()
    route = Router([club.bot]).route(None, "JOIN")
    assert route is not None
    assert (route.handler, route.kind) == (club.join, "keyword")
    assert route.thread is None


def test_alias_routes_to_the_keyword_handler():
    club = Club()
    route = Router([club.bot]).route(None, "signup")
    assert route is not None
    assert route.handler is club.join


@pytest.mark.parametrize("text", ["join", "Join", "JOIN", "join!", "join.", "(join)", "  join  "])
def test_keyword_ignores_case_and_surrounding_punctuation(text):
    club = Club()
    route = Router([club.bot]).route(None, text)
    assert route is not None
    assert route.handler is club.join


def test_keyword_is_the_first_word_only():
    club = Club()
    router = Router([club.bot])
    assert router.route(None, "hello there").handler is club.hello
    assert router.route(None, "there hello").handler is club.fallback


def test_word_starting_with_a_keyword_is_not_that_keyword():
    club = Club()
    assert Router([club.bot]).route(None, "joining").handler is club.fallback


def test_keyword_of_the_thread_bot_keeps_the_thread():
    club = Club()
    thread = open_thread("club")
    route = Router([club.bot]).route(thread, "JOIN")
    assert route is not None
    assert route.handler is club.join
    assert route.thread is thread


def test_keyword_of_another_bot_leaves_the_open_thread_be():
    quiz = keyword_bot("quiz", "QUIZ")
    thread = open_thread("club")
    route = Router([Club().bot, quiz]).route(thread, "quiz me")
    assert route is not None
    assert route.bot is quiz
    assert route.thread is None
    assert thread.status == "open"  # left as it was: the dispatcher finds quiz's own


def test_thread_bots_fallback_comes_before_other_fallbacks():
    club = Club()
    quiz = keyword_bot("quiz", "QUIZ", fallback=True)
    thread = open_thread("quiz")
    route = Router([club.bot, quiz]).route(thread, "something else")
    assert route is not None
    assert (route.bot, route.kind) == (quiz, "fallback")
    assert route.thread is thread


def test_first_bot_with_a_fallback_takes_what_nothing_else_claims():
    plain = keyword_bot("plain", "PLAIN")
    first = keyword_bot("first", "FIRST", fallback=True)
    second = keyword_bot("second", "SECOND", fallback=True)
    thread = open_thread("plain")
    route = Router([plain, first, second]).route(thread, "nothing")
    assert route is not None
    assert (route.bot, route.kind) == (first, "fallback")
    assert route.thread is None
    assert thread.status == "open"  # left as it was: the dispatcher finds quiz's own


def test_no_fallback_anywhere_routes_nowhere():
    router = Router([keyword_bot("a", "ALPHA"), keyword_bot("b", "BETA")])
    assert router.route(None, "gamma") is None
    assert router.route(open_thread("a"), "gamma") is None


def test_no_bots_routes_nowhere():
    assert Router([]).route(None, "hello") is None


def test_empty_text_goes_to_the_fallback():
    club = Club()
    assert Router([club.bot]).route(None, "").handler is club.fallback


def interrupting_bot(name: str, word: str) -> Bot:
    bot = Bot(name)

    @bot.keyword(word, aliases=[f"{word}2"], interrupts=True)
    async def on_keyword(ctx: Context) -> None:
        pass

    return bot


def test_an_interrupting_keyword_wins_over_the_threads_state():
    club = Club()
    stop_booking = interrupting_bot("club2", "RESCHEDULE")
    thread = open_thread("club", state="ask_name")
    router = Router([club.bot, stop_booking])
    route = router.route(thread, "reschedule please")
    assert (route.bot, route.kind, route.thread) == (stop_booking, "interrupt", None)
    assert router.route(thread, "reschedule2").kind == "interrupt"  # an alias interrupts too
    assert router.route(thread, "my name is reschedule").kind == "state"  # first word only


def test_an_interrupting_keyword_of_the_threads_own_bot_runs_in_the_thread():
    bot = Bot("booking")

    @bot.keyword("RESCHEDULE", interrupts=True)
    async def reschedule(ctx: Context) -> None:
        pass

    @bot.state("ask_date")
    async def ask_date(ctx: Context) -> None:
        pass

    thread = Thread(bot="booking", handset="+61400000001", address="1234", id=3, state="ask_date")
    route = Router([bot]).route(thread, "RESCHEDULE")
    assert (route.handler, route.kind, route.thread) == (reschedule, "interrupt", thread)


def test_a_plain_keyword_does_not_interrupt_a_state():
    club = Club()
    thread = open_thread("club", state="ask_name")
    route = Router([club.bot, interrupting_bot("other", "BOOK")]).route(thread, "join")
    assert route.kind == "state"


# Router construction ----------------------------------------------------------------------


def test_keyword_claimed_by_two_bots_is_refused_naming_both():
    with pytest.raises(ValueError, match="JOIN") as info:
        Router([keyword_bot("club", "JOIN"), keyword_bot("gym", "join")])
    assert "'club'" in str(info.value)
    assert "'gym'" in str(info.value)


def test_alias_clashing_with_another_bots_keyword_is_refused():
    with pytest.raises(ValueError, match=r"SIGNUP.*'club'.*'other'"):
        Router([Club().bot, keyword_bot("other", "signup")])


def test_two_bots_with_one_name_are_refused():
    with pytest.raises(ValueError, match="'club'"):
        Router([keyword_bot("club", "JOIN"), keyword_bot("club", "QUIZ")])


def test_router_keywords_are_main_keywords_in_declaration_order():
    first = Bot("first")

    @first.keyword("join", aliases=["SIGNUP", "ENROL"])
    async def join(ctx: Context) -> None:
        pass

    @first.keyword("Leave")
    async def leave(ctx: Context) -> None:
        pass

    router = Router([first, keyword_bot("second", "QUIZ")])
    assert router.keywords == ["JOIN", "LEAVE", "QUIZ"]


# Registering handlers ---------------------------------------------------------------------


def test_decorators_return_the_same_function():
    bot = Bot("plain")

    async def handler(ctx: Context) -> None:
        pass

    assert bot.keyword("GO")(handler) is handler
    assert bot.state("waiting")(handler) is handler
    assert bot.fallback(handler) is handler


def test_keyword_registered_twice_is_refused():
    bot = keyword_bot("club", "JOIN")
    with pytest.raises(ValueError, match="JOIN"):
        bot.keyword("join")(Club().join)


def test_alias_repeating_a_keyword_of_the_same_bot_is_refused():
    bot = keyword_bot("club", "JOIN")
    with pytest.raises(ValueError, match="JOIN"):
        bot.keyword("SIGNUP", aliases=["Join"])(Club().join)


@pytest.mark.parametrize("word", ["JOIN NOW", "!?", ""])
def test_keyword_that_is_not_one_word_is_refused(word):
    with pytest.raises(ValueError, match="one word"):
        Bot("club").keyword(word)(Club().join)


@pytest.mark.parametrize("word", ["JOIN\tNOW", "JOIN\nNOW"])
def test_keyword_with_inner_whitespace_other_than_space_is_refused(word):
    with pytest.raises(ValueError, match="one word"):
        Bot("club").keyword(word)(Club().join)


def test_sync_handler_is_refused():
    bot = Bot("club")

    def not_async(ctx: Context) -> None:
        pass

    for decorator in (bot.keyword("JOIN"), bot.state("waiting"), bot.fallback):
        with pytest.raises(TypeError, match="async"):
            decorator(not_async)
    assert (bot.keywords, bot.states, bot.fallback_handler) == ({}, {}, None)


def test_second_fallback_is_refused():
    bot = Club().bot
    with pytest.raises(ValueError, match="one fallback"):
        bot.fallback(Club().fallback)


def test_state_registered_twice_is_refused():
    bot = Club().bot
    with pytest.raises(ValueError, match="ask_name"):
        bot.state("ask_name")(Club().ask_name)


@pytest.mark.parametrize("name", ["", "two words", "semi;colon"])
def test_bot_name_must_be_letters_digits_dash_underscore(name):
    with pytest.raises(ValueError, match="bot name"):
        Bot(name)


# Context: what a routed handler gets -------------------------------------------------------


def make_context(tmp_path: Path, club: Club, thread: Thread | None = None) -> Context:
    message = Message(
        id=1,
        gateway_id=100,
        source="+61400000001",
        destination="1234",
        content="JOIN",
        received_at=datetime(2024, 1, 1, tzinfo=UTC),
    )
    return Context(
        message,
        thread or open_thread("club"),
        club.bot,
        SMSTemplates(tmp_path),
        now=message.received_at,
        numbers=OurNumbers([message.destination], message_class="mt_message"),
        keywords=Router([club.bot, keyword_bot("quiz", "QUIZ")]).keywords,
    )


def test_state_setter_accepts_a_state_the_bot_handles(tmp_path):
    ctx = make_context(tmp_path, Club())
    ctx.state = "ask_name"
    assert ctx.thread.state == "ask_name"
    ctx.state = None
    assert ctx.thread.state is None


def test_state_setter_refuses_a_state_the_bot_lacks(tmp_path):
    ctx = make_context(tmp_path, Club(), open_thread("club", state="ask_name"))
    with pytest.raises(HandlerError, match="no_such_state"):
        ctx.state = "no_such_state"
    assert ctx.thread.state == "ask_name"


def test_end_closes_the_thread_and_clears_its_state(tmp_path):
    ctx = make_context(tmp_path, Club(), open_thread("club", state="ask_name"))
    ctx.end()
    assert ctx.thread.status == "closed"
    assert ctx.state is None


def test_check_accepts_json_data(tmp_path):
    ctx = make_context(tmp_path, Club())
    ctx.data.update({"name": "Ann", "scores": [1, 2.5], "extra": {"ok": True, "none": None}})
    assert ctx.check() is None


@pytest.mark.parametrize(
    "value",
    [{1, 2}, datetime(2024, 1, 1, tzinfo=UTC), float("nan"), float("inf")],
    ids=["set", "datetime", "nan", "inf"],
)
def test_check_refuses_data_that_is_not_json(tmp_path, value):
    ctx = make_context(tmp_path, Club())
    ctx.data["value"] = value
    with pytest.raises(HandlerError, match="JSON"):
        ctx.check()


def test_context_keywords_lists_every_loaded_bots_keywords(tmp_path):
    ctx = make_context(tmp_path, Club())
    assert ctx.keywords == ["JOIN", "HELLO", "QUIZ"]


@pytest.mark.parametrize("value", [{1: "a"}, (1, 2)], ids=["int-key", "tuple"])
def test_check_refuses_data_that_would_come_back_different(tmp_path, value):
    ctx = make_context(tmp_path, Club())
    ctx.data["value"] = value
    with pytest.raises(HandlerError, match="would not come back as it is"):
        ctx.check()


def test_an_invalid_alias_registers_nothing():
    bot = Bot("shop")

    async def handler(ctx):
        pass

    with pytest.raises(ValueError, match="one word"):
        bot.keyword("BUY", aliases=["GET IT"])(handler)
    assert bot.keywords == {}
    assert bot.primary_keywords == []
