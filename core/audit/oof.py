"""Out-of-fold predicted probabilities: every sample is predicted by a classifier that never saw it.

`out_of_fold_probabilities(features, labels, n_classes=K)` runs stratified K-fold cross-validation
with a classifier chosen by name from CLASSIFIERS and returns `pred_probs`, shape (N, K), the input
cleanlab's label-issue finders expect. `finetune_out_of_fold` gets the same from K fine-tuned
networks (core.models.fit).
"""
from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.kernel_approximation import Nystroem
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline, make_pipeline

from core.audit.evidence.folds import AuditFolds
from core.progress import ProgressCallback

log = logging.getLogger(__name__)

DEFAULT_FOLDS = 5
#: Components kept before the classifier (fewer when a fold has fewer samples or features).
LOGREG_COMPONENTS = 256
KERNEL_COMPONENTS = 100
#: Landmarks of the Nystroem approximation of the RBF kernel (fewer when a fold has fewer samples).
KERNEL_LANDMARKS = 1500
#: Inverse regularisation strengths at REFERENCE_SAMPLES training samples, chosen by out-of-fold
#: accuracy against the demo's true labels (docs/mislabel.md): strong regularisation keeps the
#: classifiers from learning the noisy labels. scikit-learn's C multiplies a sum over samples, so
#: C is scaled by REFERENCE_SAMPLES / n to keep the same penalty per sample on any dataset size.
LOGREG_C = 0.01
KERNEL_LOGREG_C = 3.0
REFERENCE_SAMPLES = 4000


def _scaled_c(c: float, n_samples: int) -> float:
    return c * REFERENCE_SAMPLES / max(n_samples, 1)


def _components(wanted: int, n_samples: int, n_features: int) -> int:
    return max(1, min(wanted, n_samples - 1, n_features))


#: Rows per step when a Standardize fits or transforms: bounds its float64 working copy to about
#: 1024 x 2304 x 8 bytes = 19 MB (MobileNetV2 embeddings), whatever the number of rows.
STANDARDIZE_CHUNK_ROWS = 1024


class Standardize(BaseEstimator, TransformerMixin):
    """Optionally scale each row to unit L2 norm (`unit_rows`), then each feature to zero mean and unit
    variance: scikit-learn's Normalizer and StandardScaler, fitted and applied a chunk of rows at a time.

    scikit-learn's pair holds two more copies of the rows, and StandardScaler's fit a float64 one (the
    rows minus their mean): 4x the embeddings of a fold, 3.5 GB at 100,000 MobileNetV2 photos. Here the
    fit holds one chunk, and `copy=False` transforms float32 rows in place. A feature that does not vary
    is centred, not scaled; a row of zeros stays zeros.
    """

    def __init__(self, unit_rows: bool = False, copy: bool = True) -> None:
        self.unit_rows = unit_rows
        self.copy = copy

    def _prepared(self, rows: np.ndarray) -> np.ndarray:
        """float64 copy of a chunk of rows, each scaled to unit length when unit_rows."""
        chunk = np.asarray(rows, dtype=np.float64).copy()
        if self.unit_rows:
            norms = np.linalg.norm(chunk, axis=1, keepdims=True)
            chunk /= np.where(norms > 0, norms, 1.0)
        return chunk

    def _chunks(self, n: int):
        return (slice(start, start + STANDARDIZE_CHUNK_ROWS) for start in range(0, n, STANDARDIZE_CHUNK_ROWS))

    def fit(self, features: np.ndarray, y=None) -> "Standardize":
        """features: float (N, D). Two passes over the rows (mean, then variance about it), in float64."""
        n = len(features)
        total = np.zeros(features.shape[1])
        for rows in self._chunks(n):
            total += self._prepared(features[rows]).sum(axis=0)
        self.mean_ = total / max(n, 1)
        squares = np.zeros(features.shape[1])
        for rows in self._chunks(n):
            deviations = self._prepared(features[rows])
            deviations -= self.mean_
            squares += (deviations * deviations).sum(axis=0)
        scale = np.sqrt(squares / max(n, 1))
        self.scale_ = np.where(scale > 10 * np.finfo(np.float64).eps, scale, 1.0)
        return self

    def transform(self, features: np.ndarray) -> np.ndarray:
        """features: float (N, D) -> float32 (N, D); the same array when copy is False and it is float32."""
        out = np.array(features, dtype=np.float32, copy=self.copy or None)
        for rows in self._chunks(len(out)):
            out[rows] = (self._prepared(out[rows]) - self.mean_) / self.scale_
        return out


