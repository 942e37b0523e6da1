"""Tests of the pure helpers in ui/common.py."""
from __future__ import annotations

import pytest

from ui.common import log_scale_stops, seconds_left, time_left


def test_stops_run_from_low_to_high_through_round_numbers():
    assert log_scale_stops(40.0, 330.0) == [40.0, 50.0, 70.0, 100.0, 150.0, 200.0, 300.0, 330.0]


def test_stops_cover_orders_of_magnitude_evenly():
    stops = log_scale_stops(0.12, 21_590.0)
    assert stops[0] == 0.12 and stops[-1] == 21_590.0
    assert stops == sorted(set(stops))
    assert sum(1 for s in stops if 10 <= s < 100) == sum(1 for s in stops if 1_000 <= s < 10_000) == 6


def test_free_items_and_single_prices():
    assert log_scale_stops(0.0, 1.0)[:3] == [0.0, 0.01, 0.015]
    assert log_scale_stops(5.0, 5.0) == [5.0]
    with pytest.raises(ValueError, match="low > high"):
        log_scale_stops(2.0, 1.0)


def test_the_time_left_follows_the_slower_of_the_whole_run_and_the_recent_pace():
    # Half done in 20 s, but the last 30 s gained only a tenth: 0.5 / (0.1 / 30 s) = 150 s, not 20 s.
    assert seconds_left(0.5, 20.0) == pytest.approx(20.0)
    assert seconds_left(0.5, 20.0, (30.0, 0.1)) == pytest.approx(150.0)
    assert time_left(0.5, 20.0, (30.0, 0.1)) == ", about 2 min left"
    # A recent pace faster than the whole run's does not shorten the estimate.
    assert seconds_left(0.5, 60.0, (30.0, 0.4)) == pytest.approx(60.0)
    # No progress over a full window: nothing can be said.
    assert time_left(0.5, 60.0, (30.0, 0.0)) == ""
    # Too short a window is not a pace yet.
    assert seconds_left(0.5, 20.0, (3.0, 0.0)) == pytest.approx(20.0)


def test_the_time_left_in_words():
    assert time_left(0.01, 60.0) == ""  # too little done
    assert time_left(0.5, 5.0) == ""  # too early
    assert time_left(0.8, 160.0) == ", about 40 s left"
    assert time_left(0.98, 100.0) == ", about 10 s left"
    assert time_left(0.25, 60.0) == ", about 3 min left"
    assert time_left(0.1, 600.0) == ", about 1 h 30 min left"
