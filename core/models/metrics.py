"""Evaluation of a classifier on its validation set: a classification report, a confusion matrix, run comparison.

Classes are always the dataset's sorted class names (db.queries.dataset_classes) and
every per-class list follows that order. Per-class numbers are scikit-learn's
(`precision_recall_fscore_support` with `zero_division=0`), so they match its
`classification_report` exactly.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

PER_CLASS_METRICS = ("precision", "recall", "f1")


def _validate_predictions(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> None:
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise ValueError(f"y_true and y_pred must be 1-D of the same length, got {y_true.shape} and {y_pred.shape}")
    for name, values in (("y_true", y_true), ("y_pred", y_pred)):
        if values.size and (values.min() < 0 or values.max() >= n_classes):
            raise ValueError(f"{name} holds class indices outside 0..{n_classes - 1}")


def _average(values: np.ndarray, weights: np.ndarray | None) -> float:
    if weights is not None and weights.sum() == 0:
        return 0.0
    return float(np.average(values, weights=weights)) if values.size else 0.0


def classification_report(y_true: Sequence[int], y_pred: Sequence[int], classes: Sequence[str]) -> dict[str, Any]:
    """The evaluation of predictions as a JSON-able dict.

    y_true, y_pred : class indices into `classes`, shape (N,).
    Returns keys: classes (list, the order of every list below), precision,
    recall, f1 (floats in [0, 1], 0 where undefined), support (ints) per class;
    accuracy; macro_avg and weighted_avg ({precision, recall, f1, support});
    confusion_matrix (K x K ints, rows = true class, columns = predicted class);
    n (number of predictions).
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    classes = list(classes)
    _validate_predictions(y_true, y_pred, len(classes))
    labels = np.arange(len(classes))
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0,
    )
    matrix = confusion_matrix(y_true, y_pred, labels=labels) if y_true.size else np.zeros((len(classes),) * 2, int)
    total = int(support.sum())
    averages = {}
    for name, weights in (("macro_avg", None), ("weighted_avg", support)):
        averages[name] = {
            "precision": _average(precision, weights),
            "recall": _average(recall, weights),
            "f1": _average(f1, weights),
            "support": total,
        }
    return {
        "classes": classes,
        "precision": [float(v) for v in precision],
        "recall": [float(v) for v in recall],
        "f1": [float(v) for v in f1],
        "support": [int(v) for v in support],
        "accuracy": float((y_true == y_pred).mean()) if y_true.size else 0.0,
        **averages,
        "confusion_matrix": matrix.astype(int).tolist(),
        "n": int(y_true.size),
    }


def report_table(report: dict[str, Any]) -> pd.DataFrame:
    """Per-class rows (index = class name) with precision, recall, f1, support, then the macro and weighted rows."""
    table = pd.DataFrame(
        {name: report[name] for name in (*PER_CLASS_METRICS, "support")}, index=pd.Index(report["classes"], name="class"),
    )
    for name in ("macro_avg", "weighted_avg"):
        table.loc[name.replace("_", " ")] = [report[name][key] for key in (*PER_CLASS_METRICS, "support")]
    table["support"] = table["support"].astype(int)
    return table


def row_normalised(matrix: Sequence[Sequence[int]]) -> np.ndarray:
    """Confusion matrix rows divided by their sums (recall per true class), shape (K, K); empty rows stay 0."""
    counts = np.asarray(matrix, dtype=np.float64)
    sums = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, sums, out=np.zeros_like(counts), where=sums > 0)


def cell_members(true: Sequence[int], pred: Sequence[int], *, true_class: int, pred_class: int) -> np.ndarray:
    """Positions of the predictions in one confusion-matrix cell (true_class predicted as pred_class), shape (M,)."""
    true = np.asarray(true)
    pred = np.asarray(pred)
    return np.flatnonzero((true == true_class) & (pred == pred_class))


def compare_reports(before: dict[str, Any], after: dict[str, Any]) -> pd.DataFrame:
    """Per-class comparison of two reports (e.g. before and after a cleaning round).

    Index: the union of both runs' classes (those of `after` first, in order).
    Columns: <metric>_before, <metric>_after, <metric>_delta for precision,
    recall, f1, then support_before and support_after. A class missing from
    one run has NaN there. The last rows are 'accuracy' (in every metric column),
    'macro avg' and 'weighted avg'.
    """
    classes = list(after["classes"]) + [c for c in before["classes"] if c not in after["classes"]]
    sides = {"before": report_table(before), "after": report_table(after)}
    for side, report in (("before", before), ("after", after)):
        sides[side].loc["accuracy"] = [report["accuracy"]] * len(PER_CLASS_METRICS) + [report["n"]]
    rows = classes + ["accuracy", "macro avg", "weighted avg"]
    columns = {}
    for metric in PER_CLASS_METRICS:
        for side in ("before", "after"):
            columns[f"{metric}_{side}"] = sides[side][metric].reindex(rows)
        columns[f"{metric}_delta"] = columns[f"{metric}_after"] - columns[f"{metric}_before"]
    for side in ("before", "after"):
        columns[f"support_{side}"] = sides[side]["support"].reindex(rows).astype("Int64")
    return pd.DataFrame(columns, index=pd.Index(rows, name="class"))
