"""Training time estimates from an earlier run: epochs, pixels and fold models scale the per-epoch part."""
from __future__ import annotations

import pytest

from core.train.estimate import EarlierRun, describe_seconds, estimate_seconds

EARLIER = EarlierRun(phases={"startup": 6.0, "decode": 4.0, "train": 50.0, "evaluate": 8.0, "checkpoint": 2.0,
                             "other": 0.5}, epochs_done=3, image_size=160)


def test_the_same_settings_take_the_same_time():
    assert estimate_seconds(EARLIER, epochs=3, image_size=160) == pytest.approx(70.5)


def test_epochs_pixels_and_folds_scale_the_per_epoch_part_only():
    assert estimate_seconds(EARLIER, epochs=6, image_size=160) == pytest.approx(10.5 + 120.0)
    assert estimate_seconds(EARLIER, epochs=3, image_size=320) == pytest.approx(10.5 + 240.0)
    assert estimate_seconds(EARLIER, epochs=3, image_size=160, folds=4) == pytest.approx(10.5 + 300.0)


def test_no_estimate_without_a_run_that_trained():
    assert estimate_seconds(None, epochs=3, image_size=160) is None
    assert estimate_seconds(EarlierRun({"startup": 5.0}, 0, 160), epochs=3, image_size=160) is None


@pytest.mark.parametrize("seconds, text", [(45, "about 45 s"), (380, "about 6 min"), (5400, "about 1.5 h")])
def test_durations_read_as_a_person_says_them(seconds, text):
    assert describe_seconds(seconds) == text
