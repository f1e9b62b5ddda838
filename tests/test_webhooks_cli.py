"""`botkit webhooks add|list|remove` on both backends: a secret made and shown once,
only its last 4 listed, the settings' webhooks listed beside, and every mistake an
error that says what to do."""

from __future__ import annotations

import pytest

from botkit.cli import main

pytestmark = pytest.mark.backends

SECRET = "whsec_0123456789abcdef"
URL = "https://crm.example/botkit"


def botkit(capsys, *args: str) -> tuple[int, str, str]:
    status = main(list(args))
    out, err = capsys.readouterr()
    return status, out, err


def test_add_list_and_remove(capsys, database):
    db = ("--db", database)
    assert botkit(capsys, "webhooks", "list", *db) == (0, "no webhooks\n", "")

    status, out, _ = botkit(capsys, "webhooks", "add", URL, "--events", "thread.ended", *db)
    assert status == 0
    added, shown = out.splitlines()
    assert added == f"webhook 1: {URL} (thread.ended)"
    secret = shown.removeprefix("secret (shown this once): ")
    assert secret.startswith("whsec_") and len(secret) > 40

    status, out, _ = botkit(
        capsys,
        "webhooks",
        "add",
        "http://127.0.0.1:8080/in?token=abc",
        "--events",
        "survey.completed, mo.received",
        "--secret",
        SECRET,
        *db,
    )
    assert (status, out) == (
        0,
        "webhook 2: http://127.0.0.1:8080/in (mo.received, survey.completed)\n",
    )

    status, out, _ = botkit(capsys, "webhooks", "list", *db)
    assert status == 0
    assert out.splitlines() == [
        f"   1  {URL}  thread.ended  secret …{secret[-4:]}",
        "   2  http://127.0.0.1:8080/in  mo.received,survey.completed  secret …cdef",
    ]
    assert secret not in out and SECRET not in out and "token" not in out

    assert botkit(capsys, "webhooks", "remove", "1", *db) == (0, "webhook 1 removed\n", "")
    status, _, err = botkit(capsys, "webhooks", "remove", "1", *db)
    assert (status, err) == (2, "botkit: ID: no webhook 1 in the database (see `list`)\n")
    status, out, _ = botkit(capsys, "webhooks", "list", *db)
    assert out.startswith("   2  http://127.0.0.1:8080/in")


def test_the_settings_webhooks_are_listed_and_not_added_again(capsys, database, monkeypatch):
    monkeypatch.setenv("BOTKIT_WEBHOOK_URL", URL)
    monkeypatch.setenv("BOTKIT_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("BOTKIT_WEBHOOK_EVENTS", "mo.received")
    db = ("--db", database)
    status, out, _ = botkit(capsys, "webhooks", "list", *db)
    assert (status, out) == (0, f"   -  {URL}  mo.received  secret …cdef\n")
    status, _, err = botkit(capsys, "webhooks", "add", URL, "--events", "mo.received", *db)
    assert (status, err) == (2, f"botkit: URL: {URL} is a webhook of the settings already\n")


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (
            [URL, "--events", "mo.recieved"],
            "--events: unknown events mo.recieved: the events are mo.received, "
            "contact.opted_out, survey.completed, thread.ended, campaign.fired",
        ),
        (["ftp://crm.example/", "--events", "mo.received"], "URL: 'ftp://crm.example/' is not"),
        (["http://crm.example/", "--events", "mo.received"], "URL: 'http://crm.example/' is plain"),
        (
            [URL, "--events", "mo.received", "--secret", "tiny-one"],
            "--secret: the secret is shorter",
        ),
    ],
)
def test_a_bad_webhook_is_refused_saying_why(capsys, database, args, error):
    status, out, err = botkit(capsys, "webhooks", "add", *args, "--db", database)
    assert (status, out) == (2, "")
    assert err.startswith(f"botkit: {error}")
    assert "tiny-one" not in err


def test_the_same_url_twice_is_refused(capsys, database):
    args = ("webhooks", "add", URL, "--events", "mo.received", "--db", database)
    assert botkit(capsys, *args)[0] == 0
    status, _, err = botkit(capsys, *args)
    assert (status, err) == (2, f"botkit: URL: {URL} is a webhook already: remove it first\n")
