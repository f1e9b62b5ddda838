"""`botkit check` of replies and SMS templates: each `.reply(...)` whose template is
known, and each template under the templates folder.

A template is compiled, and rendered with stand-ins for its variables to measure it: an
unknown variable stands for STAND_IN_LENGTH characters of text, or a list of
STAND_IN_ITEMS of them.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import jinja2
from jinja2 import meta, nodes

from .check_source import (
    Location,
    Problem,
    Source,
    calls,
    closest,
    did_you_mean,
    display_path,
    error_line,
    known_values,
)
from .sms import measure
from .templates import TEMPLATE_SUFFIX, SMSTemplates, is_template_name

# A template is measured with each unknown variable as this many GSM-7 characters, and
# each list (for `join` or `{% for %}`) as this many such items.
STAND_IN_LENGTH = 12
STAND_IN_ITEMS = 3


# Keywords of `ctx.reply` that are not the template's variables.
REPLY_OPTIONS = frozenset({"mask", "expires"})


class Reply(NamedTuple):
    """A `.reply(...)` call whose first argument is known: a template name or the text;
    and the variables it passes (None when not all are known: `**kwargs`, or a template
    that a flow renders)."""

    where: Location
    text: str
    variables: frozenset[str] | None = None


def replies(source: Source) -> Iterator[Reply]:
    """Each `.reply("...")` call in a module, once for each text its first argument can be;
    and each template name given to any other call (a flow's `confirm="optin/x.txt"`)."""
    for node in ast.walk(source.tree):
        if not isinstance(node, ast.Call):
            continue
        if calls(node, "reply"):
            variables = _passed(node)
            for value in known_values(node.args[0], source.constants) or () if node.args else ():
                if isinstance(value, str):
                    yield Reply(Location(source.path, node.lineno), value, variables)
            continue
        for arg in [*node.args, *(keyword.value for keyword in node.keywords)]:
            value = arg.value if isinstance(arg, ast.Constant) else None
            if isinstance(value, str) and is_template_name(value):
                yield Reply(Location(source.path, arg.lineno), value)


def _passed(call: ast.Call) -> frozenset[str] | None:
    """The template variables a `.reply(...)` call passes by name; None with `**kwargs`."""
    if any(keyword.arg is None for keyword in call.keywords):
        return None
    return frozenset(str(keyword.arg) for keyword in call.keywords) - REPLY_OPTIONS


def template_problems(sources: list[Source], folder: Path, max_segments: int) -> list[Problem]:
    """Each reply's problems, then each SMS template's own (does not compile, includes a
    missing template, renders too long)."""
    paths = sorted(folder.rglob(f"*{TEMPLATE_SUFFIX}"))
    templates = {path.relative_to(folder).as_posix(): path for path in paths}
    found = [reply for source in sources for reply in replies(source)]
    problems = [
        problem
        for reply in found
        for problem in _reply_problems(reply, templates, folder, max_segments)
    ]
    env = SMSTemplates(folder).env.overlay(undefined=StandIn)
    problems += _variable_problems(env, found, templates)
    for name, path in templates.items():
        uses = [reply.where for reply in found if reply.text == name]
        problems += _check_template(env, name, path, uses, templates, max_segments)
    return problems


def _reply_problems(
    reply: Reply, templates: dict[str, Path], folder: Path, max_segments: int
) -> list[Problem]:
    """A reply naming a template that does not exist, or literal text that is too long."""
    if is_template_name(reply.text):
        if reply.text in templates:
            return []
        message = f"template {reply.text!r} does not exist in {display_path(folder)}/"
        return [
            Problem(*reply.where, "missing-template", message + did_you_mean(reply.text, templates))
        ]
    over = _over_limit(reply.text, max_segments)
    return [Problem(*reply.where, "too-long", f"reply {over}")] if over else []


def _variable_problems(
    env: jinja2.Environment, found: list[Reply], templates: dict[str, Path]
) -> list[Problem]:
    """Variables a template needs that a reply of it does not pass: rendering it raises."""
    needed: dict[str, frozenset[str]] = {}
    problems = []
    for reply in found:
        if reply.variables is None or reply.text not in templates:
            continue
        if reply.text not in needed:
            needed[reply.text] = template_variables(env, reply.text)
        unused = reply.variables - needed[reply.text]
        for variable in sorted(needed[reply.text] - reply.variables):
            message = f"template {reply.text!r} uses {variable!r}, which this reply does not pass"
            # Among the few it passes that the template does not use, any close one.
            if typo := closest(variable, unused, cutoff=0.6):
                message += f" (it passes {typo!r}: a typo?)"
            problems.append(Problem(*reply.where, "missing-variable", message))
    return problems


def template_variables(
    env: jinja2.Environment, name: str, seen: frozenset[str] = frozenset()
) -> frozenset[str]:
    """The variables template `name` (and what it includes) needs from its caller: not the
    environment's globals, nor one it only tests (`is defined`) or gives a default.
    Empty when it does not compile: that is reported on its own."""
    try:
        tree = env.parse(env.loader.get_source(env, name)[0], name)  # type: ignore[union-attr]
        # It compiles the template to find them: an unknown filter raises here.
        undeclared = meta.find_undeclared_variables(tree)
    except (jinja2.TemplateError, UnicodeDecodeError):
        return frozenset()
    needed = set(undeclared) - set(env.globals) - _optional(tree)
    for included in meta.find_referenced_templates(tree):
        if included is not None and included not in seen | {name}:
            needed |= template_variables(env, included, seen | {name})
    return frozenset(needed)


def _optional(tree: nodes.Template) -> set[str]:
    """Variables a template tests with `is defined` (or `undefined`) or gives a default."""
    tested = [
        test.node for test in tree.find_all(nodes.Test) if test.name in ("defined", "undefined")
    ]
    defaulted = [f.node for f in tree.find_all(nodes.Filter) if f.name in ("default", "d")]
    return {node.name for node in tested + defaulted if isinstance(node, nodes.Name)}


def _check_template(
    env: jinja2.Environment,
    name: str,
    path: Path,
    uses: list[Location],
    templates: dict[str, Path],
    max_segments: int,
) -> list[Problem]:
    """Compile one SMS template, then measure it rendered with stand-ins."""
    try:
        template = env.get_template(name)
    except jinja2.TemplateSyntaxError as exc:
        return [Problem(path, exc.lineno, "template-error", exc.message or "syntax error")]
    except UnicodeDecodeError:
        return [Problem(path, 1, "template-error", "is not UTF-8 text")]
    try:
        text = template.render().strip()
    except jinja2.TemplateNotFound as exc:
        message = f"included template {exc.name!r} does not exist"
        message += did_you_mean(str(exc.name), templates)
        return [Problem(path, error_line(exc, path), "missing-template", message)]
    except Exception:
        # It needs real values (a number to format, a dict to unpack): not measurable here.
        return []
    over = _over_limit(text, max_segments)
    if over is None:
        return []
    replied = f"; replied at {', '.join(map(str, uses))}" if uses else ""
    message = f"with each variable as {STAND_IN_LENGTH} characters, it {over}{replied}"
    return [Problem(path, 1, "too-long", message)]


def _over_limit(text: str, max_segments: int) -> str | None:
    """How `text` goes over `max_segments` segments, for a message; None if it does not."""
    encoding = measure(text)
    if encoding.segments <= max_segments:
        return None
    return (
        f"takes {encoding.segments} segments as {encoding.name} ({encoding.units} units), "
        f"over the limit of {max_segments}"
    )


class StandIn(jinja2.ChainableUndefined):
    """What an unknown variable is while a template is measured: STAND_IN_LENGTH characters
    as text, STAND_IN_ITEMS items as a list or number, and itself for an attribute, item,
    call or operator, so that templates using filters, loops and attributes render."""

    __slots__ = ()

    def __str__(self) -> str:
        return "x" * STAND_IN_LENGTH

    def __iter__(self) -> Iterator[StandIn]:
        return iter([StandIn() for _ in range(STAND_IN_ITEMS)])

    def __len__(self) -> int:
        return STAND_IN_ITEMS

    def __bool__(self) -> bool:
        return True

    def _count(self) -> int:
        return STAND_IN_ITEMS

    def __float__(self) -> float:
        return float(STAND_IN_ITEMS)

    def _itself(self, *args: Any, **kwargs: Any) -> StandIn:
        return self

    __int__ = __index__ = _count
    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = _itself
    __truediv__ = __rtruediv__ = __floordiv__ = __rfloordiv__ = __mod__ = __rmod__ = _itself
    __pow__ = __rpow__ = __pos__ = __neg__ = __abs__ = __round__ = __call__ = _itself
    __lt__ = __le__ = __gt__ = __ge__ = _itself


def contact_fields_used(env: jinja2.Environment, name: str) -> set[str]:
    """The contact fields template `name` reads: `contact.fields.x`, `contact.fields["x"]`
    and `contact.fields.get("x")` (empty when it does not compile)."""
    try:
        tree = env.parse(env.loader.get_source(env, name)[0], name)  # type: ignore[union-attr]
    except (jinja2.TemplateError, UnicodeDecodeError):
        return set()

    def is_fields(node: nodes.Node) -> bool:
        return (
            isinstance(node, nodes.Getattr)
            and node.attr == "fields"
            and isinstance(node.node, nodes.Name)
            and node.node.name == "contact"
        )

    used = {n.attr for n in tree.find_all(nodes.Getattr) if is_fields(n.node) and n.attr != "get"}
    for item in tree.find_all(nodes.Getitem):
        if is_fields(item.node) and isinstance(item.arg, nodes.Const):
            used.add(str(item.arg.value))
    for call in tree.find_all(nodes.Call):
        method, first = call.node, call.args[0] if call.args else None
        getter = isinstance(method, nodes.Getattr) and method.attr == "get"
        if getter and is_fields(method.node) and isinstance(first, nodes.Const):
            used.add(str(first.value))
    return used
