"""The store's text form of a moment: fixed-width UTC text whose order is time order,
read back to the same moment."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from botkit.clock import parse_stamp, stamp

MOMENTS = st.datetimes(
    min_value=datetime(1970, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
)
ZONES = st.integers(min_value=-14 * 60, max_value=14 * 60).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)


def test_a_stamp_is_utc_to_the_microsecond():
    moment = datetime(2026, 12, 3, 18, 0, 0, 5, tzinfo=timezone(timedelta(hours=11)))
    assert stamp(moment) == "2026-12-03T07:00:00.000005Z"


@given(MOMENTS, ZONES)
def test_a_stamp_reads_back_as_the_same_moment(moment, zone):
    text = stamp(moment.astimezone(zone))
    assert len(text) == 27 and text.endswith("Z")
    assert text == moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")  # the form stored until now
    assert parse_stamp(text) == moment and parse_stamp(text).tzinfo == UTC


@given(MOMENTS, MOMENTS)
def test_text_order_is_time_order(first, second):
    assert (stamp(first) < stamp(second)) == (first < second)
