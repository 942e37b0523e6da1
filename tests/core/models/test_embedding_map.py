"""The embedding map: nearby vectors land nearby, the same vectors give the same map, degenerate input is zeros."""
from __future__ import annotations

import numpy as np

from core.models.embedding_map import even_sample, project_2d


def test_two_clusters_land_apart_and_the_map_is_repeatable():
    rng = np.random.default_rng(0)
    a = rng.normal([5, 0, 0, 0], 0.1, size=(30, 4))
    b = rng.normal([0, 5, 0, 0], 0.1, size=(30, 4))
    points = project_2d(np.vstack([a, b]))
    assert points.shape == (60, 2) and points.dtype == np.float32
    between = np.linalg.norm(points[:30].mean(0) - points[30:].mean(0))
    within = max(points[:30].std(0).max(), points[30:].std(0).max())
    assert between > 10 * within
    assert np.array_equal(points, project_2d(np.vstack([a, b])))


def test_degenerate_inputs_give_zeros():
    assert not project_2d(np.ones((2, 5))).any()
    assert not project_2d(np.ones((10, 5))).any()  # one direction
    assert project_2d(np.empty((0, 8))).shape == (0, 2)


def test_an_even_sample_is_bounded_and_sorted():
    assert even_sample(5, limit=10).tolist() == [0, 1, 2, 3, 4]
    chosen = even_sample(1000, limit=100)
    assert len(chosen) == 100 and np.all(np.diff(chosen) > 0)
