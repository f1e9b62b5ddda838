"""docs/deploying.md and docs/scaling.md hold: their commands, settings and metrics
exist; and behind a proxy, the allow-list sees the address the proxy forwards, from
trusted proxies only."""

from __future__ import annotations

import re
import shlex

import httpx
import pytest
from conftest import ROOT
from servers import free_port, start, wait_for
from test_metrics import NO_DEPTHS

from botkit import Settings
from botkit.cli import parser
from botkit.errors import ValidationError
from botkit.metrics import Metrics
from botkit.settings import describe

DOC = ROOT / "docs" / "deploying.md"
DOCS = (DOC, ROOT / "docs" / "scaling.md")
FENCE = re.compile(r"^```(?P<info>[^\n]*)\n(?P<body>.*?)^```$", re.MULTILINE | re.DOTALL)
INLINE = re.compile(r"`([^`\n]+)`")
# `botkit SUBCOMMAND ...`, maybe by its path; not `sudo -u botkit ...`, where it is a user.
COMMAND = re.compile(r"(?:^|(?<=\s))(?<!-u )(?:/\S*/)?botkit\s+([a-z].*)")


def command_lines() -> list[str]:
    """The lines of shell blocks, the ExecStart= of unit files, and inline code."""
    text = "\n".join(doc.read_text(encoding="utf-8") for doc in DOCS)
    lines = INLINE.findall(FENCE.sub("", text))
    for block in FENCE.finditer(text):
        body = block["body"].replace("\\\n", " ").splitlines()
        if block["info"].strip() == "sh":
            lines += [line for line in body if not line.lstrip().startswith("#")]
        elif block["info"].strip() == "ini":
            lines += [line.removeprefix("ExecStart=") for line in body if "ExecStart=" in line]
    return lines


def commands() -> list[str]:
    """Each `botkit ...` command shown, up to a pipe or redirection; `$(date ...)` stands
    for a word, and systemd's instance name `%i` for a number."""
    found = []
    for line in command_lines():
        if match := COMMAND.search(line.replace("%i", "1")):
            found.append(re.split(r"\s[|>;&]", re.sub(r"\$\([^)]*\)", "X", match[1]))[0])
    return found


def test_the_doc_shows_the_commands_it_should():
    shown = commands()
    for name in ("run", "backup", "export"):
        assert any(command.split()[0] == name for command in shown), name


@pytest.mark.parametrize("command", commands())
def test_every_command_shown_exists(command):
    try:
        parser().parse_args(shlex.split(command))
    except SystemExit as exited:  # --help exits 0; a bad command or option exits 2
        assert exited.code == 0, f"botkit {command}"


def test_every_setting_named_exists():
    named = {
        name
        for doc in DOCS
        for name in re.findall(r"BOTKIT_[A-Z_]+[A-Z]", doc.read_text(encoding="utf-8"))
    }
    assert "BOTKIT_FORWARDED_ALLOW_IPS" in named
    assert named - {env for env, _, _ in describe()} == set()


def test_every_metric_named_exists():
    named = set(re.findall(r"\b(?:botkit|python_gc)_[a-z_]+[a-z]", DOC.read_text(encoding="utf-8")))
    families = set(re.findall(r"^# TYPE (\S+)", Metrics().render(**NO_DEPTHS).decode(), re.M))
    assert named and named - families == set()


@pytest.mark.parametrize("value", ["10.0.0.300", "nginx", "*,127.0.0.1"])
def test_forwarded_allow_ips_must_be_addresses(tmp_path, value):
    with pytest.raises(ValidationError, match="BOTKIT_FORWARDED_ALLOW_IPS"):
        Settings.load(environ={"BOTKIT_FORWARDED_ALLOW_IPS": value}, config_file=tmp_path / "x")


def test_behind_a_proxy_the_allow_list_sees_the_forwarded_address(tmp_path, processes):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    app = start(
        processes,
        ["run", "--port", str(port), "--db", str(tmp_path / "botkit.db")],
        env={
            "BOTKIT_CALLBACK_TOKEN": "proxy-token",
            "BOTKIT_CALLBACK_ALLOW": "203.0.113.0/28",
            "BOTKIT_FORWARDED_ALLOW_IPS": "127.0.0.0/8",
        },
    )
    wait_for(f"{url}/healthz", app)
    mo = {"source": "+61400000001", "destination": "4433", "content": "hi"}

    def status(gateway_id: int, **headers: str) -> int:
        params = {**mo, "id": str(gateway_id)}
        return httpx.get(
            f"{url}/callbacks/proxy-token/mo", params=params, headers=headers
        ).status_code

    assert status(1, **{"X-Forwarded-For": "203.0.113.7"}) == 200
    # A caller can put anything first; the proxy appends the address it saw.
    assert status(2, **{"X-Forwarded-For": "203.0.113.7, 198.51.100.1"}) == 403
    assert status(3) == 403  # the proxy's own address is not a gateway's


def test_an_untrusted_peer_cannot_claim_an_address(tmp_path, processes):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    app = start(
        processes,
        ["run", "--port", str(port), "--db", str(tmp_path / "botkit.db"),
         "--forwarded-allow-ips", "10.9.9.9"],
        env={"BOTKIT_CALLBACK_TOKEN": "proxy-token", "BOTKIT_CALLBACK_ALLOW": "203.0.113.7"},
    )  # fmt: skip
    wait_for(f"{url}/healthz", app)
    params = {"id": "1", "source": "+61400000001", "destination": "4433", "content": "hi"}
    response = httpx.get(
        f"{url}/callbacks/proxy-token/mo", params=params, headers={"X-Forwarded-For": "203.0.113.7"}
    )
    assert response.status_code == 403


def test_the_service_and_the_proxy_hold_off_slow_and_many_clients():
    text = DOC.read_text(encoding="utf-8")
    blocks = {block["body"].partition("\n")[0]: block["body"] for block in FENCE.finditer(text)}
    assert "LimitNOFILE=65536" in blocks["# /etc/systemd/system/botkit.service"].splitlines()
    site = blocks["# /etc/nginx/sites-available/botkit"]
    for directive in ("client_header_timeout", "client_body_timeout", "send_timeout"):
        assert re.search(rf"^    {directive} \d+s;$", site, re.M), directive
    assert re.search(r"^    keepalive_timeout \d+s;$", site, re.M)
    assert re.search(r"^limit_conn_zone \$per_address zone=per_address:", site, re.M)
    assert re.search(r"^    limit_conn per_address \d+;$", site, re.M)
    # The gateway's addresses, as the allow-list shown names them, are never limited.
    allowed = re.search(r"^BOTKIT_CALLBACK_ALLOW=(.+)$", text, re.M)[1].split(",")
    assert all(re.search(rf"^    {re.escape(a)} 0;$", site, re.M) for a in allowed)
