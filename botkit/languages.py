"""Language codes as botkit keeps them, and the order a person's language is looked for.

A code is a BCP 47 tag written in lower case with "-" between its parts: "es", "mi",
"pt-br", "zh-hant". "pt_BR" and "PT-br" are read as "pt-br"; anything else is refused,
since a code ends up in a template's file name (`hello/greet.pt-br.txt`). A code falls
back part by part, then to the default text: "pt-br", then "pt", then the default.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

# A language of two or three letters (ISO 639-1, or 639-3 where there is none: "haw"),
# then script, region or variant parts of up to eight letters or digits.
LANGUAGE = re.compile(r"[a-z]{2,3}(-[a-z0-9]{1,8})*")
MAX_LENGTH = 35  # what RFC 5646 asks implementations to handle at least

# A text per language: {"en": "How was it?", "es": "¿Qué tal?"}; the first is the default.
Texts = str | Mapping[str, str]


def language_code(text: str) -> str:
    """`text` as botkit keeps a language code ("pt_BR" is "pt-br"); ValueError for
    anything that is not one."""
    code = text.lower().replace("_", "-") if isinstance(text, str) else ""
    if len(code) > MAX_LENGTH or LANGUAGE.fullmatch(code) is None:
        raise ValueError(
            f"language {text!r} is not a language code: give one such as 'es', 'mi' or 'pt-br'"
        )
    return code


def fallbacks(language: str | None) -> list[str]:
    """The codes to look for, the most specific first: "pt-br" gives ["pt-br", "pt"]
    (then the default); None gives none."""
    if language is None:
        return []
    parts = language_code(language).split("-")
    return ["-".join(parts[:count]) for count in range(len(parts), 0, -1)]


def texts(value: Texts, what: str) -> Texts:
    """A text, or texts by language checked and keyed by their codes (the first stays
    the default); ValueError naming `what` for an empty one or a code that is not one."""
    if isinstance(value, str):
        return value
    if not isinstance(value, Mapping) or not value:
        raise ValueError(f"{what}: give a text, or texts by language ({{'en': ..., 'es': ...}})")
    keyed = {}
    for language, text in value.items():
        try:
            code = language_code(language)
        except ValueError as exc:
            raise ValueError(f"{what}: {exc}") from None
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"{what}: the {code!r} text is empty")
        keyed[code] = text
    if len(keyed) < len(value):
        raise ValueError(f"{what}: two texts are for one language")
    return keyed


def choose(value: Texts, language: str | None) -> str:
    """The text for `language` (or its base language), else the default: the first."""
    if isinstance(value, str):
        return value
    for code in fallbacks(language):
        if code in value:
            return value[code]
    return next(iter(value.values()))
