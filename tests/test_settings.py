"""Settings: defaults, botkit.toml under the environment under keyword overrides, casting
errors that name the variable, and secrets kept out of repr."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from botkit import Settings, ValidationError
from botkit.settings import DEFAULT_GATEWAY_URL, describe

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.fixture
def toml(tmp_path: Path):
    """Write botkit.toml in tmp_path and return its path."""

    def write(text: str) -> Path:
        path = tmp_path / "botkit.toml"
        path.write_text(text, encoding="utf-8")
        return path

    return write


def load(tmp_path: Path, environ: dict[str, str] | None = None, **overrides) -> Settings:
    """Settings from `environ` only (plus tmp_path/botkit.toml, if a test wrote one)."""
    return Settings.load(environ=environ or {}, config_file=tmp_path / "botkit.toml", **overrides)


def test_defaults(tmp_path):
    settings = load(tmp_path)
    assert settings == Settings()
    assert settings.gateway_url == DEFAULT_GATEWAY_URL
    assert (settings.application, settings.password, settings.callback_token) == (None,) * 3
    assert settings.message_class == "mt_message"
    assert settings.callback_allow == ()
    assert settings.db == "botkit.db"
    assert settings.send_rate == 10.0
    assert settings.resend_uncertain is False
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.simulator_mode


def test_toml_values_are_read(tmp_path, toml):
    toml('db = "bots.db"\nsend_rate = 5\ncallback_allow = ["10.0.0.0/8"]\nport = 9000\n')
    settings = load(tmp_path)
    assert (settings.db, settings.send_rate, settings.port) == ("bots.db", 5, 9000)
    assert settings.callback_allow == ("10.0.0.0/8",)


def test_environment_overrides_toml(tmp_path, toml):
    toml('db = "from-toml.db"\nsend_rate = 5\n')
    settings = load(tmp_path, {"BOTKIT_DB": "from-env.db", "BOTKIT_SEND_RATE": "2.5"})
    assert (settings.db, settings.send_rate) == ("from-env.db", 2.5)


def test_keyword_overrides_beat_the_environment(tmp_path, toml):
    toml('db = "from-toml.db"\n')
    settings = load(tmp_path, {"BOTKIT_DB": "from-env.db"}, db="from-override.db")
    assert settings.db == "from-override.db"


def test_override_of_none_leaves_the_environment_value(tmp_path):
    settings = load(tmp_path, {"BOTKIT_DB": "from-env.db", "BOTKIT_PORT": "9001"}, db=None)
    assert (settings.db, settings.port) == ("from-env.db", 9001)


def test_environment_strings_are_cast(tmp_path):
    settings = load(tmp_path, {"BOTKIT_PORT": "8080", "BOTKIT_SEND_RATE": "3"})
    assert settings.port == 8080
    assert settings.send_rate == 3.0


@pytest.mark.parametrize("value", ["abc", "", "ten"])
def test_send_rate_that_is_not_a_number_names_the_variable(tmp_path, value):
    with pytest.raises(ValidationError, match="BOTKIT_SEND_RATE") as info:
        load(tmp_path, {"BOTKIT_SEND_RATE": value})
    assert info.value.field == "BOTKIT_SEND_RATE"


@pytest.mark.parametrize("value", ["0", "-1", "0.0"])
def test_send_rate_must_be_positive(tmp_path, value):
    with pytest.raises(ValidationError, match=r"BOTKIT_SEND_RATE.*positive") as info:
        load(tmp_path, {"BOTKIT_SEND_RATE": value})
    assert info.value.field == "BOTKIT_SEND_RATE"


def test_send_rate_nan_is_refused(tmp_path):
    with pytest.raises(ValidationError, match="BOTKIT_SEND_RATE"):
        load(tmp_path, {"BOTKIT_SEND_RATE": "nan"})


def test_send_rate_of_zero_in_toml_is_refused(tmp_path, toml):
    toml("send_rate = 0\n")
    with pytest.raises(ValidationError, match="BOTKIT_SEND_RATE"):
        load(tmp_path)


def test_port_that_is_not_a_number_names_the_variable(tmp_path):
    with pytest.raises(ValidationError, match=r"BOTKIT_PORT.*'http'"):
        load(tmp_path, {"BOTKIT_PORT": "http"})


def test_callback_allow_is_split_on_commas(tmp_path):
    allow = "10.0.0.1, 192.168.0.0/24,,2001:db8::/32 "
    settings = load(tmp_path, {"BOTKIT_CALLBACK_ALLOW": allow})
    assert settings.callback_allow == ("10.0.0.1", "192.168.0.0/24", "2001:db8::/32")


def test_empty_callback_allow_allows_any(tmp_path):
    assert load(tmp_path, {"BOTKIT_CALLBACK_ALLOW": ""}).callback_allow == ()


@pytest.mark.parametrize("entry", ["10.0.0.0/33", "example.com", "300.1.1.1"])
def test_bad_callback_allow_entry_names_the_variable_and_entry(tmp_path, entry):
    with pytest.raises(ValidationError, match="BOTKIT_CALLBACK_ALLOW") as info:
        load(tmp_path, {"BOTKIT_CALLBACK_ALLOW": f"10.0.0.1,{entry}"})
    assert repr(entry) in str(info.value)


@pytest.mark.parametrize("value", ["1", "true", "True", "YES", "on"])
def test_resend_uncertain_true_values(tmp_path, value):
    assert load(tmp_path, {"BOTKIT_RESEND_UNCERTAIN": value}).resend_uncertain is True


@pytest.mark.parametrize("value", ["0", "false", "FALSE", "no", "off", ""])
def test_resend_uncertain_false_values(tmp_path, value):
    assert load(tmp_path, {"BOTKIT_RESEND_UNCERTAIN": value}).resend_uncertain is False


def test_resend_uncertain_other_text_names_the_variable(tmp_path):
    with pytest.raises(ValidationError, match=r"BOTKIT_RESEND_UNCERTAIN.*'maybe'"):
        load(tmp_path, {"BOTKIT_RESEND_UNCERTAIN": "maybe"})


def test_application_and_password_together_leave_simulator_mode(tmp_path):
    settings = load(tmp_path, {"BOTKIT_APPLICATION": "app", "BOTKIT_PASSWORD": "pw"})
    assert not settings.simulator_mode


def test_application_without_password_is_refused(tmp_path):
    with pytest.raises(ValidationError, match="BOTKIT_PASSWORD") as info:
        load(tmp_path, {"BOTKIT_APPLICATION": "app"})
    assert info.value.field == "BOTKIT_PASSWORD"


def test_password_without_application_is_refused(tmp_path):
    with pytest.raises(ValidationError, match="BOTKIT_APPLICATION") as info:
        load(tmp_path, {"BOTKIT_PASSWORD": "pw"})
    assert info.value.field == "BOTKIT_APPLICATION"


def test_empty_application_counts_as_unset(tmp_path):
    settings = load(tmp_path, {"BOTKIT_APPLICATION": "", "BOTKIT_PASSWORD": ""})
    assert settings.application is None
    assert settings.simulator_mode


def test_unknown_log_format_is_refused(tmp_path):
    with pytest.raises(ValidationError, match="BOTKIT_LOG_FORMAT"):
        load(tmp_path, {"BOTKIT_LOG_FORMAT": "xml"})


def test_unknown_key_in_toml_is_refused_naming_file_and_key(tmp_path, toml):
    path = toml('db = "x.db"\nsend_rat = 5\n')
    with pytest.raises(ValidationError, match="send_rat") as info:
        load(tmp_path)
    assert info.value.field == str(path)


def test_malformed_toml_is_a_validation_error_naming_the_file(tmp_path, toml):
    path = toml("db = \n")
    with pytest.raises(ValidationError, match=re.escape(str(path))):
        load(tmp_path)


def test_missing_toml_file_is_not_an_error(tmp_path):
    settings = Settings.load(environ={}, config_file=tmp_path / "absent" / "botkit.toml")
    assert settings == Settings()


def test_repr_hides_every_secret(tmp_path):
    settings = load(
        tmp_path,
        {
            "BOTKIT_APPLICATION": "my-app",
            "BOTKIT_PASSWORD": "gateway-secret-1",
            "BOTKIT_DASHBOARD_USER": "admin",
            "BOTKIT_DASHBOARD_PASSWORD": "dashboard-secret-2",
            "BOTKIT_CALLBACK_TOKEN": "callback-secret-3",
        },
    )
    text = repr(settings)
    assert "my-app" in text
    assert "admin" in text
    for secret in ("gateway-secret-1", "dashboard-secret-2", "callback-secret-3"):
        assert secret not in text
        assert secret not in str(settings)


def test_describe_names_each_setting_once_with_help():
    rows = describe()
    names = [name for name, _, _ in rows]
    assert len(names) == len(set(names))
    assert all(name.startswith("BOTKIT_") and text for name, _, text in rows)
    assert ("BOTKIT_SEND_RATE", "10.0", "MT messages per second, at most") in rows


def readme_variables() -> set[str]:
    """Every BOTKIT_ variable in the first column of the README's settings table."""
    names: set[str] = set()
    for line in README.read_text(encoding="utf-8").splitlines():
        if line.startswith("|"):
            first_cell = line.split("|")[1]
            names.update(re.findall(r"BOTKIT_[A-Z_]+", first_cell))
    return names


