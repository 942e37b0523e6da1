"""The Review page's pure text helpers (ui/review_widgets.py)."""
from __future__ import annotations

import pytest

from ui.review_widgets import expected_price_lines, ratio_text


@pytest.mark.parametrize("ratio, text", [(3.24, "3.2×"), (1.0, "1.0×"), (0.5, "0.50×"), (0.0113, "1/88×"),
                                         (0.0, "0.0×")])
def test_a_price_far_below_its_median_reads_as_a_fraction(ratio, text):
    assert ratio_text(ratio) == text


def test_a_flag_by_class_statistics_has_no_expected_range_lines():
    assert expected_price_lines({"price": 5.0, "class_median": 400.0}) == []


def test_sources_below_half_a_percent_are_not_named():
    lines = expected_price_lines({"expected_low": 1.0, "expected_high": 5.0, "expected_price": 2.0,
                                  "weights": {"photo": 0.996, "title": 0.004, "class sample": 0.0, "class": 0.0}})
    assert lines == ["Expected **1.00-5.00** (95% range, typical 2.00) · from similar photos 100%"]
