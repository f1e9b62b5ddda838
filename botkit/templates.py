"""SMS templates: Jinja without HTML escaping, where an undefined variable is an error.

A template may have a version per language beside it: `hello/greet.es.txt` is the
Spanish `hello/greet.txt`. A reply in a language renders its version for the language,
else for its base language ("pt" for "pt-br"), else the default (botkit/languages.py).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import jinja2
from jinja2.loaders import split_template_path

from .errors import TemplateError
from .languages import fallbacks, language_code
from .messages import Reply
from .sms import measure

TEMPLATE_SUFFIX = ".txt"
# Texts botkit itself sends (compliance replies); a project's own folder comes first.
BUILT_IN = Path(__file__).resolve().parent / "sms_templates"


def is_template_name(text: str) -> bool:
    """A reply names a template when it ends in `.txt` and is one word; else it is text."""
    return text.endswith(TEMPLATE_SUFFIX) and not any(ch.isspace() for ch in text)


def variant_name(name: str, language: str) -> str:
    """The name of template `name`'s version in `language`: `hello/greet.es.txt`."""
    return f"{name.removesuffix(TEMPLATE_SUFFIX)}.{language}{TEMPLATE_SUFFIX}"


def split_variant(name: str) -> tuple[str, str] | None:
    """(The default's name, the language) of a language version's name, such as
    ("hello/greet.txt", "es") for `hello/greet.es.txt`; None for any other name."""
    stem, dot, language = name.removesuffix(TEMPLATE_SUFFIX).rpartition(".")
    if not dot or "/" in language or not name.endswith(TEMPLATE_SUFFIX):
        return None
    try:
        code = language_code(language)
    except ValueError:
        return None
    return f"{stem}{TEMPLATE_SUFFIX}", code


class SMSTemplates:
    """The SMS texts under one folder (`templates/`), for example `hello/greet.txt`."""

    def __init__(self, directory: str | Path, *, auto_reload: bool = False) -> None:
        self.directory = Path(directory)
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(list(self.folders)),
            # An SMS is not HTML: "&" must reach the handset as "&", not "&amp;".
            autoescape=False,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=auto_reload,
        )
        # Which file each (template, language) renders: looked up on disk once, or each
        # time while templates reload (in development, a version added is used at once).
        self.auto_reload = auto_reload
        self._chosen: dict[tuple[str, str], str] = {}

    def choose(self, name: str, language: str | None) -> str:
        """The template to render for `name` in `language`: its version for the language
        (`hello/greet.pt-br.txt`), else for its base language (`hello/greet.pt.txt`),
        each in this folder, then botkit's; else `name`. ValueError for a language that
        is not a language code."""
        if language is None or not is_template_name(name):
            return name
        chosen = self._chosen.get((name, language))
        if chosen is None:
            versions = (variant_name(name, code) for code in fallbacks(language))
            chosen = next((version for version in versions if self._exists(version)), name)
            if not self.auto_reload:
                self._chosen[name, language] = chosen
        return chosen

    def _exists(self, name: str) -> bool:
        """Whether template `name` is a file in this folder or botkit's."""
        try:
            pieces = split_template_path(name)
        except jinja2.TemplateNotFound:  # ".." in it
            return False
        return any(os.path.isfile(os.path.join(folder, *pieces)) for folder in self.folders)

    @property
    def folders(self) -> tuple[Path, Path]:
        """Where templates are looked for: this folder, then botkit's own."""
        return self.directory, BUILT_IN

    def render(self, name: str, /, **variables: Any) -> str:
        """Render template `name`; any problem is a TemplateError naming file and line."""
        try:
            template = self.env.get_template(name)
            return template.render(**variables).strip()
        except jinja2.TemplateNotFound as exc:
            missing = exc.name if isinstance(exc.name, str) else name
            raise TemplateError(f"template {missing!r} not found in {self.directory}/") from None
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(
                f"{exc.filename or name}, line {exc.lineno}: {exc.message}"
            ) from None
        except jinja2.UndefinedError as exc:
            raise TemplateError(f"{name}{_line(exc, self.directory)}: {exc.message}") from None
        except Exception as exc:
            raise TemplateError(
                f"{name}{_line(exc, self.directory)}: {type(exc).__name__}: {exc}"
            ) from exc

    def reply(
        self, template_or_text: str, variables: dict[str, Any], language: str | None = None
    ) -> Reply:
        """A Reply from a template name, rendered in `language` (`choose`; the Reply
        names the file rendered), or from literal text (sent as is)."""
        if is_template_name(template_or_text):
            template = self.choose(template_or_text, language)
            content = self.render(template, **variables)
        elif variables:
            raise TemplateError(
                f"variables {sorted(variables)} given with literal text {template_or_text!r}; "
                f"name a template ending in {TEMPLATE_SUFFIX} to use them"
            )
        else:
            content, template = template_or_text, None
        if not content.strip():
            raise TemplateError(f"reply {template_or_text!r} is empty")
        encoding = measure(content)
        return Reply(content, template, encoding.name, encoding.segments)


def _line(exc: BaseException, directory: Path) -> str:
    """', line N' of the innermost frame in a template under `directory`, if any."""
    line = ""
    tb = exc.__traceback__
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename.startswith(str(directory)):
            line = f", line {tb.tb_lineno}"
        tb = tb.tb_next
    return line