def test_describe_covers_every_variable_in_the_readme():
    documented = readme_variables()
    assert {"BOTKIT_DASHBOARD_PASSWORD", "BOTKIT_RESEND_UNCERTAIN"} <= documented  # parsed
    described = {name for name, _, _ in describe()}
    assert documented - described == set()


@pytest.mark.parametrize("port", ["0", "70000", "-1"])
def test_port_out_of_range_is_refused(tmp_path, port):
    with pytest.raises(ValidationError, match="BOTKIT_PORT"):
        load(tmp_path, {"BOTKIT_PORT": port})


def test_timezone_is_an_iana_zone(tmp_path):
    assert load(tmp_path, {}).zone.key == "UTC"
    assert load(tmp_path, {"BOTKIT_TIMEZONE": "Australia/Sydney"}).zone.key == "Australia/Sydney"
    with pytest.raises(ValidationError, match=r"BOTKIT_TIMEZONE.*Mars/Olympus"):
        load(tmp_path, {"BOTKIT_TIMEZONE": "Mars/Olympus"})


@pytest.mark.parametrize("days", ["0", "-1", "nan", "soon"])
def test_thread_idle_days_must_be_positive(tmp_path, days):
    with pytest.raises(ValidationError, match="BOTKIT_THREAD_IDLE_DAYS"):
        load(tmp_path, {"BOTKIT_THREAD_IDLE_DAYS": days})


