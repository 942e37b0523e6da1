"""Out-of-fold probabilities on separable clusters, with tiny, single-sample and empty classes."""
from __future__ import annotations

import numpy as np
import pytest

from core.audit.oof import CLASSIFIERS, out_of_fold_probabilities, plan_folds


def clusters(counts, *, dim=6, seed=0):
    """Well-separated Gaussian clusters: features (N, dim) and labels (N,), counts[k] samples of class k."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 6, (len(counts), dim))
    labels = np.repeat(np.arange(len(counts)), counts)
    return centres[labels] + rng.normal(0, 1, (len(labels), dim)), labels


@pytest.mark.parametrize("classifier", sorted(CLASSIFIERS))
def test_separable_classes_are_predicted_out_of_fold(classifier):
    features, labels = clusters([30, 30, 30])
    oof = out_of_fold_probabilities(features, labels, n_classes=3, folds=5, classifier=classifier)
    assert oof.pred_probs.shape == (90, 3)
    np.testing.assert_allclose(oof.pred_probs.sum(axis=1), 1.0)
    assert (oof.pred_probs.argmax(1) == labels).mean() > 0.95
    assert oof.folds == 5 and len(oof.fold_accuracy) == 5 and oof.accuracy > 0.95
    assert oof.assessed.all() and oof.notes == []


def test_the_same_seed_gives_the_same_probabilities():
    features, labels = clusters([20, 20])
    first = out_of_fold_probabilities(features, labels, n_classes=2, seed=3, classifier="kernel_logreg")
    second = out_of_fold_probabilities(features, labels, n_classes=2, seed=3, classifier="kernel_logreg")
    np.testing.assert_array_equal(first.pred_probs, second.pred_probs)


def test_a_wrong_label_gets_a_low_probability_for_it():
    features, labels = clusters([25, 25, 25])
    noisy = labels.copy()
    noisy[0] = 2  # a class-0 point labelled 2
    oof = out_of_fold_probabilities(features, noisy, n_classes=3)
    assert oof.pred_probs[0].argmax() == 0 and oof.pred_probs[0, 2] < 0.2


def test_small_single_and_empty_classes():
    features, labels = clusters([20, 3, 1])  # class 3 has no samples at all
    oof = out_of_fold_probabilities(features, labels, n_classes=4, folds=5)
    assert oof.folds == 5
    assert oof.pred_probs.shape == (24, 4)
    np.testing.assert_array_equal(oof.pred_probs[:, 3], 0.0)
    assert oof.assessed.tolist() == [True] * 23 + [False]
    assert (oof.pred_probs[20:23].argmax(1) == 1).all(), "each sample of the 3-sample class is still learnt"
    assert len(oof.notes) == 3 and "single sample" in oof.notes[1] and "no samples" in oof.notes[2]


def test_fewer_folds_when_every_class_is_smaller_than_the_folds():
    labels = np.array([0, 0, 0, 1, 1, 1, 2, 2])
    folds, assessed, notes = plan_folds(labels, 3, 5)
    assert folds == 3 and assessed.all() and "3 folds" in notes[0]
    features, _ = clusters([3, 3, 2])
    oof = out_of_fold_probabilities(features, labels, n_classes=3, folds=5)
    assert oof.folds == 3 and len(oof.fold_accuracy) == 3


def test_excluded_samples_are_still_predicted():
    features, labels = clusters([20, 20])
    exclude = np.zeros(40, bool)
    exclude[:5] = True
    oof = out_of_fold_probabilities(features, labels, n_classes=2, exclude_from_training=exclude)
    assert (oof.pred_probs[:5].argmax(1) == 0).all()


def test_invalid_inputs_are_refused_with_a_reason():
    features, labels = clusters([10, 10])
    with pytest.raises(ValueError, match="unknown classifier 'forest'; classifiers are: kernel_logreg, logreg"):
        out_of_fold_probabilities(features, labels, n_classes=2, classifier="forest")
    with pytest.raises(ValueError, match="at least two classes"):
        out_of_fold_probabilities(features, np.zeros(20, int), n_classes=2)
    with pytest.raises(ValueError, match="folds must be at least 2"):
        out_of_fold_probabilities(features, labels, n_classes=2, folds=1)
    with pytest.raises(ValueError, match="labels must be in"):
        out_of_fold_probabilities(features, labels + 1, n_classes=2)


def test_a_fold_keeps_its_excluded_rows_when_leaving_them_out_would_leave_one_class():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 10)
    features = rng.normal(size=(20, 4)) + labels[:, None]
    exclude = labels == 1  # every sample of class 1 suspected
    oof = out_of_fold_probabilities(features, labels, n_classes=2, folds=2, exclude_from_training=exclude)
    assert oof.pred_probs.shape == (20, 2)
    assert np.allclose(oof.pred_probs.sum(axis=1), 1.0)
    assert (oof.pred_probs[:, 1] > 0).all()


def test_standardize_matches_scikit_learns_normalizer_and_scaler_chunk_by_chunk(monkeypatch):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import Normalizer, StandardScaler

    import core.audit.oof

    monkeypatch.setattr(core.audit.oof, "STANDARDIZE_CHUNK_ROWS", 7)  # several chunks, the last one short
    rng = np.random.default_rng(3)
    rows = rng.gamma(2.0, size=(50, 12)).astype(np.float32)
    rows[4] = 0.0  # a row of zeros stays zeros
    rows[:, 5] = 2.5  # a feature that does not vary is centred, not scaled
    expected = make_pipeline(Normalizer(), StandardScaler()).fit_transform(rows)
    in_place = rows.copy()
    got = core.audit.oof.Standardize(unit_rows=True, copy=False).fit_transform(in_place)
    assert got is in_place and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=1e-5)
    plain = core.audit.oof.Standardize().fit(rows)
    np.testing.assert_allclose(plain.transform(rows), StandardScaler().fit_transform(rows), atol=1e-5)
    assert plain.transform(rows) is not rows


def test_a_fold_holds_one_copy_of_its_rows(monkeypatch):
    """Memory of the out-of-fold fits (numpy's allocations, traced): at most the fold's copy of its
    rows, the held-out rows and chunk-sized working copies. scikit-learn's Normalizer and StandardScaler
    held 3.4x the features; at 100,000 photos that is 3 GB more than this."""
    import tracemalloc

    import core.audit.oof

    monkeypatch.setattr(core.audit.oof, "STANDARDIZE_CHUNK_ROWS", 128)  # chunks as small beside N as at 100,000
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 1000)
    features = (rng.normal(size=(len(labels), 1536)) + labels[:, None]).astype(np.float32)
    tracemalloc.start()
    try:
        out_of_fold_probabilities(features, labels, n_classes=4, folds=4)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1.3 * features.nbytes, f"peak {peak / features.nbytes:.2f} x the features"