def make_logreg(*, n_samples: int, n_features: int, seed: int, copy: bool = True) -> Pipeline:
    """Multinomial logistic regression on L2-normalised, standardised, PCA-whitened features. copy False:
    the pipeline overwrites the float32 arrays it is given to fit or predict (no copy of them is made)."""
    return make_pipeline(
        Standardize(unit_rows=True, copy=copy),
        PCA(_components(LOGREG_COMPONENTS, n_samples, n_features), whiten=True, random_state=seed, copy=copy),
        LogisticRegression(C=_scaled_c(LOGREG_C, n_samples), max_iter=500, random_state=seed),
    )


class UnitTotalVariance(BaseEstimator, TransformerMixin):
    """Scale all features by one factor so that their variances sum to 1 (an RBF kernel with gamma 1
    then has the width scikit-learn's SVC calls gamma="scale")."""

    def fit(self, features: np.ndarray, y=None) -> "UnitTotalVariance":
        total = float(np.var(features, axis=0).sum())
        self.scale_ = 1.0 / np.sqrt(total) if total > 0 else 1.0
        return self

    def transform(self, features: np.ndarray) -> np.ndarray:
        return features * self.scale_


def make_kernel_logreg(*, n_samples: int, n_features: int, seed: int, copy: bool = True) -> Pipeline:
    """Logistic regression on a Nystroem approximation of an RBF kernel over standardised, PCA-reduced
    features: an RBF-SVM's boundaries with calibrated multinomial probabilities and no inner CV. copy
    False: as make_logreg."""
    return make_pipeline(
        Standardize(copy=copy),
        PCA(_components(KERNEL_COMPONENTS, n_samples, n_features), random_state=seed, copy=copy),
        UnitTotalVariance(),
        Nystroem(gamma=1.0, n_components=min(KERNEL_LANDMARKS, n_samples), random_state=seed),
        LogisticRegression(C=_scaled_c(KERNEL_LOGREG_C, n_samples), max_iter=1000, random_state=seed),
    )


#: name -> factory(n_samples=, n_features=, seed=, copy=) of an unfitted sklearn classifier with predict_proba
CLASSIFIERS: dict[str, Callable[..., Pipeline]] = {
    "logreg": make_logreg,
    "kernel_logreg": make_kernel_logreg,
}


def get_classifier(name: str, *, n_samples: int, n_features: int, seed: int = 0, copy: bool = True) -> Pipeline:
    """An unfitted classifier called `name` for a training set of that shape; ValueError listing the valid
    names. copy False: it overwrites the arrays it fits and predicts on (see make_logreg)."""
    if name not in CLASSIFIERS:
        raise ValueError(f"unknown classifier {name!r}; classifiers are: {', '.join(sorted(CLASSIFIERS))}")
    return CLASSIFIERS[name](n_samples=n_samples, n_features=n_features, seed=seed, copy=copy)


@dataclass
class OutOfFold:
    """pred_probs: float (N, K), rows sum to 1, column k = probability of class k. assessed: bool (N,),
    False for samples of a class with a single sample: no fold can hold it out and still learn its class,
    so its row comes from a classifier that never saw that class, and its label cannot be judged.
    fold_accuracy: per fold, the accuracy of the held-out predictions against the given labels."""

    pred_probs: np.ndarray
    assessed: np.ndarray
    fold_accuracy: list[float]
    folds: int
    notes: list[str] = field(default_factory=list)

    @property
    def accuracy(self) -> float:
        """Accuracy of the assessed samples' out-of-fold predictions against their given labels."""
        return float(np.mean(self.fold_accuracy)) if self.fold_accuracy else float("nan")