def test_ignored_settings_come_from_neither_file_nor_environment(tmp_path):
    (tmp_path / "botkit.toml").write_text('application = "prod"\nsender_name = "Shop"\n')
    environ = {"BOTKIT_PASSWORD": "secret", "BOTKIT_SEND_RATE": "5"}
    settings = Settings.load(
        environ=environ,
        config_file=tmp_path / "botkit.toml",
        ignore=("application", "password"),
    )
    assert settings.simulator_mode and settings.password is None
    assert (settings.sender_name, settings.send_rate) == ("Shop", 5.0)


@pytest.mark.parametrize("zone", ["Australia", "Etc", "A" * 300, "../../etc/passwd", ""])
def test_a_timezone_that_is_a_folder_or_too_long_is_a_clear_error(tmp_path, zone):
    with pytest.raises(ValidationError, match="BOTKIT_TIMEZONE") as caught:
        load(tmp_path, {"BOTKIT_TIMEZONE": zone})
    assert len(str(caught.value)) < 200


@pytest.mark.parametrize("days", ["1e9", "1000000", "36501", "1e-300"])
def test_thread_idle_days_stay_within_a_century(tmp_path, days):
    with pytest.raises(ValidationError, match="BOTKIT_THREAD_IDLE_DAYS"):
        load(tmp_path, {"BOTKIT_THREAD_IDLE_DAYS": days})
    assert load(tmp_path, {"BOTKIT_THREAD_IDLE_DAYS": "36500"}).thread_idle_days == 36500


@pytest.mark.parametrize(
    ("line", "field"),
    [("timezone = 5", "timezone"), ("thread_idle_days = [1]", "thread_idle_days"),
     ("send_rate = [1]", "send_rate"), ("stop_words = [1, 2]", "stop_words"),
     ("port = true", "port"), ("failed_reply = 1", "failed_reply")],
)  # fmt: skip
def test_a_toml_value_of_the_wrong_type_is_a_clear_error(tmp_path, line, field):
    (tmp_path / "botkit.toml").write_text(line + "\n")
    with pytest.raises(ValidationError, match=f"botkit.toml: {field}"):
        load(tmp_path)


def test_a_bad_value_from_botkit_toml_is_blamed_on_the_file(tmp_path):
    (tmp_path / "botkit.toml").write_text('timezone = "Australia/Sydnee"\n')
    with pytest.raises(ValidationError, match=r"botkit.toml: timezone \(BOTKIT_TIMEZONE\)"):
        load(tmp_path)
    with pytest.raises(ValidationError, match=r"^BOTKIT_TIMEZONE: 'Mars'"):  # the variable wins
        load(tmp_path, {"BOTKIT_TIMEZONE": "Mars"})
