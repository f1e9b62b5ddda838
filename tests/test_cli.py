"""The command line: every command explains itself with examples."""

from __future__ import annotations

import pytest

from botkit.cli import main
from botkit.commands import COMMANDS


def test_top_level_help_lists_every_command_and_setting(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    for command in COMMANDS:
        assert command.NAME in out
    assert "BOTKIT_SEND_RATE" in out and "BOTKIT_PASSWORD" in out


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c.NAME)
def test_each_command_has_help_with_examples(capsys, command):
    with pytest.raises(SystemExit) as done:
        main([command.NAME, "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out
    assert f"botkit {command.NAME}" in out.split("examples:")[1]


def test_an_unknown_command_is_refused(capsys):
    with pytest.raises(SystemExit) as done:
        main(["fly"])
    assert done.value.code == 2
    assert "invalid choice: 'fly'" in capsys.readouterr().err
