"""Surveys: questions asked one at a time over SMS, answers stored per respondent.

    from datetime import timedelta
    from botkit import Bot, Question, Survey

    bot = Bot("feedback")
    Survey(
        "csat",
        [
            Question.rating("rating", "How did we do, from 1 (poor) to 5 (great)?",
                            next={1: "wrong", 2: "wrong"}),
            Question.yes_no("recommend", "Would you recommend us? YES or NO"),
            Question.text("wrong", "Sorry! What went wrong?"),
        ],
        closing="Thank you!",
        reminder=timedelta(hours=4),
        expiry=timedelta(days=2),
    ).attach(bot, keyword="SURVEY")

A survey registers a state, the timer that starts it (`survey:<name>`, which is how a
broadcast starts it) and its reminder and expiry timers on the bot, with the bot's own
decorators: routing, compliance (STOP still wins) and `botkit check` see ordinary
handlers. Each answer is written with the reply it causes, in one transaction. Its
progress is kept in the thread's data under `survey:<name>`, so a handset can be in two
surveys at once, one per thread; an answer finds its thread through `reply_to` or the
echoed reference, else it goes to the handset's most recent open thread.

Everything a survey sends is in the handset's language where there is one for it: a
template's version for the language (`survey/q1.es.txt`), a literal text given by
language (`{"en": "How did we do?", "es": "¿Qué tal lo hicimos?"}`), and the hints and
the "Reminder:" botkit adds (survey/hints/<kind>.txt and survey/reminder.txt).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import Any, TypeGuard

from .bot import Bot
from .context import Context
from .errors import HandlerError
from .languages import Texts, choose
from .messages import Thread
from .questions import END, InvalidAnswer, Question, literal_texts
from .store import surveys
from .store.surveys import COLUMNS, Answer
from .templates import is_template_name

SURVEY_NAME = re.compile(r"[A-Za-z0-9_-]+")


class Survey:
    """A named list of questions, asked in order (or as their `next` branches), then a
    closing message. `closing`, `expired` and every prompt are template names, literal
    text, or literal texts by language (the first the default).

    An answer a question cannot take is asked again with a hint saying what is expected,
    up to `max_reasks` times; the next invalid answer skips the question. A question left
    unanswered for `reminder` is sent once more; past `expiry` without an answer the
    respondent's thread ends as incomplete (after sending `expired`, if given).
    """

    END = END

    def __init__(
        self,
        name: str,
        questions: Sequence[Question],
        *,
        closing: Texts | None = None,
        reminder: timedelta | None = None,
        expiry: timedelta | None = None,
        expired: Texts | None = None,
        max_reasks: int = 2,
    ) -> None:
        if SURVEY_NAME.fullmatch(name) is None:
            raise ValueError(f"survey name {name!r}: use letters, digits, '-' and '_'")
        self.name = name
        self.questions = {question.id: question for question in questions}
        self.order = [question.id for question in questions]
        self.closing = _texts(closing, f"survey {name!r}: closing")
        self.reminder = reminder
        self.expiry = expiry
        self.expired = _texts(expired, f"survey {name!r}: expired")
        self.max_reasks = max_reasks
        self._check()

    def __repr__(self) -> str:
        return f"Survey({self.name!r}, {len(self.order)} questions)"

    @property
    def state(self) -> str:
        """The thread state that takes the answers; also the key of the progress in
        the thread's data."""
        return f"survey:{self.name}"

    @property
    def entry(self) -> str:
        """The timer that starts the survey in a thread (a broadcast schedules it)."""
        return f"survey:{self.name}"

    @property
    def remind_timer(self) -> str:
        return f"survey:{self.name}:remind"

    @property
    def expire_timer(self) -> str:
        return f"survey:{self.name}:expire"

    def attach(
        self,
        bot: Bot,
        *,
        keyword: str | None = None,
        aliases: Iterable[str] = (),
        interrupts: bool = False,
    ) -> Survey:
        """Register the survey on `bot`: its state and timers, and `keyword` (with
        `aliases`) to start it from a text (before any thread's state, if it
        `interrupts`)."""
        if keyword is not None:
            bot.keyword(keyword, aliases=aliases, interrupts=interrupts)(self.start)
        bot.state(self.state)(self.answer)
        bot.timer(self.entry)(self.start)
        bot.timer(self.remind_timer)(self.remind)
        bot.timer(self.expire_timer)(self.expire)
        return self

    async def start(self, ctx: Context) -> None:
        """Ask the first question (the keyword, or the entry timer of a broadcast)."""
        first = self.questions[self.order[0]]
        ctx.data[self.state] = {"question": first.id, "reasks": 0, "reminded": False, "answers": {}}
        described = [question.describe() for question in self.questions.values()]
        ctx.write(lambda tx, thread, now: surveys.begin(tx, _id(thread), self.name, described, now))
        self._ask(ctx, first)

    async def answer(self, ctx: Context) -> None:
        """An answer to the current question: store it and go on, or ask again."""
        progress = ctx.data.get(self.state)
        question = self.questions.get(progress["question"]) if progress else None
        if progress is None or question is None:
            # The survey changed under a respondent (a deploy): start them afresh.
            await self.start(ctx)
            return
        try:
            value = question.parse(ctx.text)
        except InvalidAnswer:
            if progress["reasks"] < self.max_reasks:
                progress["reasks"] += 1
                self._ask(ctx, question, hint=question.hint(ctx.render, ctx.language))
                return
            self._go_on(ctx, self._following(question))
            return
        progress["answers"][question.id] = value
        message_id = ctx.message.id if ctx.message is not None else None
        answer = Answer(self.name, question.id, value, ctx.text, message_id)
        ctx.write(lambda tx, thread, now: surveys.save_answer(tx, _id(thread), answer, now))
        self._go_on(ctx, self._next(question, value))

    async def remind(self, ctx: Context) -> None:
        """The question is still unanswered: send it once more."""
        progress = ctx.data.get(self.state)
        assert ctx.timer is not None
        if ctx.state != self.state or progress is None:
            return
        if progress["question"] != ctx.timer.data.get("question"):
            return
        progress["reminded"] = True
        self._send(ctx, self.questions[progress["question"]], reminder=True)

    async def expire(self, ctx: Context) -> None:
        """No answer in time: the respondent's thread ends as incomplete."""
        progress = ctx.data.get(self.state)
        if ctx.state != self.state or progress is None:
            return
        if self.expired is not None:
            self._say(ctx, self.expired, progress)
        self._close(ctx, "incomplete", reason="expired")

    def _go_on(self, ctx: Context, target: str) -> None:
        """Ask question `target`, or close the survey when it is END."""
        progress = ctx.data[self.state]
        if target == END:
            if self.closing is not None:
                self._say(ctx, self.closing, progress)
            self._close(ctx, "completed")
            return
        progress.update(question=target, reasks=0, reminded=False)
        self._ask(ctx, self.questions[target])

    def _close(self, ctx: Context, status: str, reason: str = "ended") -> None:
        """Record the respondent's final status and end the thread (for `reason`)."""
        ctx.write(lambda tx, thread, now: surveys.end(tx, _id(thread), self.name, status, now))
        ctx.end(reason)

    def _ask(self, ctx: Context, question: Question, *, hint: str | None = None) -> None:
        """Send a question (again), wait for its answer, and set its reminder and expiry."""
        self._send(ctx, question, hint=hint)
        ctx.state = self.state
        ctx.cancel(self.remind_timer, self.expire_timer)
        data = {"question": question.id}
        if self.reminder is not None and not ctx.data[self.state]["reminded"]:
            ctx.schedule(self.remind_timer, seconds=self.reminder.total_seconds(), data=data)
        if self.expiry is not None:
            ctx.schedule(self.expire_timer, seconds=self.expiry.total_seconds(), data=data)

    def _send(
        self, ctx: Context, question: Question, *, hint: str | None = None, reminder: bool = False
    ) -> None:
        """Reply with a question: a template gets `hint`, `reminder` and `answers` (and
        `options`, `scale`, `min`, `max` by type); literal text is prefixed with them."""
        if _is_template(question.prompt):
            answers = ctx.data[self.state]["answers"]
            variables = question.variables()
            ctx.reply(question.prompt, hint=hint, reminder=reminder, answers=answers, **variables)
            return
        text = question.literal(ctx.language)
        if reminder:
            text = ctx.render("survey/reminder.txt", question=text)
        ctx.reply(f"{hint}\n{text}" if hint else text)

    def _say(self, ctx: Context, text: Texts, progress: dict[str, Any]) -> None:
        """The closing or expired message; a template gets the `answers`."""
        if _is_template(text):
            ctx.reply(text, answers=progress["answers"])
        else:
            ctx.reply(choose(text, ctx.language))

    def _next(self, question: Question, value: Any) -> str:
        """Where an answer leads: its branch, or the following question."""
        target = question.target(value)
        if target is None:
            return self._following(question)
        if target != END and target not in self.questions:
            raise HandlerError(f"survey {self.name!r}: {question.id!r} leads to no {target!r}")
        return target

    def _following(self, question: Question) -> str:
        """The question after `question` in the list, or END after the last."""
        index = self.order.index(question.id) + 1
        return self.order[index] if index < len(self.order) else END

    def _check(self) -> None:
        """Refuse a survey that could not run: no questions, ids twice or clashing with
        the result columns, branches to nowhere, timings that make no sense."""
        if not self.order:
            raise ValueError(f"survey {self.name!r} has no questions")
        if len(self.questions) < len(self.order):
            raise ValueError(f"survey {self.name!r}: two questions have one id")
        for id, question in self.questions.items():
            if id in COLUMNS:
                raise ValueError(f"survey {self.name!r}: {id!r} is a result column's name")
            if isinstance(question.prompt, str) and not question.prompt.strip():
                raise ValueError(f"survey {self.name!r}: question {id!r} has no prompt")
            for target in question.branch_targets():
                if target != END and target not in self.questions:
                    raise ValueError(f"survey {self.name!r}: {id!r} leads to no {target!r}")
        if self.max_reasks < 0:
            raise ValueError(f"survey {self.name!r}: max_reasks cannot be negative")
        for what, delay in (("reminder", self.reminder), ("expiry", self.expiry)):
            if delay is not None and delay <= timedelta(0):
                raise ValueError(f"survey {self.name!r}: the {what} must be after the question")
        if self.reminder and self.expiry and self.reminder >= self.expiry:
            raise ValueError(f"survey {self.name!r}: the reminder must come before the expiry")


def _is_template(text: Texts) -> TypeGuard[str]:
    """Whether a prompt or closing names a template (texts by language never do)."""
    return isinstance(text, str) and is_template_name(text)


def _texts(value: Texts | None, what: str) -> Texts | None:
    """A closing or expired message checked as a prompt is (`literal_texts`)."""
    return None if value is None else literal_texts(value, what)


def _id(thread: Thread) -> int:
    """A saved thread's id (writes run once the thread is saved)."""
    assert thread.id is not None
    return thread.id
