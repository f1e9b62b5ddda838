"""Times written without an offset are in BOTKIT_TIMEZONE; daylight saving's skipped hour
is refused and its repeated hour means the first occurrence."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from servers import free_port, served

from botkit.cli import main
from botkit.errors import ValidationError
from botkit.localtime import localize, parse_local, shown
from botkit.simulator import Simulator

SYDNEY = ZoneInfo("Australia/Sydney")
# Sydney in 2030: summer time (+11:00) ends at 03:00 on 7 April (clocks go back to 02:00)
# and starts at 02:00 on 6 October (clocks go on to 03:00).
AUTUMN_REPEATS, SPRING_SKIPS = "2030-04-07T02:30", "2030-10-06T02:30"


@pytest.mark.parametrize(
    ("text", "utc"),
    [
        ("2030-01-10T09:00", datetime(2030, 1, 9, 22, 0, tzinfo=UTC)),  # summer: +11:00
        ("2030-07-10T09:00", datetime(2030, 7, 9, 23, 0, tzinfo=UTC)),  # winter: +10:00
        ("2030-07-10", datetime(2030, 7, 9, 14, 0, tzinfo=UTC)),  # a date: its midnight
        ("2030-07-10T09:00:00+00:00", datetime(2030, 7, 10, 9, 0, tzinfo=UTC)),  # offset wins
        ("2030-07-10T09:00Z", datetime(2030, 7, 10, 9, 0, tzinfo=UTC)),
    ],
)
def test_a_time_without_an_offset_is_wall_clock_time_in_the_zone(text, utc):
    assert parse_local(text, SYDNEY, "--at") == utc


def test_a_time_the_clocks_skip_is_refused_naming_the_option():
    with pytest.raises(ValidationError, match="--at: 2030-10-06 02:30 does not exist in"):
        parse_local(SPRING_SKIPS, SYDNEY, "--at")


def test_a_time_that_happens_twice_means_the_first():
    first = parse_local(AUTUMN_REPEATS, SYDNEY, "--at")
    assert first == datetime(2030, 4, 6, 15, 30, tzinfo=UTC)
    assert shown(first, SYDNEY) == "2030-04-07T02:30:00+11:00"  # still summer time
    assert shown(first + timedelta(hours=1), SYDNEY) == "2030-04-07T02:30:00+10:00"  # again


def test_an_aware_time_is_left_as_it_is():
    moment = datetime(2030, 10, 6, 2, 30, tzinfo=UTC)
    assert localize(moment, SYDNEY) is moment


def test_text_that_is_no_time_is_refused_with_examples():
    with pytest.raises(ValidationError, match=r"--since: 'soon' is not an ISO date or time \("):
        parse_local("soon", SYDNEY, "--since")


async def test_send_expires_without_an_offset_is_in_botkit_timezone(tmp_path, monkeypatch, capsys):
    sim = Simulator(password="right-Pa55", dlr_delay=3600)  # no receipt while the test runs
    port = free_port()
    for name, value in {
        "BOTKIT_GATEWAY_URL": f"http://127.0.0.1:{port}/message",
        "BOTKIT_APPLICATION": "botkit",
        "BOTKIT_PASSWORD": "right-Pa55",
        "BOTKIT_TIMEZONE": "Australia/Sydney",
        "BOTKIT_DB": str(tmp_path / "none.db"),  # no database: no opt-outs to check
    }.items():
        monkeypatch.setenv(name, value)
    async with served(sim.app, port):
        send = ["send", "+61400000001", "hi", "--expires", "2030-07-10T09:00"]
        assert await asyncio.to_thread(main, send) == 0, capsys.readouterr().err
    await sim.aclose()
    assert sim.sent[0].expires == "2030-07-10T09:00:00+10:00"
