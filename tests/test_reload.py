"""`botkit run --reload`: edited bots and templates take effect without a restart."""

from __future__ import annotations

import dataclasses
import shutil

from conftest import ROOT, eventually, running

from botkit import create_app

PHONE = "+61400000001"


def copy_example(tmp_path, settings):
    shutil.copytree(ROOT / "bots", tmp_path / "bots")
    shutil.copytree(ROOT / "templates", tmp_path / "templates")
    return dataclasses.replace(
        settings, bots=str(tmp_path / "bots"), templates=str(tmp_path / "templates")
    )


async def test_edited_bot_and_template_are_used_without_restart(tmp_path, settings):
    settings = copy_example(tmp_path, settings)
    async with running(create_app(settings, reload=True)) as app:
        sim = app.state.simulator
        await sim.send_mo(PHONE, "what?")
        await eventually(lambda: len(sim.inbox(PHONE)) == 1)

        module = tmp_path / "bots" / "hello.py"
        module.write_text(
            module.read_text().replace('@bot.keyword("NAME")', '@bot.keyword("RENAME")')
        )
        (tmp_path / "templates" / "hello" / "help.txt").write_text(
            "Try one of these: {{ keywords | join(' / ') }}\n"
        )
        await eventually(lambda: "RENAME" in app.state.runtime.router.keywords)
        await sim.send_mo(PHONE, "what now?")
        await eventually(lambda: len(sim.inbox(PHONE)) == 2)

    assert (
        sim.inbox(PHONE)[0].content == "I didn't catch that. Text one of: "
        "BOOK, RESCHEDULE, UNBOOK, ESPAÑOL, ENGLISH, HELLO, NAME, JOIN, OFFERS, SURVEY"
    )
    assert sim.inbox(PHONE)[1].content == (
        "Try one of these: BOOK / RESCHEDULE / UNBOOK / ESPAÑOL / ENGLISH / HELLO / RENAME / "
        "JOIN / OFFERS / SURVEY"
    )


async def test_a_broken_edit_keeps_the_running_bots(tmp_path, settings, caplog):
    settings = copy_example(tmp_path, settings)
    async with running(create_app(settings, reload=True)) as app:
        runtime = app.state.runtime
        (tmp_path / "bots" / "broken.py").write_text("from botkit import Bot\nbot = Bot(\n")
        assert runtime.reloader.check() is False
        assert "bots not reloaded" in caplog.text and "broken.py" in caplog.text
        assert list(runtime.router.bots) == ["clinic", "hello", "optin", "promos", "survey"]

        sim = app.state.simulator
        await sim.send_mo(PHONE, "hello")
        await eventually(lambda: len(sim.inbox(PHONE)) == 1)

        (tmp_path / "bots" / "broken.py").unlink()
        shutil.copy(tmp_path / "bots" / "hello.py", tmp_path / "bots" / "hello_again.py")
        assert runtime.reloader.check() is False  # two bots named "hello": refused
        assert "two bots are named 'hello'" in caplog.text
        assert list(runtime.router.bots) == ["clinic", "hello", "optin", "promos", "survey"]


async def test_without_reload_nothing_is_watched(settings):
    async with running(create_app(settings)) as app:
        assert app.state.runtime.reloader is None
