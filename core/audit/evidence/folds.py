"""The folds of one audit: made once, grouped by duplicate group and stratified by label.

Every member of the mislabel evidence and the combiner use the same `AuditFolds`, so they
agree on which rows were held out. Copies of one photo (exact or near duplicates) share a
fold: a re-upload in another fold would teach a member the copy's label and make its
held-out prediction look better than it is.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Optional
import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold
from core.scan.copies import duplicate_groups


@dataclass
class AuditFolds:
    """fold: the fold of each row, int (N,) in [0, count); labels: the labels the folds were made for,
    int (N,); assessed: bool (N,), False for rows whose class has a single row (no fold can hold it out
    and still learn the class); notes: what fell back and why; asked: the folds asked for (count is
    fewer when a class or the duplicate groups are too few for them)."""

    fold: np.ndarray
    count: int
    labels: np.ndarray
    assessed: np.ndarray
    notes: list[str] = field(default_factory=list)
    asked: int = 0

    def fewer_than_asked(self) -> Optional[str]:
        """The warning a reviewer reads when the audit made fewer folds than asked for; None otherwise."""
        if self.count >= self.asked:
            return None
        largest = int(np.bincount(self.labels).max()) if len(self.labels) else 0
        why = (f"the largest class has {largest} listings" if largest <= self.count else
               f"the listings make only {self.count} groups of duplicate copies")
        return f"{self.count} folds instead of the {self.asked} asked for: {why}"

    def splits(self, exclude_from_training: Optional[np.ndarray] = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(training rows, held-out rows) of each fold, positions into the N rows. Rows in
        `exclude_from_training` (bool (N,)) are never trained on, unless leaving them out would leave a
        fold's training part with fewer than two classes (then that fold keeps them)."""
        for fold in range(self.count):
            held_out = np.flatnonzero(self.fold == fold)
            train = np.flatnonzero(self.fold != fold)
            if exclude_from_training is not None:
                kept = train[~exclude_from_training[train]]
                train = kept if len(np.unique(self.labels[kept])) >= 2 else train
            yield train, held_out


def audit_duplicate_groups(samples: pd.DataFrame, earlier: Mapping[str, Any]) -> np.ndarray:
    """duplicate_groups of `samples`, with the duplicate check's groups when it ran earlier in this audit
    (`earlier`: core.audit.checks.base.AuditContext.earlier, results by check name)."""
    duplicate = earlier.get("duplicate")
    return duplicate_groups(samples, duplicate.issues["group"] if duplicate is not None else None)

def make_folds(labels: np.ndarray, groups: np.ndarray, *, n_classes: int, folds: int, seed: int) -> AuditFolds:
    """Stratified group K-fold: each group in one fold, each class spread over the folds.

    labels: int (N,) in [0, n_classes); groups: int (N,) from duplicate_groups. A class smaller than
    `folds` is spread over as many folds as it has rows; with every class smaller, fewer folds.
    Seeded: the same inputs give the same folds.
    """
    labels = np.asarray(labels, dtype=np.int64)
    if folds < 2:
        raise ValueError(f"folds must be at least 2, got {folds}")
    counts = np.bincount(labels, minlength=n_classes)
    if (counts >= 2).sum() < 2:
        raise ValueError("cross-validation needs at least two classes with two or more samples each")
    usable = int(min(folds, counts.max(), len(np.unique(groups))))
    notes = _fold_notes(counts, folds, usable)
    fold = np.zeros(len(labels), dtype=np.int64)
    splitter = StratifiedGroupKFold(usable, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        for index, (_, held_out) in enumerate(splitter.split(np.zeros(len(labels)), labels, groups)):
            fold[held_out] = index
    return AuditFolds(fold, usable, labels, counts[labels] > 1, notes, asked=folds)


def _fold_notes(counts: np.ndarray, wanted: int, usable: int) -> list[str]:
    notes = []
    if usable < wanted:
        notes.append(f"{usable} folds instead of {wanted}: too few samples or duplicate groups")
    small = int(((counts > 1) & (counts < usable)).sum())
    if small:
        notes.append(f"{small} classes have fewer samples than folds; each of their samples is held out "
                     "once and the rest of the class stays in training")
    alone = int((counts == 1).sum())
    if alone:
        notes.append(f"{alone} classes have a single sample, whose label cannot be judged (not assessed)")
    return notes
