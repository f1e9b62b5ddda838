"""Survey questions: what each one asks, how an answer is read, and what a re-ask says.

    Question.text("comment", "Anything else you'd like to tell us?")
    Question.number("guests", "How many guests?", min=1, max=12)
    Question.choice("heard", "How did you hear about us?", ["Friend", "Advert", "Search"])
    Question.yes_no("again", "Would you order again?", next={False: "why_not"})
    Question.rating("rating", "How was it, from 1 (poor) to 5 (great)?")

`parse` turns an SMS into the answer's value (text, a number, an option, True or False)
or raises `InvalidAnswer`; `hint` says what a valid answer looks like (botkit's templates
survey/hints/<kind>.txt, which a project may override or put in other languages). `next`
branches: a question id (or `END`), a mapping from answer values to question ids, or a
function of the value; anything it leaves open goes on to the following question.

A literal prompt (or re-ask) may be given in several languages, the first the default:
`Question.yes_no("again", {"en": "Order again?", "es": "¿Volvería a pedir?"})`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field
from typing import Any, ClassVar

from .languages import Texts, choose, texts
from .templates import is_template_name

# A branch target that ends the survey (it is no valid question id).
END = ":end"

Next = str | Mapping[Any, str] | Callable[[Any], str | None] | None

QUESTION_ID = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
# Skin tones and variation selectors, so that 👍🏽 reads as 👍.
MODIFIERS = re.compile("[\U0001f3fb-\U0001f3ff\ufe0e\ufe0f]")
NUMBER_WORDS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5,
    "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10,
}  # fmt: skip
YES_PHRASES = {"of course", "yes please", "sure thing", "too right", "👍", "✅"}
NO_PHRASES = {"no thanks", "no thank you", "not really", "no way", "👎", "❌"}
YES_WORDS = {"y", "yes", "yeah", "yea", "yep", "yup", "ya", "yah", "ye", "sure", "ok",
             "okay", "absolutely", "definitely", "certainly", "correct", "true"}  # fmt: skip
NO_WORDS = {"n", "no", "nope", "nah", "na", "never", "negative", "false"}


def literal_texts(value: Texts, what: str) -> Texts:
    """A prompt, closing or re-ask: a text (or template name), or literal texts by
    language (`languages.texts`); ValueError for a template name among them, which has its
    versions by language beside it."""
    value = texts(value, what)
    if not isinstance(value, str) and any(map(is_template_name, value.values())):
        raise ValueError(
            f"{what}: a template is put in other languages beside it (name.es.txt): "
            "give its name alone"
        )
    return value


class InvalidAnswer(ValueError):
    """An answer the question cannot take; the survey asks again with the question's hint."""


def clean(text: str) -> str:
    """An answer lower-cased, its spaces collapsed, punctuation around it dropped."""
    text = MODIFIERS.sub("", " ".join(text.lower().split()))
    return text.strip(".,!?;:'\"()[]#* ")


def read_number(text: str) -> float:
    """A number written in digits ("1,200", "-3.5") or as a word up to ten."""
    if text in NUMBER_WORDS:
        return float(NUMBER_WORDS[text])
    if re.fullmatch(r"[-+]?(\d{1,3}(,\d{3})+|\d+)(\.\d+)?|[-+]?\.\d+", text) is None:
        raise InvalidAnswer(text)
    value = float(text.replace(",", ""))
    if not math.isfinite(value):
        raise InvalidAnswer(text)
    return value


