"""Tests of core/audit/checks/base.py: how a flag's score is shown to people."""
from __future__ import annotations

import pytest

from core.audit.checks.base import sure_text


@pytest.mark.parametrize("score, shown", [(0.066, "0.934"), (0.00066, "0.99934"), (0.5, "0.500"), (0.0, "1")])
def test_how_sure_shows_the_distance_to_one(score, shown):
    assert sure_text(score) == shown
