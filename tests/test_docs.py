"""The tutorials run as written: each page of docs/, block by block, in an empty folder
(the blocks are read as `tutorial.follow` says), with this checkout's botkit."""

from __future__ import annotations

import pytest
from conftest import ROOT
from tutorial import follow


@pytest.mark.parametrize(
    ("doc", "least_ran", "least_written"),
    [
        ("writing-bots.md", 6, 14),
        ("opt-in.md", 5, 8),
        ("surveys.md", 5, 7),
        ("contacts.md", 3, 6),
        ("campaigns.md", 2, 6),
        ("webhooks.md", 4, 5),
    ],
)
def test_tutorial_runs_as_written(tmp_path, doc, least_ran, least_written):
    ran, written = follow(ROOT / "docs" / doc, tmp_path)
    assert ran >= least_ran and written >= least_written
