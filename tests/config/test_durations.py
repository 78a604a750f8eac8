"""Durations as configuration files and command options write them: "500ms", "1h30m"."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from navarch.durations import format_duration, parse_duration


@given(st.integers(min_value=0, max_value=10**9))
def test_durations_round_trip(ms):
    value = timedelta(milliseconds=ms)
    assert parse_duration(format_duration(value)) == value


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("500ms", 0.5), ("30s", 30), ("5m", 300), ("1h30m", 5400), ("1d", 86400), ("1.5s", 1.5)],
)
def test_duration_forms(text, seconds):
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["", "5", "5 m", "m5", "5x", "1h 30m", "-5s"])
def test_bad_durations(text):
    with pytest.raises(ValueError):
        parse_duration(text)
