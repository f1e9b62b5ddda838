"""`botkit.__all__` is the public API: every name in it exists, and every public name of
the package is in it (after httpx's tests/test_exported_members.py)."""

from __future__ import annotations

import types

import botkit


def public_names() -> set[str]:
    return {
        name
        for name, value in vars(botkit).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }


def test_every_name_in_all_exists():
    missing = [name for name in botkit.__all__ if not hasattr(botkit, name)]
    assert missing == []


def test_every_public_name_is_in_all():
    assert public_names() - set(botkit.__all__) == set()


def test_all_lists_each_name_once():
    assert len(botkit.__all__) == len(set(botkit.__all__))


def test_exported_names_are_botkit_objects():
    foreign = [
        name for name in botkit.__all__ if not getattr(botkit, name).__module__.startswith("botkit")
    ]
    assert foreign == []