def predict_all_classes(model: Pipeline, features: np.ndarray, n_classes: int) -> np.ndarray:
    """model.predict_proba of features (n, D), dense or sparse, as float64 (n, n_classes), rows summing to 1:
    classes the model never saw get 0."""
    probs = np.zeros((features.shape[0], n_classes))
    probs[:, model.classes_] = model.predict_proba(features)
    return probs / probs.sum(axis=1, keepdims=True)


def _validate(features: np.ndarray, labels: np.ndarray, n_classes: int, folds: int) -> None:
    if features.ndim != 2 or len(features) != len(labels):
        raise ValueError(f"features must be (N, D) with N = len(labels) = {len(labels)}, got {features.shape}")
    if len(labels) and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(f"labels must be in [0, {n_classes}), got {labels.min()}..{labels.max()}")
    if folds < 2:
        raise ValueError(f"folds must be at least 2, got {folds}")
    counts = np.bincount(labels, minlength=n_classes)
    if (counts >= 2).sum() < 2:
        raise ValueError("cross-validation needs at least two classes with two or more samples each")


def plan_folds(labels: np.ndarray, n_classes: int, folds: int) -> tuple[int, np.ndarray, list[str]]:
    """How to split: the number of folds, which samples can be assessed, and notes on any fallback.

    A class with fewer samples than folds is spread over as many folds as it has samples (each
    fold's training part still has the rest of it); the number of folds drops to the largest class
    size when every class is smaller than `folds`. Samples alone in their class are not assessed.
    """
    counts = np.bincount(labels, minlength=n_classes)
    notes = []
    usable = int(min(folds, counts.max()))
    if usable < folds:
        notes.append(f"every class has fewer than {folds} samples: {usable} folds")
    small = [int(k) for k in np.flatnonzero((counts > 1) & (counts < usable))]
    if small:
        notes.append(f"{len(small)} classes have fewer samples than folds; each of their samples is held out "
                     "once and the rest of the class stays in training")
    alone = np.flatnonzero(counts == 1)
    if alone.size:
        notes.append(f"{alone.size} classes have a single sample, whose label cannot be judged (not assessed)")
    empty = int((counts == 0).sum())
    if empty:
        notes.append(f"{empty} classes have no samples: their probability is 0")
    return usable, ~np.isin(labels, alone), notes


