"""The combiner: weighs the members' out-of-fold evidence on this dataset (stacking on log-probabilities).

Combined logits of a row: sum over members m of w_m * log p_m(k) + b_k, softmax over classes k.
The weights w_m >= 0 and class biases b_k are fitted by maximum likelihood of the given labels on
the members' out-of-fold outputs: a member that does not help gets a weight near zero, a member
whose probabilities are over- or under-confident is scaled. Uniform rows (a member without
evidence for a row) add the same to every class and so change nothing. The combiner has its own
outer loop over the audit's folds: the row's fold is left out of the fit that combines it, so the
combined probabilities are out of fold too. (Reference: scikit-learn's StackingClassifier with
cross_val_predict(method="predict_proba"); here the final estimator is a log-linear pool with
one weight per member, which a few hundred noisy labels can fit.)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
from scipy.optimize import minimize

from core.audit.evidence.base import MemberOutput
from core.audit.evidence.folds import AuditFolds

#: Probabilities are floored before the log so that one member's "impossible" cannot veto the others.
PROB_FLOOR = 1e-4
#: Upper bound of a member's weight (a weight of 1 takes the member's probabilities as they are).
MAX_WEIGHT = 10.0
#: L2 penalty on the class biases (per row of the fit): keeps a biased fold from inventing a prior.
BIAS_PENALTY = 1e-3


@dataclass
class Combination:
    """pred_probs: the combined out-of-fold probabilities, float (N, K); weights: each member's weight
    fitted on all training rows (what the audit reports), by member name; biases: the class biases of
    that fit, float (K,); fold_weights: the weights of each outer fold's fit, (folds, M);
    independent_pred_probs: the combination of the members written independently of the label
    (see `accuse_only`), float (N, K), or None when there are no such members or no others."""

    pred_probs: np.ndarray
    weights: dict[str, float]
    biases: np.ndarray
    fold_weights: np.ndarray
    independent_pred_probs: Optional[np.ndarray] = None

    @property
    def count_probs(self) -> np.ndarray:
        """The probabilities to estimate the number of label issues from: the independent evidence's
        where there is some, else the combination's."""
        return self.pred_probs if self.independent_pred_probs is None else self.independent_pred_probs


def log_evidence(outputs: Sequence[MemberOutput]) -> np.ndarray:
    """Floored log-probabilities of the members, centred per row: float (N, M, K); a uniform row is 0."""
    logs = np.log(np.clip(np.stack([o.pred_probs for o in outputs], axis=1), PROB_FLOOR, None))
    return logs - logs.mean(axis=2, keepdims=True)


def pooled(logs: np.ndarray, weights: np.ndarray, biases: np.ndarray) -> np.ndarray:
    """softmax over k of sum_m weights[m] * logs[:, m, k] + biases[k]: float (N, K)."""
    logits = np.einsum("nmk,m->nk", logs, weights) + biases
    logits -= logits.max(axis=1, keepdims=True)
    probs = np.exp(logits)
    return probs / probs.sum(axis=1, keepdims=True)


def fit_pool(logs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weights (M,) in [0, MAX_WEIGHT] and biases (K,) maximising the likelihood of `labels` (int (n,))
    under `pooled(logs, ...)`; logs: (n, M, K)."""
    n, m, k = logs.shape
    target = np.zeros((n, k))
    target[np.arange(n), labels] = 1.0

    def loss_and_gradient(params: np.ndarray) -> tuple[float, np.ndarray]:
        weights, biases = params[:m], params[m:]
        probs = pooled(logs, weights, biases)
        loss = -np.mean(np.log(np.maximum(probs[np.arange(n), labels], 1e-300))) + BIAS_PENALTY * biases @ biases
        residual = (probs - target) / n
        gradient = np.concatenate([np.einsum("nk,nmk->m", residual, logs),
                                   residual.sum(axis=0) + 2 * BIAS_PENALTY * biases])
        return float(loss), gradient

    # The problem is convex; starting from zero leaves a member without evidence in these rows at zero.
    start = np.zeros(m + k)
    bounds = [(0.0, MAX_WEIGHT)] * m + [(None, None)] * k
    result = minimize(loss_and_gradient, start, jac=True, method="L-BFGS-B", bounds=bounds)
    return result.x[:m], result.x[m:]


def accuse_only(pred_probs: np.ndarray, independent: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per row, `pred_probs` (N, K) where it gives the given label no more than the independent
    evidence does, else the independent evidence's row: evidence written with the label can count
    against it, never for it."""
    rows = np.arange(len(labels))
    vouches = pred_probs[rows, labels] > independent[rows, labels]
    return np.where(vouches[:, None], independent, pred_probs)


def combine(outputs: Sequence[MemberOutput], labels: np.ndarray, folds: AuditFolds, *,
            exclude: Optional[np.ndarray] = None, written_with_label: Sequence[str] = ()) -> Combination:
    """Out-of-fold combination of the members' outputs (all (N, K), same rows as `labels`).

    Each outer fold fits the pool on the other folds' rows (assessed, not in `exclude`) and
    combines its own rows; the reported weights come from one fit on all those rows.

    written_with_label: names of members whose evidence the person who chose the label also wrote
    (a listing's title). Such evidence is correlated with the label's errors: a seller who files a
    sledge under clothing tends to title it in clothing's words, so a fit on the given labels rewards
    it for agreeing with exactly the wrong labels. Their evidence may lower the given label's
    probability but never raise it above what the other members say (`accuse_only`).
    """
    combined = _pool_out_of_fold(outputs, labels, folds, exclude)
    independent = [o for o in outputs if o.name not in written_with_label]
    if 0 < len(independent) < len(outputs):
        alone = _pool_out_of_fold(independent, labels, folds, exclude).pred_probs
        combined.independent_pred_probs = alone
        combined.pred_probs = accuse_only(combined.pred_probs, alone, labels)
    return combined


def _pool_out_of_fold(outputs: Sequence[MemberOutput], labels: np.ndarray, folds: AuditFolds,
                      exclude: Optional[np.ndarray]) -> Combination:
    logs = log_evidence(outputs)
    trusted = folds.assessed & (np.ones(len(labels), bool) if exclude is None else ~exclude)
    pred_probs = np.zeros((len(labels), logs.shape[2]))
    fold_weights = []
    for train, held_out in folds.splits():
        rows = train[trusted[train]]
        weights, biases = fit_pool(logs[rows], labels[rows])
        pred_probs[held_out] = pooled(logs[held_out], weights, biases)
        fold_weights.append(weights)
    weights, biases = fit_pool(logs[trusted], labels[trusted])
    return Combination(pred_probs, {o.name: round(float(w), 4) for o, w in zip(outputs, weights)}, biases,
                       np.array(fold_weights))