@dataclass(frozen=True)
class Question:
    """One question of a survey. `prompt` is a template name (`.txt`) or literal text,
    or literal texts by language; `reask` (text or texts by language) replaces the hint
    sent with a question asked again."""

    id: str
    prompt: Texts
    _: KW_ONLY
    next: Next = None
    reask: Texts | None = None
    kind: ClassVar[str] = "text"

    def __post_init__(self) -> None:
        if QUESTION_ID.fullmatch(self.id) is None:
            raise ValueError(f"question id {self.id!r}: use letters, digits and '_'")
        object.__setattr__(self, "prompt", literal_texts(self.prompt, f"question {self.id!r}"))
        if self.reask is not None:
            reask = literal_texts(self.reask, f"question {self.id!r}: reask")
            object.__setattr__(self, "reask", reask)
        if isinstance(self.next, Mapping):
            wrong = [key for key in self.next if not self.accepts(key)]
            if wrong:
                raise ValueError(f"question {self.id!r}: no answer can be {wrong[0]!r}")

    def parse(self, text: str) -> Any:
        """The value of an answer; raises InvalidAnswer."""
        raise NotImplementedError

    def accepts(self, value: Any) -> bool:
        """True if `value` is an answer this question can have (for branch keys)."""
        return isinstance(value, str)

    def hint(self, render: Callable[..., str], language: str | None = None) -> str:
        """What a valid answer looks like, sent with the question when it is asked again:
        `reask` in `language`, else template survey/hints/<kind>.txt rendered by `render`
        (`ctx.render`, which renders it in the handset's language) with `variables()`."""
        if self.reask is not None:
            return choose(self.reask, language)
        return render(f"survey/hints/{self.kind}.txt", **self.variables())

    def values(self) -> list[Any] | None:
        """Every answer the question can have, when they can be counted."""
        return None

    def variables(self) -> dict[str, Any]:
        """What a prompt template is rendered with, beyond hint, reminder and answers."""
        return {}

    def literal(self, language: str | None = None) -> str:
        """The prompt as sent when it is literal text, in `language` if it has one."""
        return choose(self.prompt, language)

    def target(self, value: Any) -> str | None:
        """The question this answer branches to (or END); None: the following one."""
        if self.next is None or isinstance(self.next, str):
            return self.next
        if isinstance(self.next, Mapping):
            return self.next.get(value)
        return self.next(value)

    def branch_targets(self) -> list[str]:
        """The question ids `next` names, to check them when the survey is built."""
        if isinstance(self.next, str):
            return [self.next]
        return list(self.next.values()) if isinstance(self.next, Mapping) else []

    def describe(self) -> dict[str, Any]:
        """The question as stored with the survey's results: id, kind, countable values."""
        return {"id": self.id, "kind": self.kind, "values": self.values()}

    @staticmethod
    def text(id: str, prompt: Texts, *, next: Next = None, reask: Texts | None = None) -> Question:
        """A free-text question: any answer that is not empty."""
        return TextQuestion(id, prompt, next=next, reask=reask)

    @staticmethod
    def number(
        id: str,
        prompt: Texts,
        *,
        min: float | None = None,
        max: float | None = None,
        whole: bool = True,
        next: Next = None,
        reask: Texts | None = None,
    ) -> Question:
        """A number within `min` and `max` (when given), a whole one unless `whole=False`."""
        return NumberQuestion(id, prompt, min=min, max=max, whole=whole, next=next, reask=reask)

    @staticmethod
    def choice(
        id: str,
        prompt: Texts,
        options: Sequence[str],
        *,
        next: Next = None,
        reask: Texts | None = None,
    ) -> Question:
        """One of `options`, answered by number, letter or text; the value is the option."""
        return ChoiceQuestion(id, prompt, options=options, next=next, reask=reask)

    @staticmethod
    def yes_no(
        id: str, prompt: Texts, *, next: Next = None, reask: Texts | None = None
    ) -> Question:
        """YES or NO in their common variants; the value is True or False."""
        return YesNoQuestion(id, prompt, next=next, reask=reask)

    @staticmethod
    def rating(
        id: str, prompt: Texts, *, scale: int = 5, next: Next = None, reask: Texts | None = None
    ) -> Question:
        """A whole number from 1 to `scale` (5 unless given)."""
        return RatingQuestion(id, prompt, scale=scale, next=next, reask=reask)


@dataclass(frozen=True)
class TextQuestion(Question):
    """Any text but an empty one."""

    def parse(self, text: str) -> str:
        if not text.strip():
            raise InvalidAnswer(text)
        return text.strip()


