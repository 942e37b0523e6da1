"""Two runs compared on common ground: the same images, one set of reference labels, and a paired bootstrap
interval for every change, so a user can tell a real improvement from the noise of a few hundred images.

Inputs are stored validation predictions (no retraining): pd.Series indexed by sample id holding class
names. Per-class numbers are scikit-learn's (zero where undefined), the same as core.models.metrics.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from core.models.metrics import classification_report

#: Bootstrap rounds of the interval of each change.
BOOTSTRAP_ROUNDS = 1000
#: Central share of the bootstrap distribution the interval covers.
INTERVAL_LEVEL = 0.95
#: Resampled image weights held in memory at once (rounds x images).
BOOTSTRAP_CELLS = 2_000_000
OVERALL = "overall"
OVERALL_METRICS = ("accuracy", "macro_precision", "macro_recall", "macro_f1")
CLASS_METRICS = ("precision", "recall", "f1")
CHANGE_COLUMNS = ["row", "metric", "before", "after", "change", "low", "high", "support"]


def score_predictions(predicted: pd.Series, reference: pd.Series, classes: list[str]) -> dict[str, Any]:
    """core.models.metrics.classification_report of stored predictions against reference labels.

    predicted: class name per sample id; reference: class name per sample id (for example the labels
    after every review decision, db.evaluation.reference_labels). Scored on the sample ids both hold;
    `classes` must contain every name in either.
    """
    common = predicted.index.intersection(reference.index)
    index = {name: k for k, name in enumerate(classes)}
    unknown = (set(predicted.loc[common]) | set(reference.loc[common])) - set(index)
    if unknown:
        raise ValueError(f"labels outside the classes: {', '.join(sorted(map(str, unknown)))}")
    return classification_report(reference.loc[common].map(index).to_numpy(np.int64),
                                 predicted.loc[common].map(index).to_numpy(np.int64), classes)


@dataclass(frozen=True)
class RunComparison:
    """Run `before` against run `after` on the images both evaluated that have a reference label.

    changes: CHANGE_COLUMNS rows: per class (row = class name; precision, recall, f1) and overall
    (row = OVERALL; OVERALL_METRICS): both runs' values, after - before, the bootstrap interval of the
    change [low, high] and the images it counts (the class's reference support; every image overall).
    """

    images: int  # images scored: in both validation sets and labelled
    before_only: int  # validation images of `before` left out (not evaluated by `after`, or unlabelled)
    after_only: int
    classes: list[str]
    changes: pd.DataFrame
    rounds: int

    def overall(self, metric: str) -> pd.Series:
        """The overall row of `metric` (one of OVERALL_METRICS)."""
        rows = self.changes[(self.changes["row"] == OVERALL) & (self.changes["metric"] == metric)]
        return rows.iloc[0]

    def ground(self, before: int, after: int, labels_text: str) -> str:
        """One line saying which images and which labels the comparison used; before, after: the runs' names
        (their numbers)."""
        left_out = (f"; left out: {self.before_only:,} of run {before}'s and {self.after_only:,} of run "
                    f"{after}'s validation images, not scored by both or without a label"
                    if self.before_only or self.after_only else "")
        return (f"Run {before} → run {after} on the {self.images:,} validation images both runs scored, "
                f"against {labels_text}{left_out}. Intervals: {INTERVAL_LEVEL:.0%}, paired bootstrap of "
                f"{self.rounds:,} resamples.")

    def as_dict(self) -> dict[str, Any]:
        return {"images": self.images, "before_only": self.before_only, "after_only": self.after_only,
                "classes": self.classes, "rounds": self.rounds,
                "changes": self.changes.astype(object).where(self.changes.notna(), None).to_dict("records")}


def _counts(weights: np.ndarray, true: np.ndarray, pred: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """Weighted confusion counts per class for each row of `weights` (R, N): tp, support, predicted (R, K) and
    correct (R,)."""
    true_hot, pred_hot = np.eye(k)[true], np.eye(k)[pred]
    return {"tp": weights @ (true_hot * pred_hot), "support": weights @ true_hot, "predicted": weights @ pred_hot,
            "correct": weights @ (true == pred).astype(np.float64)}


def _metrics(counts: dict[str, np.ndarray], scored: np.ndarray) -> dict[str, np.ndarray]:
    """Per-class precision, recall, f1 (R, K) and the overall metrics (R,); macro means over `scored` classes."""
    tp, support, predicted = counts["tp"], counts["support"], counts["predicted"]
    ratio = lambda a, b: np.divide(a, b, out=np.zeros_like(a), where=b > 0)
    per_class = {"precision": ratio(tp, predicted), "recall": ratio(tp, support),
                 "f1": ratio(2 * tp, support + predicted)}
    images = support.sum(axis=1)
    overall = {"accuracy": np.divide(counts["correct"], images, out=np.zeros_like(images), where=images > 0)}
    for name in CLASS_METRICS:
        overall[f"macro_{name}"] = per_class[name][:, scored].mean(axis=1)
    return {**per_class, **overall}


def _resampled_weights(rng: np.random.Generator, rounds: int, n: int) -> np.ndarray:
    """(rounds, n) counts: how often each image is drawn in each bootstrap resample of n images."""
    draws = rng.integers(0, n, size=(rounds, n)) + (np.arange(rounds) * n)[:, None]
    return np.bincount(draws.ravel(), minlength=rounds * n).reshape(rounds, n).astype(np.float64)


def _bootstrap_changes(true: np.ndarray, before: np.ndarray, after: np.ndarray, k: int, scored: np.ndarray, *,
                       rounds: int, seed: int) -> dict[str, np.ndarray]:
    """after - before of every metric in each of `rounds` paired resamples (the same images for both runs)."""
    rng = np.random.default_rng(seed)
    chunk = max(1, BOOTSTRAP_CELLS // max(len(true), 1))
    parts: list[dict[str, np.ndarray]] = []
    for start in range(0, rounds, chunk):
        weights = _resampled_weights(rng, min(chunk, rounds - start), len(true))
        a = _metrics(_counts(weights, true, before, k), scored)
        b = _metrics(_counts(weights, true, after, k), scored)
        parts.append({name: b[name] - a[name] for name in a})
    return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}


def compare_predictions(before: pd.Series, after: pd.Series, reference: pd.Series, *,
                        rounds: int = BOOTSTRAP_ROUNDS, seed: int = 0) -> RunComparison:
    """Compare two runs' predictions (class name per sample id) against `reference` labels on their common
    images, with a paired percentile bootstrap (images resampled together for both runs).

    Classes are the sorted union of every name involved; per-class rows and the macro means cover the
    classes with at least one reference label among the common images.
    """
    if rounds < 1:
        raise ValueError(f"rounds must be at least 1, got {rounds}")
    common = before.index.intersection(after.index).intersection(reference.index).sort_values()
    classes = sorted(set(before.loc[common]) | set(after.loc[common]) | set(reference.loc[common]))
    index = {name: k for k, name in enumerate(classes)}
    true, a, b = (series.loc[common].map(index).to_numpy(np.int64) for series in (reference, before, after))
    k = len(classes)
    observed_weights = np.ones((1, len(common)))
    support = observed_weights @ np.eye(max(k, 1))[true] if len(common) else np.zeros((1, max(k, 1)))
    scored = np.flatnonzero(support[0] > 0)
    rows = []
    if len(common):
        observed = {side: _metrics(_counts(observed_weights, true, pred, k), scored) for side, pred in
                    (("before", a), ("after", b))}
        changes = _bootstrap_changes(true, a, b, k, scored, rounds=rounds, seed=seed)
        tail = (1 - INTERVAL_LEVEL) / 2 * 100
        low = {name: np.percentile(values, tail, axis=0) for name, values in changes.items()}
        high = {name: np.percentile(values, 100 - tail, axis=0) for name, values in changes.items()}
        for c in scored:
            for metric in CLASS_METRICS:
                rows.append([classes[c], metric, observed["before"][metric][0, c], observed["after"][metric][0, c],
                             None, low[metric][c], high[metric][c], int(support[0, c])])
        for metric in OVERALL_METRICS:
            rows.append([OVERALL, metric, observed["before"][metric][0], observed["after"][metric][0], None,
                         low[metric], high[metric], len(common)])
    table = pd.DataFrame(rows, columns=CHANGE_COLUMNS)
    table["change"] = table["after"] - table["before"]
    table = table.astype({name: float for name in ("before", "after", "change", "low", "high")})
    return RunComparison(images=len(common), before_only=len(before.index.difference(common)),
                         after_only=len(after.index.difference(common)), classes=classes, changes=table, rounds=rounds)
