"""`botkit check` of templates' language versions (`hello/greet.es.txt` beside
`hello/greet.txt`): each is named as botkit looks for it, has a default to fall back to,
and uses no variable its default does not (the replies that render it pass the
default's); and each template of a folder with versions in a language has one in it too,
or speakers of the language get the default there (botkit's own templates of that
folder count: `compliance/help.txt` once the project has `compliance/stopped.es.txt`).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path, PurePosixPath

import jinja2

from .check_source import Problem
from .check_templates import template_variables
from .languages import fallbacks
from .templates import BUILT_IN, TEMPLATE_SUFFIX, SMSTemplates, split_variant, variant_name


def language_problems(folder: Path) -> list[Problem]:
    """The problems of the language versions among the templates under `folder`."""
    env = SMSTemplates(folder).env  # finds botkit's templates after the project's
    templates = _names(folder)
    known = {**_names(BUILT_IN), **templates}
    versions: dict[str, set[str]] = defaultdict(set)  # a default's languages
    problems = []
    for name, path in templates.items():
        split = split_variant(name)
        if split is None:
            continue
        default, language = split
        if variant_name(default, language) != name:
            message = (
                f"botkit looks for this {language} version as {variant_name(default, language)}"
            )
            problems.append(Problem(path, 1, "language-name", message))
        elif default not in known:
            message = (
                f"the {language} version of {default}, which does not exist: "
                "there is no default for other languages to fall back to"
            )
            problems.append(Problem(path, 1, "no-default", message))
        else:
            versions[default].add(language)
            problems += _variable_problems(env, name, default, path)
    return problems + _missing_languages(known, versions)


def _names(folder: Path) -> dict[str, Path]:
    """The templates under `folder`, by name."""
    paths = sorted(folder.rglob(f"*{TEMPLATE_SUFFIX}"))
    return {path.relative_to(folder).as_posix(): path for path in paths}


def _variable_problems(
    env: jinja2.Environment, name: str, default: str, path: Path
) -> list[Problem]:
    """Variables version `name` uses that its default does not: rendering it may raise."""
    extra = template_variables(env, name) - template_variables(env, default)
    return [
        Problem(
            path,
            1,
            "missing-variable",
            f"uses {variable!r}, which its default {default} does not: its replies may not pass it",
        )
        for variable in sorted(extra)
    ]


def _missing_languages(known: dict[str, Path], versions: dict[str, set[str]]) -> list[Problem]:
    """Each template without a version in a language of its folder's other templates
    (one for the base language will do: "pt" for "pt-br")."""
    by_folder: dict[PurePosixPath, dict[str, str]] = defaultdict(dict)  # language: an example
    for default, languages in sorted(versions.items()):
        for language in languages:
            by_folder[PurePosixPath(default).parent].setdefault(language, default)
    problems = []
    for name, path in known.items():
        if split_variant(name) is not None:
            continue
        for language, example in sorted(by_folder[PurePosixPath(name).parent].items()):
            if not any(code in versions[name] for code in fallbacks(language)):
                message = (
                    f"{name} has no {language} version ({variant_name(example, language)} "
                    f"is one): {language} speakers get the default; "
                    f"add {variant_name(name, language)}"
                )
                problems.append(Problem(path, 1, "missing-language", message))
    return problems
