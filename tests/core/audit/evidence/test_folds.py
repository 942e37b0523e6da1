"""The audit's folds: duplicate groups stay in one fold, classes are spread over the folds."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.scan.copies import duplicate_groups
from core.audit.evidence.folds import make_folds


def frame(content_hashes, phashes=None, brightness=None):
    n = len(content_hashes)
    return pd.DataFrame({
        "content_hash": content_hashes,
        "phash": phashes if phashes is not None else [None] * n,
        "brightness": brightness if brightness is not None else [0.5] * n,
        "contrast": [0.2] * n, "colorfulness": [0.1] * n,
    }, index=pd.RangeIndex(100, 100 + n))


def test_exact_and_near_copies_share_a_group():
    hashes = [f"h{i}" for i in range(6)]
    hashes[4] = "h1"  # an exact copy of row 1
    phashes = ["0000000000000000", "ffffffffffffffff", "0f0f0f0f0f0f0f0f", "f0f0f0f0f0f0f0f0",
               "ffffffffffffffff", "0f0f0f0f0f0f0f0e"]  # row 5 is one bit from row 2
    groups = duplicate_groups(frame(hashes, phashes))
    assert groups[1] == groups[4]
    assert groups[2] == groups[5]
    assert len(set(groups[[0, 1, 2, 3]])) == 4


def test_near_copies_need_matching_statistics():
    phashes = ["0f0f0f0f0f0f0f0f", "0f0f0f0f0f0f0f0e"]
    groups = duplicate_groups(frame(["a", "b"], phashes, brightness=[0.2, 0.8]))
    assert groups[0] != groups[1]


def test_the_duplicate_checks_groups_are_used_when_given():
    samples = frame([f"h{i}" for i in range(4)])
    found = pd.Series([3, None, 3, None], index=samples.index, dtype=object)
    groups = duplicate_groups(samples, found)
    assert groups[0] == groups[2] and len(set(groups)) == 3


def test_group_folds_keep_a_duplicate_pair_together_and_stratify():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], 40)
    groups = np.arange(len(labels))
    pairs = rng.choice(len(labels), size=(20, 2), replace=False)
    for a, b in pairs:
        groups[b] = groups[a]
    folds = make_folds(labels, groups, n_classes=3, folds=5, seed=0)
    assert folds.count == 5
    for a, b in pairs:
        assert folds.fold[a] == folds.fold[b]
    per_fold = np.array([np.bincount(labels[folds.fold == f], minlength=3) for f in range(5)])
    assert per_fold.min() >= 5  # every class in every fold
    for train, held_out in folds.splits():
        assert not set(groups[train]) & set(groups[held_out])


def test_excluded_rows_are_not_trained_on_unless_a_fold_would_lose_a_class():
    labels = np.array([0] * 6 + [1] * 6)
    folds = make_folds(labels, np.arange(12), n_classes=2, folds=3, seed=0)
    exclude = labels == 1
    exclude[0] = True
    for train, _ in folds.splits(exclude):
        assert set(labels[train]) == {0, 1}  # leaving out all of class 1 would leave one class
    partly = np.zeros(12, bool)
    partly[[0, 6]] = True
    for train, _ in folds.splits(partly):
        assert 0 not in train and 6 not in train


def test_small_classes_and_single_samples():
    labels = np.array([0] * 10 + [1] * 2 + [2])
    folds = make_folds(labels, np.arange(len(labels)), n_classes=3, folds=5, seed=0)
    assert not folds.assessed[-1] and folds.assessed[:-1].all()
    assert any("single sample" in note for note in folds.notes)
    with pytest.raises(ValueError, match="two classes"):
        make_folds(np.array([0, 0, 1]), np.arange(3), n_classes=2, folds=2, seed=0)
