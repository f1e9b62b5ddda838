"""`botkit check`: find what would go wrong with the bots and templates before a handset does.

Bot modules are imported as `botkit run` imports them, and also read with `ast` for what
only their source shows (check_source.py): the states a handler sets, the timers it
schedules, the replies it sends and their variables. SMS templates (`*.txt` under the
templates folder) are compiled, and rendered with stand-ins for their variables to
measure them (check_templates.py). No database and no running app are needed. A name
that is not known (a state, a timer, a template) comes with the closest known one.

Each problem has a file, a line and one of these kinds:

    import-error       a bot module does not import (the line is the traceback's)
    duplicate-bot      two bots have one name
    duplicate-keyword  two bots claim one keyword or alias
    reserved-keyword   a keyword is a compliance word (STOP, HELP...): the word alone is
                       compliance's, only a longer message reaches the bot
    unrouted-state     a state handler whose state the bot's module never sets
    unknown-state      `ctx.state = "x"` where the bot has no handler for "x"
    unknown-timer      `ctx.schedule("x", ...)` where the bot has no `@bot.timer("x")`
    unscheduled-timer  a timer handler the bot's module never schedules: only a broadcast
                       (`botkit broadcast --start bot:timer`) could start it
    missing-variable   a reply does not pass a variable its template uses, or a language
                       version (`x.es.txt`) uses one its default (`x.txt`) does not
    missing-template   a reply (or an `{% include %}`) names a template that does not exist
    template-error     a template does not compile
    missing-language   a template has no version in a language that other templates of
                       its folder have: speakers of it get the default there
    no-default         a language version (`x.es.txt`) has no default (`x.txt`) to fall
                       back to for other languages
    language-name      a language version is named otherwise than botkit looks for it
                       (`x.pt_BR.txt`: it looks for `x.pt-br.txt`)
    too-long           a reply takes more than the allowed number of segments
    mask-off-default   a bot or a reply sets a mask, which only the default of our several
                       numbers can carry: in a conversation on another, its handler fails
    field-conflict     two bots declare one contact field as two kinds: the router refuses
    campaign-field     a campaign follows a field no bot declares as a date or datetime,
                       or another campaign has its name: the router refuses it; or its
                       template uses a variable it is not given (it gets `contact` and
                       the event's own), or a contact field no bot declares
"""

from __future__ import annotations

import ast
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import CodeType
from typing import NamedTuple

from .bot import Bot, Handler, normalise_keyword
from .check_languages import language_problems
from .check_source import (
    Location,
    Problem,
    Source,
    assignment_line,
    call_strings,
    calls,
    did_you_mean,
    display_path,
    error_line,
    known_values,
)
from .check_templates import (
    STAND_IN_LENGTH,
    StandIn,
    contact_fields_used,
    template_problems,
    template_variables,
)
from .compliance import taken_keywords
from .loader import bot_modules, load_module
from .settings import Settings
from .templates import SMSTemplates

__all__ = ["DEFAULT_MAX_SEGMENTS", "STAND_IN_LENGTH", "Problem", "check", "display_path"]

DEFAULT_MAX_SEGMENTS = 3


@dataclass(frozen=True)
class BotModule:
    """A bot module that imported: its source and the bots it declares, by variable name."""

    source: Source
    bots: dict[str, Bot]


def check(
    bots_dir: str | Path,
    templates_dir: str | Path,
    *,
    max_segments: int = DEFAULT_MAX_SEGMENTS,
    settings: Settings | None = None,
) -> list[Problem]:
    """Every problem in the bot modules of `bots_dir` and the SMS templates of
    `templates_dir`, in file and line order. The compliance words, handled before any
    bot, and our numbers, the default first, are those of `settings` (by default,
    botkit's defaults)."""
    settings = settings or Settings()
    # Absolute throughout, as code objects and tracebacks name files; shown relative.
    bots_folder, templates_folder = (Path(os.path.abspath(d)) for d in (bots_dir, templates_dir))
    if not bots_folder.is_dir():
        raise FileNotFoundError(f"bots folder {display_path(bots_folder)}/ does not exist")
    modules, problems = _load_modules(bots_folder)
    sources = {str(module.source.path): module.source for module in modules}
    problems += _duplicate_bots(modules)
    problems += _duplicate_keywords(modules, sources)
    problems += _reserved_keywords(modules, sources, settings)
    for module in modules:
        problems += _name_problems(module, sources)
    problems += template_problems(list(sources.values()), templates_folder, max_segments)
    problems += language_problems(templates_folder)
    problems += _mask_problems(modules, settings.numbers)
    problems += _campaign_problems(modules)
    problems += _campaign_template_problems(modules, templates_folder)
    return sorted(problems)


