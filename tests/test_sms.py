"""Measuring an SMS: GSM-7 or UCS-2, units, and segments (160/153 and 70/67)."""

from __future__ import annotations

import pytest

from botkit.sms import GSM7, UCS2, Encoding, measure

EMOJI = "😀"  # outside the Basic Multilingual Plane: two UTF-16 units


@pytest.mark.parametrize(
    ("length", "segments"),
    [(1, 1), (160, 1), (161, 2), (153 * 2, 2), (153 * 2 + 1, 3), (153 * 3, 3)],
)
def test_gsm7_segments(length, segments):
    assert measure("a" * length) == Encoding(GSM7, length, segments)


@pytest.mark.parametrize(
    ("length", "segments"),
    [(1, 1), (70, 1), (71, 2), (67 * 2, 2), (67 * 2 + 1, 3)],
)
def test_ucs2_segments(length, segments):
    assert measure("ā" * length) == Encoding(UCS2, length, segments)


def test_empty_text_is_one_gsm7_segment():
    assert measure("") == Encoding(GSM7, 0, 1)


def test_gsm7_basic_characters_beyond_ascii_stay_gsm7():
    text = "£¥èéùìòØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ¤¡ÄÖÑÜ§¿äöñüà@\n"
    assert measure(text) == Encoding(GSM7, len(text), 1)


@pytest.mark.parametrize("char", list("€{}[]~^|\\\f"))
def test_extension_characters_count_two_septets(char):
    assert measure(f"a{char}b") == Encoding(GSM7, 4, 1)


def test_eighty_euro_signs_fill_one_segment():
    assert measure("€" * 80) == Encoding(GSM7, 160, 1)


def test_eighty_one_euro_signs_take_two_segments():
    assert measure("€" * 81) == Encoding(GSM7, 162, 2)


def test_braces_push_a_gsm7_text_over_one_segment():
    assert measure("{" + "a" * 158 + "}") == Encoding(GSM7, 162, 2)


def test_one_character_outside_gsm7_makes_the_whole_text_ucs2():
    assert measure("a" * 100 + "ā") == Encoding(UCS2, 101, 2)


def test_emoji_is_two_utf16_units():
    assert measure(EMOJI) == Encoding(UCS2, 2, 1)


def test_thirty_five_emoji_fill_one_segment():
    assert measure(EMOJI * 35) == Encoding(UCS2, 70, 1)


def test_thirty_six_emoji_take_two_segments():
    assert measure(EMOJI * 36) == Encoding(UCS2, 72, 2)


def test_extension_characters_in_ucs2_text_count_once():
    assert measure("€ā") == Encoding(UCS2, 2, 1)


# A carrier never splits an escape sequence (ESC + character) or a surrogate pair across
# two parts of a long message, so a part may carry one unit less than 153 or 67.
# See e.g. Codesleuth/split-sms lib/splitter.js and Twilio's message-segment-calculator.


def test_escape_sequences_are_not_split_across_segments():
    assert measure("€" * 153).segments == 3


def test_surrogate_pairs_are_not_split_across_segments():
    assert measure(EMOJI * 67).segments == 3