def _training_rows(train: np.ndarray, exclude: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """A fold's training rows without the excluded ones, or all of them when leaving those out would
    leave fewer than two classes to learn."""
    kept = train[~exclude[train]]
    return kept if len(np.unique(labels[kept])) >= 2 else train


def out_of_fold_probabilities(
    features: np.ndarray,
    labels: np.ndarray,
    *,
    n_classes: int,
    folds: int = DEFAULT_FOLDS,
    classifier: str = "logreg",
    seed: int = 0,
    exclude_from_training: Optional[np.ndarray] = None,
    audit_folds: Optional[AuditFolds] = None,
    progress: Optional[ProgressCallback] = None,
) -> OutOfFold:
    """Stratified K-fold out-of-fold predicted probabilities.

    features: float (N, D); labels: int (N,) in [0, n_classes). exclude_from_training: bool (N,),
    samples never used to fit a classifier (they are still predicted), e.g. suspected label errors
    of an earlier round. audit_folds: the audit's folds (core.audit.evidence.folds, grouped by duplicates)
    to use instead of `folds` stratified folds of their own. Small classes: see `plan_folds`.
    Seeded: the same inputs give the same output.
    """
    labels = np.asarray(labels, dtype=np.int64)
    features = np.asarray(features, dtype=np.float32)
    _validate(features, labels, n_classes, audit_folds.count if audit_folds is not None else folds)
    report = progress or (lambda fraction, message: None)
    exclude = np.zeros(len(labels), bool) if exclude_from_training is None else np.asarray(exclude_from_training, bool)
    if audit_folds is None:
        usable, assessed, notes = plan_folds(labels, n_classes, folds)
        splitter = StratifiedKFold(usable, shuffle=True, random_state=seed)
        splits = ((_training_rows(train, exclude, labels), held_out)
                  for train, held_out in splitter.split(features, labels))
    else:
        usable, assessed, notes = audit_folds.count, audit_folds.assessed, audit_folds.notes
        splits = audit_folds.splits(exclude)
    pred_probs = np.zeros((len(labels), n_classes))
    fold_accuracy = []
    with warnings.catch_warnings():
        # the small-class split is planned above; tiny folds may stop before convergence
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        warnings.filterwarnings("ignore", category=ConvergenceWarning)
        for fold, (train, held_out) in enumerate(splits):
            # Indexing copies the rows: each model may overwrite its copy, so a fold holds one copy of its rows.
            model = get_classifier(classifier, n_samples=len(train), n_features=features.shape[1], seed=seed,
                                   copy=False)
            model.fit(features[train], labels[train])
            pred_probs[held_out] = predict_all_classes(model, features[held_out], n_classes)
            judged = held_out[assessed[held_out]]
            if judged.size:
                fold_accuracy.append(float((pred_probs[judged].argmax(1) == labels[judged]).mean()))
            report((fold + 1) / usable, f"fold {fold + 1}/{usable}")
    return OutOfFold(pred_probs, assessed, fold_accuracy, usable, notes)


def finetune_out_of_fold(
    root: str | Path,
    paths: Sequence[str],
    content_hashes: Sequence[str],
    labels: np.ndarray,
    *,
    classes: Sequence[str],
    backbone: str = "mobilenet_v2",
    pretrained: bool = True,
    folds: int = DEFAULT_FOLDS,
    epochs: int = 3,
    image_size: int = 112,
    batch_size: int = 64,
    seed: int = 0,
    device: str = "auto",
    cache_dir: str | Path,
    progress: Optional[ProgressCallback] = None,
) -> OutOfFold:
    """Out-of-fold probabilities from K networks fine-tuned on the images (core.models.fit), (N, K).

    paths are relative to `root`; labels index `classes`. Slow on a CPU: a few epochs at a small
    image size. `pretrained` False trains from scratch (no weights file needed). Images that no
    longer decode raise ValueError.
    """
    from core.models.classifiers import pick_device as pick_training_device
    from core.models.config import TrainConfig  # torch and torchvision load only when fine-tuning
    from core.models.data import load_images
    from core.models.fit import out_of_fold_pred_probs
    from core.models.samples import RunSamples

    labels = np.asarray(labels, dtype=np.int64)
    _validate(np.zeros((len(labels), 1)), labels, len(classes), folds)
    usable, assessed, notes = plan_folds(labels, len(classes), folds)
    report = progress or (lambda fraction, message: None)
    config = TrainConfig(backbone=backbone, pretrained=pretrained, image_size=image_size, epochs=epochs,
                         batch_size=batch_size, folds=usable, seed=seed, device=device, balance="none")
    config.validate()
    decoded = load_images(root, list(paths), list(content_hashes), size=image_size, cache_dir=cache_dir,
                          progress=lambda f, m: report(0.1 * f, m))
    if decoded.failed:
        position, reason = next(iter(decoded.failed.items()))
        raise ValueError(f"{len(decoded.failed)} images could not be decoded (e.g. {paths[position]}: {reason})")
    everything = np.arange(len(labels))
    samples = RunSamples(classes=list(classes), sample_ids=everything, paths=list(paths),
                         content_hashes=list(content_hashes), labels=labels, train_index=everything,
                         val_index=np.zeros(0, dtype=np.int64))
    pred_probs = out_of_fold_pred_probs(config, samples, decoded.pixels, device=pick_training_device(device),
                                        progress=report, progress_span=(0.1, 1.0)).astype(np.float64)
    correct = pred_probs[assessed].argmax(1) == labels[assessed]
    return OutOfFold(pred_probs, assessed, [float(correct.mean())] if correct.size else [], usable, notes)
