"""Installing botkit into a bot project outside this repository, each way the tutorial's
first step says, then its next step there: `botkit init` in the empty folder, and the new
bot's test run by the project's own pytest (test_docs.py follows the rest of the page).

Each case makes a new virtual environment (without this one's packages) and installs
botkit and its dependencies into it with pip, from PyPI or pip's cache: marked `install`,
so that `pytest -m "not install"` can leave it out.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import ROOT
from tutorial import blocks, follow, options

pytestmark = pytest.mark.install

TUTORIAL = ROOT / "docs" / "writing-bots.md"
CHECKOUT = "/path/to/botkit"  # how the tutorial names this checkout


def install_steps() -> dict[str, str]:
    """The tutorial's ways of installing botkit (```sh install=WAY), by name."""
    return {
        options(info)["install"]: body
        for info, body in blocks(TUTORIAL)
        if "install" in options(info)
    }


def outside_env() -> dict[str, str]:
    """This environment, less what would tie a command to this checkout's venv."""
    leave = {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PYTHONSAFEPATH"}
    return {k: v for k, v in os.environ.items() if k not in leave and not k.startswith("BOTKIT_")}


def copy_of_checkout(folder: Path) -> Path:
    """This checkout's files as they are (git's, and new ones it does not ignore), copied
    to `folder`: pip builds in the tree it is given, and must leave this one alone."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        if (ROOT / name).is_file():  # a file deleted but not yet committed is left out
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, folder / name)
    return folder


def installed(project: Path, step: str, checkout: Path) -> Path:
    """Run an install step in `project` as its reader would (a bash session), with
    `checkout` for botkit's; the bin folder of the environment it made."""
    script = f"set -euo pipefail\n{step.replace(CHECKOUT, str(checkout))}"
    done = subprocess.run(
        ["bash", "-c", script],
        cwd=project,
        env=outside_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"{step}\n{done.stdout}\n{done.stderr}"
    return project / ".venv" / "bin"


def test_the_tutorial_has_both_ways_of_installing():
    assert set(install_steps()) == {"editable", "wheel"}
    assert all(CHECKOUT in step for step in install_steps().values())


@pytest.mark.parametrize("way", ["editable", "wheel"])
def test_a_new_project_installs_botkit_and_its_first_bot_passes_its_test(tmp_path, way):
    checkout = copy_of_checkout(tmp_path / "botkit")
    project = tmp_path / "project"
    project.mkdir()
    bin_dir = installed(project, install_steps()[way], checkout)
    where = subprocess.run(
        [bin_dir / "python", "-c", "import botkit, pytest_asyncio; print(botkit.__file__)"],
        cwd=project,
        env=outside_env(),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # Editable: the checkout's own files; a wheel: a copy in the project's environment.
    inside = (checkout / "botkit") if way == "editable" else (project / ".venv")
    assert Path(where).is_relative_to(inside), where
    env = {**outside_env(), "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    assert follow(TUTORIAL, project, bin_dir=bin_dir, env=env, most=2) == (2, 0)
    assert (project / "tests" / "test_pizza.py").is_file()
