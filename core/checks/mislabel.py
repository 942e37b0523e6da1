"""Mislabel check: cleanlab on out-of-fold predicted probabilities.

Where the probabilities come from is pluggable (`params["source"]`):
- "embeddings" (default): frozen ImageNet backbone embeddings (cached by content
  hash), then a cross-validated classifier on them (core.oof);
- "run": out-of-fold probabilities of a finished K-fold training run, passed as
  `params["pred_probs"]`, shape (N, K), rows in `context.samples` order.
Two rounds: the second round refits each fold without the first round's
suspects, so label errors do not teach the classifier their wrong labels.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from cleanlab.filter import find_label_issues
from cleanlab.rank import get_label_quality_scores

from core.checks.base import AuditContext, Check, CheckResult, register
from core.features import DEFAULT_BACKBONE, DEFAULT_IMAGE_SIZE, embed_cached
from core.oof import DEFAULT_FOLDS, out_of_fold_probabilities

#: cleanlab's issue filter and ranking; see docs/checks.md for why.
FILTER_BY = "prune_by_noise_rate"
RANKING_METHOD = "self_confidence"
ROUNDS = 2
CLASSIFIER = "logreg"


def _top3(probs: np.ndarray, classes: list[str]) -> list[list[Any]]:
    order = np.argsort(-probs)[:3]
    return [[classes[k], round(float(probs[k]), 4)] for k in order]


@register
class MislabelCheck(Check):
    """Flags samples whose given label cleanlab finds unlikely under out-of-fold probabilities."""

    name = "mislabel"

    def find_issues(self, context: AuditContext) -> CheckResult:
        samples = context.samples[context.samples["readable"]]
        labels = context.label_indices()[context.samples["readable"].to_numpy()]
        if len(samples) == 0 or len(set(labels)) < 2:
            return self.result(self._empty(samples), {"flagged": 0, "note": "needs two classes with readable images"})
        pred_probs, details = self._pred_probs(context, samples, labels)
        issues_mask = find_label_issues(labels, pred_probs, filter_by=FILTER_BY)
        scores = get_label_quality_scores(labels, pred_probs, method=RANKING_METHOD)
        table = self._table(samples, labels, pred_probs, issues_mask, scores, context.classes)
        summary = {
            "flagged": int(issues_mask.sum()),
            "estimated_noise_rate": round(float(issues_mask.mean()), 4),
            "per_class": {k: int(v) for k, v in table[table["is_mislabel_issue"]]["given_label"].value_counts().items()},
            "filter_by": FILTER_BY, "ranking": RANKING_METHOD, **details,
        }
        return self.result(table.drop(columns=["given_label"]), summary)

    def _empty(self, samples: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({"is_mislabel_issue": False, "mislabel_score": 1.0}, index=samples.index)

    def _pred_probs(self, context: AuditContext, samples: pd.DataFrame, labels: np.ndarray):
        params = context.params
        if params.get("source") == "run":
            pred_probs = np.asarray(params["pred_probs"], dtype=float)[context.samples["readable"].to_numpy()]
            return pred_probs, {"source": "run"}
        backbone = params.get("backbone") or DEFAULT_BACKBONE
        folds = int(params.get("folds") or DEFAULT_FOLDS)
        paths = [str(context.root / p) for p in samples["path"]]
        embeddings = embed_cached(
            paths, list(samples["content_hash"]), store=context.embeddings, backbone=backbone,
            image_size=int(params.get("image_size") or DEFAULT_IMAGE_SIZE),
            progress=lambda f, m: context.progress(0.8 * f, f"embedding images: {m}"),
        )
        classifier = params.get("classifier") or CLASSIFIER
        exclude = np.zeros(len(labels), bool)
        for round_index in range(ROUNDS):
            oof = out_of_fold_probabilities(
                embeddings.vectors, labels, n_classes=len(context.classes), folds=folds,
                classifier=classifier, seed=int(params.get("seed", 0)), exclude_from_training=exclude,
                progress=lambda f, m: context.progress(0.8 + 0.2 * (round_index + f) / ROUNDS, f"cross-validation {m}"),
            )
            exclude = find_label_issues(labels, oof.pred_probs, filter_by=FILTER_BY)
        details = {
            "source": "embeddings", "backbone": embeddings.key, "classifier": classifier, "folds": oof.folds,
            "fold_accuracy": round(oof.accuracy, 4), "embedded": embeddings.computed,
            "embeddings_from_cache": embeddings.reused, "notes": oof.notes,
        }
        return oof.pred_probs, details

    def _table(self, samples, labels, pred_probs, issues_mask, scores, classes) -> pd.DataFrame:
        rows = []
        for given, probs, is_issue in zip(labels, pred_probs, issues_mask):
            others = probs.copy()
            others[given] = -1.0
            suggested = int(np.argmax(others))
            reason = (
                f"model gives '{classes[given]}' {probs[given]:.0%}; "
                f"'{classes[suggested]}' {probs[suggested]:.0%}"
            )
            rows.append({
                "given_label": classes[given],
                "suggested_label": classes[suggested] if is_issue else None,
                "reason": reason,
                "evidence": {
                    "given_label": classes[given], "given_probability": round(float(probs[given]), 4),
                    "suggested_label": classes[suggested],
                    "suggested_probability": round(float(probs[suggested]), 4),
                    "top3": _top3(probs, classes),
                },
            })
        table = pd.DataFrame(rows, index=samples.index)
        table.insert(0, "mislabel_score", np.clip(scores, 0.0, 1.0))
        table.insert(0, "is_mislabel_issue", np.asarray(issues_mask, bool))
        return table
