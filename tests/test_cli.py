"""The command line: every command explains itself with examples, and `botkit run` says
on start-up which bots answer which keywords."""

from __future__ import annotations

import shutil
import socket

import pytest
from conftest import ROOT
from servers import free_port, output, start, wait_for

from botkit.check import check
from botkit.cli import main
from botkit.commands import COMMANDS
from botkit.commands.run import listenable
from botkit.errors import ValidationError


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


def test_run_lists_the_bots_and_warns_of_a_keyword_compliance_takes(tmp_path, processes):
    shutil.copytree(ROOT / "tests" / "fixtures" / "check" / "reserved_keyword", tmp_path / "app")
    (tmp_path / "app" / "templates").mkdir()
    port = free_port()
    app = start(processes, ["run", "--port", str(port)], cwd=tmp_path / "app")
    wait_for(f"http://127.0.0.1:{port}/healthz", app)
    lines = output(app).splitlines()
    start_of_bots = lines.index("  bots:             book: BOOK, CANCEL")
    assert lines[start_of_bots + 1] == "                    shop: SHOP, HELP"
    warnings = [line for line in lines if line.startswith("botkit: warning: ")]
    # Word for word what `botkit check` says (its tests spell the wording out).
    said = check(tmp_path / "app" / "bots", tmp_path / "app" / "templates")
    assert warnings == [f"botkit: warning: {problem.message}" for problem in said]
    assert len(warnings) == 2


def test_run_names_the_setting_to_change_when_its_port_is_taken(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["run", "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert f"127.0.0.1:{port} is taken" in err and "BOTKIT_PORT" in err
    assert not (tmp_path / "botkit.db").exists()  # said before anything was set up


def test_the_port_check_refuses_only_what_uvicorn_would_not_bind():
    """IPv6's wildcard is its own socket beside an IPv4 listener (uvicorn's binds
    IPv6-only); a host that does not resolve is left for uvicorn to report."""
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        if socket.has_ipv6:
            listenable("::", port)
        with pytest.raises(ValidationError, match="is taken"):
            listenable("0.0.0.0", port)
    listenable("no-such-host.invalid", port)
