"""`botkit init NAME` in an empty folder: its test passes as written, `botkit run`
serves it and the phone simulator reaches it."""

from __future__ import annotations

import subprocess
import sys

import httpx
from conftest import rows
from servers import BOTKIT, free_port, poll, start, wait_for

from botkit.cli import main


def test_init_then_test_then_run(tmp_path, processes):
    made = subprocess.run(
        [BOTKIT, "init", "pizza"], cwd=tmp_path, capture_output=True, text=True, timeout=30
    )
    assert made.returncode == 0, made.stderr
    assert (tmp_path / "bots" / "pizza.py").is_file()
    assert sorted(p.name for p in (tmp_path / "templates" / "pizza").iterdir()) == [
        "ask_again.txt",
        "help.txt",
        "thanks.txt",
        "welcome.txt",
    ]

    tested = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-W", "error"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "2 passed" in tested.stdout

    port = free_port()
    app = start(processes, ["run", "--port", str(port)], cwd=tmp_path)
    base = f"http://127.0.0.1:{port}"
    wait_for(f"{base}/healthz", app)
    phone = f"{base}/simulator/api/handsets/+61400000001"
    for text in ("PIZZA", "Margherita"):
        assert httpx.post(f"{phone}/send", json={"text": text}).status_code == 202
        poll(lambda t=text: any(m["text"] == t for m in httpx.get(phone).json()["messages"]))

    def replies() -> list[str]:
        return [m["text"] for m in httpx.get(phone).json()["messages"] if m["direction"] == "mt"]

    poll(lambda: len(replies()) == 2)
    assert replies() == [
        "Welcome to pizza! What would you like?",
        "Thanks! You chose Margherita. Text PIZZA to start again.",
    ]
    stored = rows(tmp_path / "botkit.db", "SELECT bot, status, data FROM threads")
    assert [tuple(r) for r in stored] == [("pizza", "closed", '{"choice":"Margherita"}')]


def test_init_never_overwrites(tmp_path, capsys):
    assert main(["init", "pizza", "--dir", str(tmp_path)]) == 0
    (tmp_path / "bots" / "pizza.py").write_text("# mine\n")
    assert main(["init", "pizza", "--dir", str(tmp_path)]) == 1
    assert "not overwriting" in capsys.readouterr().err
    assert (tmp_path / "bots" / "pizza.py").read_text() == "# mine\n"


def test_init_keeps_an_existing_pytest_config(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'mine'\n")
    assert main(["init", "shop", "--dir", str(tmp_path)]) == 0
    assert not (tmp_path / "pytest.ini").exists()


def test_init_refuses_a_bad_name(tmp_path, capsys):
    for name in ("Pizza", "9lives", "class", "my-bot"):
        assert main(["init", name, "--dir", str(tmp_path)]) == 2
        assert "name" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
