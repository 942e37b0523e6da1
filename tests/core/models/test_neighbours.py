"""Nearest neighbours by cosine similarity: order, exclusions, fewer rows than asked."""
from __future__ import annotations

import numpy as np
import pytest

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


def test_the_lookalike_similarity_is_read_from_how_close_photos_of_other_classes_come_on_this_dataset():
    from core.models.neighbours import lookalike_similarity

    rng = np.random.default_rng(0)
    centres = {"bag": np.array([1.0, 0.0, 0.0]), "phone": np.array([0.0, 1.0, 0.0])}
    labels = np.array(["bag"] * 50 + ["phone"] * 50)
    vectors = np.stack([centres[label] + rng.normal(0, 0.05, 3) for label in labels])
    hashes = np.array([f"h{i}" for i in range(100)], dtype=object)
    unit = unit_rows(vectors)
    threshold = lookalike_similarity(unit, labels, hashes, probes=100)
    cross = [max(float(unit[i] @ unit[j]) for j in range(100) if labels[j] != labels[i]) for i in range(100)]
    assert threshold == pytest.approx(np.quantile(cross, 0.95))
    assert threshold < 0.3  # two well-separated classes: same-class photos are look-alikes well before that

    assert lookalike_similarity(unit, np.array(["bag"] * 100), hashes) == float("inf")


def test_a_byte_identical_copy_under_another_label_is_not_taken_for_a_photo_of_another_class():
    from core.models.neighbours import lookalike_similarity

    unit = np.eye(3)[[0, 0, 1, 2]]  # bag-0, its re-upload under phone, bag-1, phone-1
    labels = np.array(["bag", "phone", "bag", "phone"])
    assert lookalike_similarity(unit, labels, np.array(["h0", "h0", "h1", "h2"]), probes=4) == 0.0
    assert lookalike_similarity(unit, labels, np.array(["h0", "h3", "h1", "h2"]), probes=4) > 0.9