@dataclass(frozen=True)
class NumberQuestion(Question):
    """A number, optionally whole and within a range; a unit after it is ignored ("3 kids")."""

    _: KW_ONLY
    min: float | None = None
    max: float | None = None
    whole: bool = True
    kind: ClassVar[str] = "number"

    def parse(self, text: str) -> int | float:
        number, _, unit = clean(text).partition(" ")
        if unit and not unit.isalpha():
            raise InvalidAnswer(text)
        value = read_number(number)
        if self.whole and not value.is_integer():
            raise InvalidAnswer(text)
        if not self.accepts(value):
            raise InvalidAnswer(text)
        return int(value) if value.is_integer() else value

    def accepts(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)

    def variables(self) -> dict[str, Any]:
        return {"min": self.min, "max": self.max, "whole": self.whole}


@dataclass(frozen=True)
class RatingQuestion(Question):
    """A whole number from 1 to `scale`: "4", "4/5", "4 stars", "four" or ⭐⭐⭐⭐."""

    _: KW_ONLY
    scale: int = 5
    kind: ClassVar[str] = "rating"

    def __post_init__(self) -> None:
        if not 2 <= self.scale <= 10:
            raise ValueError(f"question {self.id!r}: a rating scale goes from 2 to 10")
        super().__post_init__()

    def parse(self, text: str) -> int:
        answer = clean(text)
        stars = answer.replace(" ", "")
        if stars and set(stars) <= {"⭐", "★"}:
            answer = str(len(stars))
        match = re.fullmatch(r"(\w+)\s*(/\s*\d+|out of \d+|stars?)?", answer)
        try:
            value = read_number(match[1]) if match else -1.0
        except InvalidAnswer:
            raise InvalidAnswer(text) from None
        if not (value.is_integer() and self.accepts(int(value))):
            raise InvalidAnswer(text)
        return int(value)

    def accepts(self, value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= self.scale

    def values(self) -> list[Any]:
        return list(range(1, self.scale + 1))

    def variables(self) -> dict[str, Any]:
        return {"scale": self.scale}


@dataclass(frozen=True)
class ChoiceQuestion(Question):
    """One of `options`, answered by its number, its letter or its text (any case).

    A literal prompt is sent with the options listed under it, numbered; a template
    gets them as `options`."""

    _: KW_ONLY
    options: Sequence[str] = field(default_factory=tuple)
    kind: ClassVar[str] = "choice"

    def __post_init__(self) -> None:
        object.__setattr__(self, "options", tuple(self.options))
        if len(self.options) < 2:
            raise ValueError(f"question {self.id!r}: a choice needs two options or more")
        if len({clean(option) for option in self.options}) < len(self.options):
            raise ValueError(f"question {self.id!r}: two options read the same")
        super().__post_init__()

    def parse(self, text: str) -> str:
        answer = clean(text)
        for option in self.options:
            if clean(option) == answer:
                return option
        if answer.isdigit() and 1 <= int(answer) <= len(self.options):
            return self.options[int(answer) - 1]
        letters = "abcdefghijklmnopqrstuvwxyz"[: len(self.options)]
        if len(answer) == 1 and answer in letters:
            return self.options[letters.index(answer)]
        raise InvalidAnswer(text)

    def accepts(self, value: Any) -> bool:
        return value in self.options

    def values(self) -> list[Any]:
        return list(self.options)

    def variables(self) -> dict[str, Any]:
        return {"options": list(self.options)}

    def literal(self, language: str | None = None) -> str:
        lines = [f"{number}) {option}" for number, option in enumerate(self.options, 1)]
        return "\n".join([super().literal(language), *lines])


@dataclass(frozen=True)
class YesNoQuestion(Question):
    """YES or NO, in their common variants (yep, nah, 👍, "no thanks"...): True or False."""

    kind: ClassVar[str] = "yes_no"

    def parse(self, text: str) -> bool:
        answer = clean(text)
        first = answer.split(" ", 1)[0].strip(".,!?;:")
        if answer in YES_PHRASES or first in YES_WORDS:
            return True
        if answer in NO_PHRASES or first in NO_WORDS:
            return False
        raise InvalidAnswer(text)

    def accepts(self, value: Any) -> bool:
        return isinstance(value, bool)

    def values(self) -> list[Any]:
        return [True, False]
