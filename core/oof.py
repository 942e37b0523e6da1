"""Out-of-fold predicted probabilities: every sample is predicted by a classifier that never saw it.

`out_of_fold_probabilities(features, labels, n_classes=K)` runs stratified K-fold cross-validation
with a classifier chosen by name from CLASSIFIERS and returns `pred_probs`, shape (N, K), the input
cleanlab's label-issue finders expect.
"""
from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, Normalizer, StandardScaler

from core.checks.base import ProgressCallback

log = logging.getLogger(__name__)

DEFAULT_FOLDS = 5
DEFAULT_CLASSIFIER = "logreg"


def _l2_normalise(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def make_logreg(*, seed: int, C: float = 0.5) -> Pipeline:
    """Multinomial logistic regression on L2-normalised, standardised features."""
    return make_pipeline(
        Normalizer(), StandardScaler(),
        LogisticRegression(C=C, max_iter=300, random_state=seed),
    )


def make_knn(*, seed: int, k: int = 15) -> Pipeline:
    """Distance-weighted k nearest neighbours under cosine similarity."""
    del seed  # deterministic
    return make_pipeline(Normalizer(), KNeighborsClassifier(n_neighbors=k, weights="distance"))


#: name -> factory(seed=...) of an unfitted sklearn classifier with predict_proba
CLASSIFIERS: dict[str, Callable[..., object]] = {
    "logreg": make_logreg,
    "knn": make_knn,
}


@dataclass
class OutOfFold:
    """pred_probs: float (N, K), rows sum to 1, column k = probability of class k; assessed: bool (N,),
    False for samples whose class has a single sample (they cannot be held out and still be learnt; their
    rows are the classifier's in-sample predictions); fold_accuracy: accuracy of each fold's held-out
    predictions against the given labels; folds: the number of folds used."""

    pred_probs: np.ndarray
    assessed: np.ndarray
    fold_accuracy: list[float]
    folds: int
    notes: list[str] = field(default_factory=list)

    @property
    def accuracy(self) -> float:
        """Accuracy of all out-of-fold predictions against the given labels."""
        return float(np.mean(self.fold_accuracy)) if self.fold_accuracy else float("nan")


def get_classifier(name: str, *, seed: int = 0):
    """An unfitted classifier called `name`; ValueError listing the valid names otherwise."""
    if name not in CLASSIFIERS:
        raise ValueError(f"unknown classifier {name!r}; classifiers are: {', '.join(sorted(CLASSIFIERS))}")
    return CLASSIFIERS[name](seed=seed)


def _predict_full(model, features: np.ndarray, n_classes: int) -> np.ndarray:
    """model.predict_proba as (n, n_classes): columns of classes the model never saw are 0."""
    probs = np.zeros((len(features), n_classes))
    probs[:, model.classes_] = model.predict_proba(features)
    return probs


def make_pca_logreg(*, seed: int, components: int = 256, C: float = 0.01) -> Pipeline:
    """Logistic regression on PCA-whitened, L2-normalised features (fast on 1,280-d embeddings)."""
    return make_pipeline(
        Normalizer(), StandardScaler(), PCA(components, whiten=True, random_state=seed),
        LogisticRegression(C=C, max_iter=300, random_state=seed),
    )


CLASSIFIERS["pca_logreg"] = make_pca_logreg


def out_of_fold_probabilities(
    features: np.ndarray,
    labels: np.ndarray,
    *,
    n_classes: int,
    folds: int = DEFAULT_FOLDS,
    classifier: str = DEFAULT_CLASSIFIER,
    seed: int = 0,
    exclude_from_training: Optional[np.ndarray] = None,
    progress: Optional[ProgressCallback] = None,
) -> OutOfFold:
    """Stratified K-fold out-of-fold predicted probabilities.

    features: float (N, D); labels: int (N,) in [0, n_classes). exclude_from_training:
    bool (N,), samples never used to fit a fold's classifier (they are still predicted),
    e.g. suspected label errors of an earlier round. Classes with fewer members than
    `folds` lower the number of folds (at least 2); a class with a single member is
    predicted by a classifier fitted on everything (marked not assessed).
    """
    n = len(labels)
    exclude = np.zeros(n, bool) if exclude_from_training is None else np.asarray(exclude_from_training, bool)
    counts = np.bincount(labels, minlength=n_classes)
    present = counts[counts > 0]
    notes = []
    usable_folds = int(min(folds, max(2, present[present > 1].min() if (present > 1).any() else 2)))
    if usable_folds < folds:
        notes.append(f"smallest class has {int(present[present > 1].min())} samples: {usable_folds} folds instead of {folds}")
    singletons = np.isin(labels, np.flatnonzero(counts == 1))
    assessed = ~singletons
    pred_probs = np.zeros((n, n_classes))
    fold_accuracy = []
    index = np.flatnonzero(assessed)
    splitter = StratifiedKFold(usable_folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence warnings on tiny folds
        for fold, (train, test) in enumerate(splitter.split(features[index], labels[index])):
            train, test = index[train], index[test]
            train = train[~exclude[train]]
            model = get_classifier(classifier, seed=seed)
            model.fit(features[train], labels[train])
            pred_probs[test] = _predict_full(model, features[test], n_classes)
            fold_accuracy.append(float((pred_probs[test].argmax(1) == labels[test]).mean()))
            if progress:
                progress((fold + 1) / usable_folds, f"fold {fold + 1}/{usable_folds}")
        if singletons.any():
            model = get_classifier(classifier, seed=seed)
            model.fit(features[~exclude], labels[~exclude])
            pred_probs[singletons] = _predict_full(model, features[singletons], n_classes)
            notes.append(f"{int(singletons.sum())} samples are alone in their class and were not held out")
    return OutOfFold(pred_probs, assessed, fold_accuracy, usable_folds, notes)
