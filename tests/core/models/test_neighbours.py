"""Nearest neighbours by cosine similarity: order, exclusions, fewer rows than asked."""
from __future__ import annotations

import numpy as np

from core.models.neighbours import nearest, unit_rows


def test_the_most_similar_rows_come_first_without_the_query():
    vectors = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.7, 0.7], [-1.0, 0.0]])
    rows, similarity = nearest(unit_rows(vectors), 0, 3)
    assert rows.tolist() == [1, 3, 2]
    assert np.all(np.diff(similarity) <= 0) and similarity[0] > 0.99


def test_excluded_rows_and_short_datasets():
    unit = unit_rows(np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]))
    rows, _ = nearest(unit, 0, 5, exclude=np.array([False, True, False]))  # row 1 is a byte-identical copy
    assert rows.tolist() == [2]
    assert nearest(unit_rows(np.ones((1, 3))), 0, 4)[0].size == 0


def test_zero_vectors_do_not_divide_by_zero():
    unit = unit_rows(np.array([[0.0, 0.0], [1.0, 0.0]]))
    assert np.isfinite(unit).all()
