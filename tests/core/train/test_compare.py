"""Runs compared on common ground: the same images, one set of labels, paired bootstrap intervals."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score, precision_score, recall_score

from core.train.compare import OVERALL, compare_predictions, score_predictions

CLASSES = ["bag", "coat", "shoe"]


def predictions(true: np.ndarray, accuracy: float, seed: int, index) -> pd.Series:
    """Names predicted right with probability `accuracy`, else a random other class."""
    rng = np.random.default_rng(seed)
    wrong = rng.random(len(true)) > accuracy
    pred = np.where(wrong, (true + rng.integers(1, 3, len(true))) % 3, true)
    return pd.Series(np.array(CLASSES)[pred], index=index)


@pytest.fixture
def reference() -> pd.Series:
    true = np.random.default_rng(1).integers(0, 3, 600)
    return pd.Series(np.array(CLASSES)[true], index=np.arange(1000, 1600))


def test_scores_match_scikit_learn_on_the_images_both_hold(reference):
    predicted = predictions(reference.map(CLASSES.index).to_numpy(), 0.8, 2, reference.index).iloc[100:]
    report = score_predictions(predicted, reference.iloc[:500], CLASSES)
    y_true, y_pred = reference.iloc[100:500], predicted.iloc[:400]
    assert report["n"] == 400
    assert report["accuracy"] == pytest.approx((y_true == y_pred).mean())
    assert report["f1"] == pytest.approx(list(f1_score(y_true, y_pred, labels=CLASSES, average=None)))


def test_a_planted_improvement_lies_in_its_interval_and_none_reads_as_none(reference):
    true = reference.map(CLASSES.index).to_numpy()
    before = predictions(true, 0.70, 3, reference.index)
    after = predictions(true, 0.85, 4, reference.index)
    comparison = compare_predictions(before, after, reference, rounds=400)
    accuracy = comparison.overall("accuracy")
    assert accuracy["change"] == pytest.approx((after == reference).mean() - (before == reference).mean())
    assert 0 < accuracy["low"] < accuracy["change"] < accuracy["high"]
    assert accuracy["high"] - accuracy["low"] < 0.12
    macro = comparison.overall("macro_f1")
    assert macro["after"] == pytest.approx(f1_score(reference, after, average="macro"))
    rows = comparison.changes.set_index(["row", "metric"])
    assert rows.loc[("coat", "precision"), "after"] == pytest.approx(
        precision_score(reference, after, labels=["coat"], average=None)[0])
    assert rows.loc[("shoe", "recall"), "before"] == pytest.approx(
        recall_score(reference, before, labels=["shoe"], average=None)[0])
    same = compare_predictions(before, predictions(true, 0.70, 5, reference.index), reference, rounds=400)
    assert same.overall("accuracy")["low"] < 0 < same.overall("accuracy")["high"]


def test_only_the_common_labelled_images_count_and_the_rest_are_reported(reference):
    true = reference.map(CLASSES.index).to_numpy()
    before = predictions(true, 0.8, 6, reference.index).iloc[:500]
    after = predictions(true, 0.8, 7, reference.index).iloc[50:]
    labels = reference.drop(reference.index[60:70])
    comparison = compare_predictions(before, after, labels, rounds=50)
    assert (comparison.images, comparison.before_only, comparison.after_only) == (440, 60, 110)
    overall = comparison.changes[comparison.changes["row"] == OVERALL]
    assert set(overall["support"]) == {440}
    assert comparison.as_dict()["changes"][0]["row"] in CLASSES


def test_no_common_image_gives_an_empty_comparison(reference):
    comparison = compare_predictions(reference.iloc[:10], reference.iloc[10:20], reference, rounds=10)
    assert comparison.images == 0 and comparison.changes.empty