# Bot modules


def _load_modules(folder: Path) -> tuple[list[BotModule], list[Problem]]:
    """Import each bot module as the loader would, going on past those that fail."""
    modules: list[BotModule] = []
    problems: list[Problem] = []
    for path in bot_modules(folder):
        try:
            modules.append(_load_module(path))
        except (Exception, SystemExit) as exc:
            message = f"{type(exc).__name__}: {exc}"
            problems.append(Problem(path, error_line(exc, path), "import-error", message))
    return modules, problems


def _load_module(path: Path) -> BotModule:
    """Parse and import one bot module; raises what the module raises."""
    source = Source.parse(path)
    module = load_module(path, package="botkit_check")
    # Checking never leaves bot modules behind.
    sys.modules.pop(module.__name__, None)
    bots = {var: value for var, value in vars(module).items() if isinstance(value, Bot)}
    return BotModule(source, bots)


def _duplicate_bots(modules: list[BotModule]) -> list[Problem]:
    """Bots whose name an earlier bot already took: the router refuses them."""
    problems: list[Problem] = []
    first: dict[str, Location] = {}
    for module in modules:
        for variable, bot in module.bots.items():
            here = Location(module.source.path, assignment_line(module.source.tree, variable))
            if bot.name in first:
                message = f"bot name {bot.name!r} is already taken by the bot at {first[bot.name]}"
                problems.append(Problem(*here, "duplicate-bot", message))
            else:
                first[bot.name] = here
    return problems


def _duplicate_keywords(modules: list[BotModule], sources: dict[str, Source]) -> list[Problem]:
    """Keywords (and aliases) claimed by a second bot: the router refuses them."""
    problems: list[Problem] = []
    owners: dict[str, tuple[Bot, Location]] = {}
    for bot in _unique_bots(modules):
        for word in bot.keywords:
            here = _keyword_line(bot, word, sources)
            if word not in owners:
                owners[word] = (bot, here)
                continue
            owner, there = owners[word]
            message = (
                f"keyword {word} of bot {bot.name!r} is already claimed by bot "
                f"{owner.name!r} at {there}"
            )
            problems.append(Problem(*here, "duplicate-keyword", message))
    return problems


def _reserved_keywords(
    modules: list[BotModule], sources: dict[str, Source], settings: Settings
) -> list[Problem]:
    """Keywords that are compliance words: a message that is the word alone never
    reaches the bot."""
    return [
        Problem(*_keyword_line(taken.bot, taken.word, sources), "reserved-keyword", str(taken))
        for taken in taken_keywords(_unique_bots(modules), settings)
    ]


def _keyword_line(bot: Bot, word: str, sources: dict[str, Source]) -> Location:
    """Where `bot` registers keyword (or alias) `word`."""
    handler = bot.keywords[word]
    return _decorator_line(handler, "keyword", lambda s: normalise_keyword(s) == word, sources)


def _unique_bots(modules: list[BotModule]) -> Iterator[Bot]:
    """Each Bot object once, though two modules may hold the same one."""
    seen: set[int] = set()
    for module in modules:
        for bot in module.bots.values():
            if id(bot) not in seen:
                seen.add(id(bot))
                yield bot


class NameUse(NamedTuple):
    """A line that names a state (`x.state = ...`) or a timer (`x.schedule(...)`), and the
    names it can be (None: known only at run time)."""

    where: Location
    names: list[str] | None


def _state_assignments(source: Source) -> Iterator[NameUse]:
    """Each `x.state = ...` in a module, with the state names it can set."""
    for node in ast.walk(source.tree):
        if not isinstance(node, ast.Assign):
            continue
        for target in node.targets:
            if isinstance(target, ast.Attribute) and target.attr == "state":
                yield NameUse(Location(source.path, node.lineno), _names(node.value, source))


def _schedules(source: Source) -> Iterator[NameUse]:
    """Each `x.schedule(name, ...)` in a module (after a delay or `at=` a time), with the
    timer names it can schedule."""
    for node in ast.walk(source.tree):
        if not calls(node, "schedule"):
            continue
        by_name = [keyword.value for keyword in node.keywords if keyword.arg == "name"]
        for name in node.args[:1] or by_name:
            yield NameUse(Location(source.path, node.lineno), _names(name, source))


def _names(node: ast.expr, source: Source) -> list[str] | None:
    """The names an expression can be, None when it depends on run time."""
    values = known_values(node, source.constants)
    return None if values is None else [v for v in values if isinstance(v, str)]


