"""SMS templates: Jinja without HTML escaping, where an undefined variable is an error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2

from .errors import TemplateError
from .messages import Reply
from .sms import measure

TEMPLATE_SUFFIX = ".txt"
# Texts botkit itself sends (compliance replies); a project's own folder comes first.
BUILT_IN = Path(__file__).resolve().parent / "sms_templates"


def is_template_name(text: str) -> bool:
    """A reply names a template when it ends in `.txt` and is one word; else it is text."""
    return text.endswith(TEMPLATE_SUFFIX) and not any(ch.isspace() for ch in text)


class SMSTemplates:
    """The SMS texts under one folder (`templates/`), for example `hello/greet.txt`."""

    def __init__(self, directory: str | Path, *, auto_reload: bool = False) -> None:
        self.directory = Path(directory)
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader([self.directory, BUILT_IN]),
            # An SMS is not HTML: "&" must reach the handset as "&", not "&amp;".
            autoescape=False,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=auto_reload,
        )

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

    def reply(self, template_or_text: str, variables: dict[str, Any]) -> Reply:
        """A Reply from a template name (rendered) or from literal text (sent as is)."""
        if is_template_name(template_or_text):
            content, template = self.render(template_or_text, **variables), template_or_text
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
