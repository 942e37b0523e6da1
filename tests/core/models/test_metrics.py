"""Tests of core.models.metrics: the report must agree with scikit-learn's on the same predictions."""
from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import classification_report as sklearn_report
from sklearn.metrics import precision_recall_fscore_support

from core.models.metrics import cell_members, classification_report, compare_reports, report_table, row_normalised

CLASSES = ["bag", "dress", "shirt", "shoe"]


def random_predictions(seed: int, n: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """Labels over classes 0..2 only (class 3 has no support), predictions over 0..3."""
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, 3, size=n)
    y_pred = np.where(rng.random(n) < 0.6, y_true, rng.integers(0, 4, size=n))
    return y_true, y_pred


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_per_class_numbers_match_scikit_learn(seed):
    y_true, y_pred = random_predictions(seed)
    report = classification_report(y_true, y_pred, CLASSES)
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=range(len(CLASSES)), zero_division=0)
    np.testing.assert_allclose(report["precision"], precision)
    np.testing.assert_allclose(report["recall"], recall)
    np.testing.assert_allclose(report["f1"], f1)
    assert report["support"] == support.tolist()
    expected = sklearn_report(y_true, y_pred, labels=range(len(CLASSES)), target_names=CLASSES,
                              output_dict=True, zero_division=0)
    for ours, theirs in (("macro_avg", "macro avg"), ("weighted_avg", "weighted avg")):
        for key, their_key in (("precision", "precision"), ("recall", "recall"), ("f1", "f1-score")):
            assert report[ours][key] == pytest.approx(expected[theirs][their_key])
    assert report["accuracy"] == pytest.approx(float(np.mean(y_true == y_pred)))


def test_supports_and_confusion_matrix_sum_to_the_number_of_predictions():
    y_true, y_pred = random_predictions(3, n=37)
    report = classification_report(y_true, y_pred, CLASSES)
    assert sum(report["support"]) == report["n"] == 37
    assert np.asarray(report["confusion_matrix"]).sum() == 37
    assert report["macro_avg"]["support"] == report["weighted_avg"]["support"] == 37


def test_confusion_matrix_rows_are_true_classes_and_columns_predictions():
    report = classification_report([0, 0, 1, 2], [0, 1, 1, 1], ["a", "b", "c"])
    assert report["confusion_matrix"] == [[1, 1, 0], [0, 1, 0], [0, 1, 0]]
    assert report["classes"] == ["a", "b", "c"]


def test_undefined_precision_of_a_never_predicted_class_is_zero():
    report = classification_report([0, 1, 2], [0, 0, 0], ["a", "b", "c"])
    assert report["precision"] == [pytest.approx(1 / 3), 0.0, 0.0]
    assert report["recall"] == [1.0, 0.0, 0.0]


def test_invalid_predictions_are_refused():
    with pytest.raises(ValueError, match="same length"):
        classification_report([0, 1], [0], ["a", "b"])
    with pytest.raises(ValueError, match="outside"):
        classification_report([0, 2], [0, 1], ["a", "b"])


def test_report_table_has_class_rows_then_averages():
    report = classification_report([0, 1, 1], [0, 1, 0], ["a", "b"])
    table = report_table(report)
    assert list(table.index) == ["a", "b", "macro avg", "weighted avg"]
    assert table.loc["b", "recall"] == 0.5
    assert table["support"].tolist() == [1, 2, 3, 3]


def test_row_normalised_rates_sum_to_one_per_non_empty_row():
    rates = row_normalised([[3, 1], [0, 0]])
    np.testing.assert_allclose(rates, [[0.75, 0.25], [0.0, 0.0]])


def test_cell_members_are_the_positions_of_one_confusion_cell():
    true = [0, 1, 1, 2, 1]
    pred = [0, 2, 1, 2, 2]
    assert cell_members(true, pred, true_class=1, pred_class=2).tolist() == [1, 4]
    assert cell_members(true, pred, true_class=2, pred_class=0).tolist() == []


def test_compare_reports_gives_per_class_deltas_and_handles_a_missing_class():
    before = classification_report([0, 0, 1, 1], [0, 1, 1, 1], ["a", "b"])
    after = classification_report([0, 0, 1, 2], [0, 0, 1, 2], ["a", "b", "c"])
    table = compare_reports(before, after)
    assert list(table.index) == ["a", "b", "c", "accuracy", "macro avg", "weighted avg"]
    assert table.loc["a", "recall_before"] == 0.5
    assert table.loc["a", "recall_after"] == 1.0
    assert table.loc["a", "recall_delta"] == 0.5
    assert math.isnan(table.loc["c", "f1_before"]) and math.isnan(table.loc["c", "f1_delta"])
    assert table.loc["accuracy", "f1_delta"] == pytest.approx(1.0 - 0.75)
    assert table.loc["b", "support_before"] == 2 and table.loc["b", "support_after"] == 1