@dataclass(frozen=True)
class Named:
    """States or timers: how a module's code names them, and what is said when a name and
    the handlers miss each other."""

    kind: str
    used: str  # what naming one does: "set", "scheduled"
    unused_kind: str
    unused_effect: str  # of a handler never named: "so its handler ...", with {bot}, {name}
    uses: Callable[[Source], Iterator[NameUse]]
    handlers: Callable[[Bot], dict[str, Handler]]
    exempt: tuple[str, ...] = ()  # name prefixes of handlers that something else starts


STATES = Named(
    "state", "set", "unrouted-state", "never runs", _state_assignments, lambda bot: bot.states
)
# A broadcast starts a conversation with a timer (`--start bot:timer`, a survey's entry).
TIMERS = Named(
    "timer",
    "scheduled",
    "unscheduled-timer",
    "runs only when a broadcast starts it (botkit broadcast --start {bot}:{name})",
    _schedules,
    lambda bot: bot.timers,
    exempt=("survey:",),
)


def _name_problems(module: BotModule, sources: dict[str, Source]) -> list[Problem]:
    """States and timers named with no handler, and handlers never named, in one module."""
    if not module.bots:
        return []
    return [
        problem for named in (STATES, TIMERS) for problem in _named_problems(module, named, sources)
    ]


def _named_problems(module: BotModule, named: Named, sources: dict[str, Source]) -> list[Problem]:
    """One module's names of one kind (states or timers) against its bots' handlers."""
    handlers = {
        name: (bot, handler)
        for bot in module.bots.values()
        for name, handler in named.handlers(bot).items()
    }
    uses = list(named.uses(module.source))
    unused = _unused_handlers(module, named, handlers, uses, sources)
    return _unknown_names(module, named, handlers, uses) + unused


def _unknown_names(
    module: BotModule,
    named: Named,
    handlers: dict[str, tuple[Bot, Handler]],
    uses: list[NameUse],
) -> list[Problem]:
    """Names no bot of the module handles: `ctx.state = ...` or `ctx.schedule(...)` raises."""
    owners = " or ".join(repr(bot.name) for bot in module.bots.values())
    return [
        Problem(
            *where,
            f"unknown-{named.kind}",
            f"{named.kind} {name!r} is {named.used}, but bot {owners} has no handler"
            + did_you_mean(name, handlers),
        )
        for where, names in uses
        for name in names or ()
        if name not in handlers
    ]


def _unused_handlers(
    module: BotModule,
    named: Named,
    handlers: dict[str, tuple[Bot, Handler]],
    uses: list[NameUse],
    sources: dict[str, Source],
) -> list[Problem]:
    """Handlers of the module whose name it never sets (or schedules), so that nothing
    starts them. A handler written elsewhere (a flow such as DoubleOptIn or a Survey)
    is named by its own flow."""
    # A name known only at run time could be any of them.
    if any(names is None for _, names in uses):
        return []
    somewhere = {name for _, names in uses for name in names or ()}
    path = display_path(module.source.path)
    return [
        Problem(
            *_decorator_line(handler, named.kind, lambda s, n=name: s == n, sources),
            named.unused_kind,
            f"{named.kind} {name!r} is never {named.used} in {path}, so its handler "
            + named.unused_effect.format(bot=bot.name, name=name),
        )
        for name, (bot, handler) in handlers.items()
        if name not in somewhere
        and not name.startswith(named.exempt)
        and _defined_in(handler, module.source.path)
    ]


def _defined_in(handler: Handler, path: Path) -> bool:
    """True if `handler`'s code is in the file `path`."""
    return os.path.abspath(handler.__code__.co_filename) == os.path.abspath(path)


def _decorator_line(
    handler: Handler, method: str, matches: Callable[[str], bool], sources: dict[str, Source]
) -> Location:
    """Where `handler` was registered: its `@bot.<method>(...)` line naming what `matches`,
    or the handler's first line when the source does not show it."""
    code = handler.__code__
    source = sources.get(os.path.abspath(code.co_filename))
    function = _function_of(source.tree, code) if source else None
    constants = source.constants if source else {}
    for decorator in function.decorator_list if function else []:
        if calls(decorator, method) and any(map(matches, call_strings(decorator, constants))):
            return Location(Path(code.co_filename), decorator.lineno)
    return Location(Path(code.co_filename), code.co_firstlineno)


