"""Webhooks in the settings: one from BOTKIT_WEBHOOK_*, more from botkit.toml's
[[webhooks]] tables (or BOTKIT_WEBHOOKS' JSON), every mistake a clear error naming
where it is, and no secret in any error or repr."""

from __future__ import annotations

import pytest
import test_settings
from test_settings import load

from botkit import ValidationError
from botkit.events import EVENTS

SECRET = "whsec_0123456789abcdef"
toml = test_settings.toml  # a fixture
ONE = {
    "BOTKIT_WEBHOOK_URL": "https://crm.example/botkit",
    "BOTKIT_WEBHOOK_SECRET": SECRET,
    "BOTKIT_WEBHOOK_EVENTS": "thread.ended, mo.received",
}


def test_one_webhook_from_the_environment(tmp_path):
    (hook,) = load(tmp_path, ONE).all_webhooks()
    assert hook.url == "https://crm.example/botkit" and hook.secret == SECRET
    assert hook.events == ("mo.received", "thread.ended")  # in EVENTS' order
    assert (hook.source, hook.hint) == ("settings", "…cdef")
    assert load(tmp_path).all_webhooks() == ()


def test_more_webhooks_from_botkit_toml_after_the_environments(tmp_path, toml):
    toml(
        f"""
[[webhooks]]
url = "https://a.example/hook?token=abc"
secret = "{SECRET}"
events = ["survey.completed"]

[[webhooks]]
url = "http://127.0.0.1:9000/local"
secret = "{SECRET}"
events = {list(EVENTS)!r}
""".replace("'", '"')
    )
    hooks = load(tmp_path, ONE).all_webhooks()
    assert [hook.url for hook in hooks] == [
        "https://crm.example/botkit",
        "https://a.example/hook?token=abc",
        "http://127.0.0.1:9000/local",
    ]
    assert hooks[2].events == EVENTS
    shown = repr(load(tmp_path, {**ONE, "BOTKIT_WEBHOOK_URL": "https://crm.example/b?t=xyz"}))
    assert SECRET not in shown and "token=abc" not in shown and "t=xyz" not in shown
    assert "https://a.example/hook" in shown and "https://crm.example/b" in shown


def test_webhooks_as_json_in_the_environment(tmp_path):
    text = f'[{{"url": "https://b.example/", "secret": "{SECRET}", "events": "mo.received"}}]'
    (hook,) = load(tmp_path, {"BOTKIT_WEBHOOKS": text}).all_webhooks()
    assert (hook.url, hook.events) == ("https://b.example/", ("mo.received",))


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        ({"BOTKIT_WEBHOOK_SECRET": ""}, "BOTKIT_WEBHOOK_SECRET", "needs a secret"),
        ({"BOTKIT_WEBHOOK_SECRET": "short"}, "BOTKIT_WEBHOOK_SECRET", "shorter than 16"),
        ({"BOTKIT_WEBHOOK_EVENTS": ""}, "BOTKIT_WEBHOOK_EVENTS", "names no events"),
        (
            {"BOTKIT_WEBHOOK_EVENTS": "mo.received,mo.sent"},
            "BOTKIT_WEBHOOK_EVENTS",
            "unknown events mo.sent: the events are mo.received, contact.opted_out, "
            "survey.completed, thread.ended, campaign.fired",
        ),
        ({"BOTKIT_WEBHOOK_URL": "ftp://crm.example/"}, "BOTKIT_WEBHOOK_URL", "not an http"),
        ({"BOTKIT_WEBHOOK_URL": "crm.example/hook"}, "BOTKIT_WEBHOOK_URL", "not an http"),
        ({"BOTKIT_WEBHOOK_URL": "https://[::1/"}, "BOTKIT_WEBHOOK_URL", "not a URL"),
        (
            {"BOTKIT_WEBHOOK_URL": "http://crm.example/hook"},
            "BOTKIT_WEBHOOK_URL",
            "plain http to another machine",
        ),
        ({"BOTKIT_WEBHOOK_URL": ""}, "BOTKIT_WEBHOOK_URL", "is needed with"),
    ],
)
def test_a_bad_webhook_setting_is_refused_naming_it(tmp_path, change, field, reason):
    with pytest.raises(ValidationError) as raised:
        load(tmp_path, {**ONE, **change})
    assert raised.value.field == field and reason in raised.value.reason
    assert SECRET not in str(raised.value)


@pytest.mark.parametrize(
    ("table", "reason"),
    [
        ('url = "https://a.example/"\nevents = ["mo.received"]', "webhook 1: needs a secret"),
        (f'url = "https://a.example/"\nsecret = "{SECRET}"', "webhook 1: names no events"),
        (
            f'url = "https://a.example/"\nsecret = "{SECRET}"\nevents = ["x"]\nretries = 3',
            "webhook 1 has unknown keys ['retries']",
        ),
        (f'secret = "{SECRET}"\nevents = ["mo.received"]', "webhook 1 is not a table with a url"),
        (
            f'url = "https://a.example/"\nsecret = "{SECRET}"\nevents = 3',
            "webhook 1: events is not a list of names",
        ),
        (
            'url = "https://a.example/"\nsecret = 1234567890123456789\nevents = ["mo.received"]',
            "webhook 1: the secret must be text",
        ),
    ],
)
def test_a_bad_webhooks_table_is_refused_naming_the_file(tmp_path, toml, table, reason):
    toml(f"[[webhooks]]\n{table}\n")
    with pytest.raises(ValidationError) as raised:
        load(tmp_path)
    assert raised.value.field.endswith("botkit.toml: webhooks (BOTKIT_WEBHOOKS)")
    assert raised.value.reason.startswith(reason)
    assert SECRET not in str(raised.value)


def test_webhooks_that_are_not_tables_are_refused(tmp_path, toml):
    toml("webhooks = 5\n")
    with pytest.raises(ValidationError, match=r"is not a list of tables \(\[\[webhooks\]\]\)"):
        load(tmp_path)
    with pytest.raises(ValidationError, match="BOTKIT_WEBHOOKS: is not JSON"):
        load(tmp_path, {"BOTKIT_WEBHOOKS": "[{url: x}]"})
    with pytest.raises(ValidationError, match="BOTKIT_WEBHOOKS: is not a JSON list"):
        load(tmp_path, {"BOTKIT_WEBHOOKS": '{"url": "https://a.example/"}'})


def test_one_url_is_one_webhook(tmp_path):
    text = f'[{{"url": "{ONE["BOTKIT_WEBHOOK_URL"]}", "secret": "{SECRET}", "events": ["x"]}}]'
    with pytest.raises(ValidationError, match="events"):
        load(tmp_path, {**ONE, "BOTKIT_WEBHOOKS": text})
    text = text.replace('["x"]', '["mo.received"]')
    with pytest.raises(ValidationError, match=r"crm\.example/botkit is there twice"):
        load(tmp_path, {**ONE, "BOTKIT_WEBHOOKS": text})
