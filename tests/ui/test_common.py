"""Tests of the pure helpers in ui/common.py."""
from __future__ import annotations

import pytest

from ui.common import log_scale_stops


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
