"""Opt-out compliance: STOP, START and HELP, handled before any bot sees the message.

A stop word opts the handset out of the number it texted (a stop-all word out of
every number), with one confirmation; from then on the outbox refuses every MT to it
from there. A start word opts it back in; a help word gets the help text. Words
match the whole message, whatever its case, spaces and punctuation ("Stop.", "s t o p").
The texts are templates under compliance/ (botkit ships them; a project's
templates/compliance/*.txt override them), in the handset's language where there is a
version for it (templates/compliance/stopped.es.txt).
"""

from __future__ import annotations

import dataclasses
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from .addresses import EVERYWHERE
from .bot import Bot
from .messages import ConsentChange, Message, Reply
from .settings import Settings
from .templates import SMSTemplates

STOP, STOP_ALL, START, HELP = "stop", "stop-all", "start", "help"
# The setting that lists each action's words, and what a message that is one of them does.
WORD_SETTINGS = {
    STOP: "stop_words",
    STOP_ALL: "stop_all_words",
    START: "start_words",
    HELP: "help_words",
}
EFFECTS = {
    STOP: "opts the handset out of the number it texted",
    STOP_ALL: "opts the handset out of every number",
    START: "opts the handset back in",
    HELP: "is answered with the help text",
}
BOT = "compliance"  # the bot name on the threads of compliance replies


def normalise(text: str) -> str:
    """A message as compliance words compare: letters and digits only, without accents,
    upper-case ("Arrêt !" is ARRET)."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if ch.isalnum()).upper()


def word_actions(settings: Settings) -> dict[str, str]:
    """Each compliance word of the settings, normalised, and the action it takes."""
    return {
        normalise(word): action
        for action, setting in WORD_SETTINGS.items()
        for word in getattr(settings, setting)
    }


@dataclass(frozen=True)
class TakenKeyword:
    """A bot keyword that is also a compliance word: the message that is the word alone
    is compliance's, and only a longer one reaches the bot."""

    bot: Bot
    word: str
    action: str

    def __str__(self) -> str:
        """What happens to such messages, and how to free the word; said alike by
        `botkit check` and by `botkit run` on start-up."""
        word, setting = self.word, WORD_SETTINGS[self.action]
        handler = self.bot.keywords[word].__name__
        variable = Settings.__dataclass_fields__[setting].metadata["env"]
        return (
            f"keyword {word} of bot {self.bot.name!r} is a compliance word: a message that "
            f"is {word} alone (in any case, spacing or punctuation) {EFFECTS[self.action]} "
            f"before any bot sees it; '{word} <more words>' goes to {self.bot.name}.{handler} "
            f"like any keyword; to use {word} as a keyword remove it from {setting} ({variable})"
        )


def taken_keywords(bots: Iterable[Bot], settings: Settings) -> list[TakenKeyword]:
    """The keywords (and aliases) of `bots` that are compliance words too."""
    actions = word_actions(settings)
    return [
        TakenKeyword(bot, word, actions[normalise(word)])
        for bot in bots
        for word in bot.keywords
        if normalise(word) in actions
    ]


@dataclass(frozen=True)
class Outcome:
    """What a compliance word does: consent changes, and the reply (if any)."""

    action: str
    changes: tuple[ConsentChange, ...]
    reply: Reply | None


class Compliance:
    """The configured compliance words, and what each does."""

    def __init__(self, settings: Settings, templates: SMSTemplates) -> None:
        self.templates = templates
        self.sender = settings.sender_name
        self.words = word_actions(settings)
        self.stop_word = settings.stop_words[0] if settings.stop_words else "STOP"
        self.start_word = settings.start_words[0] if settings.start_words else "START"

    def match(self, text: str) -> str | None:
        """The action of a message that is a compliance word, else None."""
        return self.words.get(normalise(text))

    def outcome(
        self, message: Message, action: str, already_out: bool, language: str | None = None
    ) -> Outcome:
        """What `action` does for `message`; `already_out` when the handset had opted
        out already (a repeated STOP changes nothing and is not confirmed again). The
        reply is in the handset's `language` where its template has a version for it."""
        keyword = normalise(message.text)
        if action in (STOP, STOP_ALL):
            address = EVERYWHERE if action == STOP_ALL else message.destination
            change = self._change(message, address, "opt-out", keyword)
            if already_out:
                return Outcome(action, (change,), None)
            # The one message that may go to a handset that has just opted out.
            confirmation = "stopped_all" if action == STOP_ALL else "stopped"
            reply = dataclasses.replace(self._reply(confirmation, language), exempt=True)
            return Outcome(action, (change,), reply)
        if action == START:
            change = self._change(message, message.destination, "opt-in", keyword)
            return Outcome(action, (change,), self._reply("started", language))
        return Outcome(action, (), self._reply("help", language))

    def _change(self, message: Message, address: str, action: str, keyword: str) -> ConsentChange:
        return ConsentChange(
            handset=message.source,
            address=address,
            action=action,
            source="sms",
            keyword=keyword,
            message_id=message.id,
        )

    def _reply(self, name: str, language: str | None) -> Reply:
        variables = {
            "sender": self.sender,
            "stop_word": self.stop_word,
            "start_word": self.start_word,
        }
        return self.templates.reply(f"compliance/{name}.txt", variables, language)