def _function_of(tree: ast.Module, code: CodeType) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    """The definition of `code` in `tree` (its first line is its first decorator's)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == code.co_name:
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            if first == code.co_firstlineno:
                return node
    return None


def _mask_problems(modules: list[BotModule], numbers: Sequence[str]) -> list[Problem]:
    """Masks set by a bot or a reply while we have several numbers: only the default can
    carry one (the gateway takes a mask only with a class), and a conversation may be on
    any of them."""
    if len(numbers) < 2:
        return []
    default, others = numbers[0], ", ".join(numbers[1:])
    fails = f"fails in a conversation on {others}: only the default number {default} takes one"
    problems = []
    for module in modules:
        for variable, bot in module.bots.items():
            if bot.mask is not None:
                line = assignment_line(module.source.tree, variable)
                message = f"bot {bot.name!r} sets mask {bot.mask!r}: each of its replies {fails}"
                problems.append(Problem(module.source.path, line, "mask-off-default", message))
        for node in ast.walk(module.source.tree):
            if calls(node, "reply") and any(_masks(keyword) for keyword in node.keywords):
                message = f"a reply with a mask {fails}"
                problems.append(
                    Problem(module.source.path, node.lineno, "mask-off-default", message)
                )
    return problems


def _masks(keyword: ast.keyword) -> bool:
    """True for a `mask=` argument that is not a literal None."""
    literal_none = isinstance(keyword.value, ast.Constant) and keyword.value.value is None
    return keyword.arg == "mask" and not literal_none


# Contact fields and campaigns


def _campaign_problems(modules: list[BotModule]) -> list[Problem]:
    """Fields declared as two kinds, and campaigns the router would refuse: on a field
    that is not a date, or of a name another campaign has."""
    problems: list[Problem] = []
    declared: dict[str, tuple[str, Location]] = {}
    names: dict[str, Location] = {}
    for module in modules:
        for variable, bot in module.bots.items():
            here = Location(module.source.path, assignment_line(module.source.tree, variable))
            for field in bot.fields:
                first, there = declared.setdefault(field.name, (field, here))
                if first != field:
                    message = (
                        f"field {field.name!r} of bot {bot.name!r} is a {field.label}, "
                        f"but a {first.label} at {there}"
                    )
                    problems.append(Problem(*here, "field-conflict", message))
    for module in modules:
        for bot in module.bots.values():
            for campaign in bot.campaigns:
                here = _campaign_line(module.source, campaign.name)
                if campaign.name in names and names[campaign.name] != here:
                    message = (
                        f"campaign {campaign.name!r} is already declared at {names[campaign.name]}"
                    )
                    problems.append(Problem(*here, "campaign-field", message))
                names.setdefault(campaign.name, here)
                found = declared.get(campaign.field)
                kind = found[0].kind if found else None
                if kind not in ("date", "datetime"):
                    dates = sorted(
                        n for n, (f, _) in declared.items() if f.kind in ("date", "datetime")
                    )
                    message = (
                        f"campaign {campaign.name!r} follows field {campaign.field!r}, which "
                        + (f"is a {kind}" if kind else "no bot declares")
                        + ": it must be a date or datetime"
                        + did_you_mean(campaign.field, dates)
                    )
                    problems.append(Problem(*here, "campaign-field", message))
    return problems


def _campaign_line(source: Source, name: str) -> Location:
    """Where the module makes the campaign named `name` (its first line otherwise)."""
    for node in ast.walk(source.tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Campaign":
            first = node.args[0] if node.args else None
            if isinstance(first, ast.Constant) and first.value == name:
                return Location(source.path, node.lineno)
    return Location(source.path, 1)


def _campaign_template_problems(modules: list[BotModule], folder: Path) -> list[Problem]:
    """What a campaign event's template needs that it is not given: a variable other
    than `contact` and the event's own, or a contact field no bot declares. It would
    fail when the event fires, and the reminder would never go."""
    declared = {field.name for bot in _unique_bots(modules) for field in bot.fields}
    env = SMSTemplates(folder).env.overlay(undefined=StandIn)
    problems: list[Problem] = []
    for module in modules:
        for bot in module.bots.values():
            for campaign in bot.campaigns:
                here = _campaign_line(module.source, campaign.name)
                for event in campaign.events:
                    if event.template is None or not (folder / event.template).is_file():
                        continue  # a missing template is reported as such
                    given = {"contact", *event.variables}
                    for variable in sorted(template_variables(env, event.template) - given):
                        message = (
                            f"template {event.template!r} of campaign {campaign.name!r} uses "
                            f"{variable!r}, which a campaign's template is not given "
                            "(it gets `contact`, and what .event(...) passes)"
                        )
                        problems.append(Problem(*here, "campaign-field", message))
                    for field in sorted(contact_fields_used(env, event.template) - declared):
                        message = (
                            f"template {event.template!r} of campaign {campaign.name!r} reads "
                            f"contact field {field!r}, which no bot declares"
                            + did_you_mean(field, declared)
                        )
                        problems.append(Problem(*here, "campaign-field", message))
    return problems
