"""The `mislabel` check: cleanlab on out-of-fold probabilities that weigh all the evidence a listing carries.

Members (core.audit.evidence) each give out-of-fold class probabilities from one kind of evidence:
"photo" (a frozen network on the whole photo), "crop" (the same network on the object's crop),
"pixels" (weight-free shape and colour features), "title" (TF-IDF of the listing title) and
"price" (how the price fits each class). The folds are made once per audit, grouped by duplicate
group and stratified by label, and shared by every member. The combiner fits how much each member
counts on this dataset, with its own outer folds, so the combined probabilities are out of fold too.
Option `rounds` (default 1): each further round refits every member and the combiner without the
previous round's suspects, so label errors do not teach the models their wrong labels (measured in
docs/mislabel.md: on listing photos a second round flags more without finding more).

Where the photo evidence comes from is pluggable (option `source`):
- "embeddings" (default): the photo, crop and pixels members above; backbone "pixels" uses the
  weight-free member alone and needs no weights file.
- "finetune": K networks fine-tuned on the images (core.models.fit); `pretrained` false trains them
  from scratch.
- "run": a finished training run's out-of-fold probabilities: `pred_probs`, an (N, K) array in
  `context.samples` order or a DataFrame indexed by sample id with the classes as columns, or
  `run_dir`, the run's folder.
Title and price members join every source. A title is written by the seller who chose the label, so
it may count against a label but never for it (core.audit.evidence.combine.accuse_only). cleanlab then
scores with RANKING_METHOD and flags as many as the evidence independent of the label can back:
cleanlab's own estimate where the noise rate read among the surest listings agrees, else that
calibrated count (core.audit.evidence.count); when the evidence is weak the flags are a ranking with a
review budget and a warning says so (`flag_issues`; measured in docs/mislabel.md), and the ranking goes on
past the budget to cleanlab's own count: those listings are kind "maybe_mislabel" in the queue (column
`past_budget`), not flags, so a reviewer whose decisions keep confirming the flags can go on.
Options come from the check's keyword arguments, else from `context.params`, else the defaults of
`MislabelOptions`. Every sample is judged under its current label (corrections respected); deleted
samples are not in the context and unreadable ones cannot be embedded.
"""
from __future__ import annotations

from typing import Any, Optional
import numpy as np
import pandas as pd
from cleanlab.count import compute_confident_joint
from core.audit.checks.base import PAST_BUDGET_MISLABEL, AuditContext, Check, CheckResult, register
from core.audit.evidence.count import IssueCount
from core.audit.evidence.gather import (RANKING_METHOD, OPTION_NAMES, resolve_options, Evidence, flag_issues,
                                        gather_evidence, past_budget)

#: cleanlab's issue filter, chosen by measurement on several datasets (docs/mislabel.md): flag as many as the
#: evidence can back (core.audit.evidence.count), ranked by core.audit.evidence.gather.RANKING_METHOD.
FILTER_BY = "low_self_confidence"


@register
class MislabelCheck(Check):
    """Flags samples whose current label cleanlab finds unlikely under the combined out-of-fold evidence."""

    name = "mislabel"

    def __init__(self, **options: Any) -> None:
        unknown = sorted(set(options) - OPTION_NAMES)
        if unknown:
            raise ValueError(f"unknown mislabel options: {', '.join(unknown)}; options are: {', '.join(sorted(OPTION_NAMES))}")
        self.overrides = options

    def find_issues(self, context: AuditContext) -> CheckResult:
        options = resolve_options(context.params, self.overrides)
        samples, labels = audited_samples(context)
        skipped = len(context.samples) - len(samples)
        if not judgeable(labels):
            table = _unjudged_table(samples, "not judged: needs two classes with two readable images each")
            return self.result(table, {"flagged": 0, "audited": 0, "skipped_unreadable": skipped,
                                       "source": options.source, "note": "needs two classes with two readable images each"})
        evidence = gather_evidence(context, samples, labels, options)
        return self._judge(samples, labels, evidence, context.classes, skipped, options.min_class_size)

    def _judge(self, samples: pd.DataFrame, labels: np.ndarray, evidence: Evidence, classes: list[str],
               skipped: int, min_class_size: int) -> CheckResult:
        pred_probs = evidence.combination.pred_probs
        count_probs = evidence.combination.count_probs
        small = too_small_classes(labels, len(classes), min_class_size)
        assessed = evidence.folds.assessed & ~small[labels]
        warnings = [small_classes_warning(labels, small, classes, min_class_size)] if small[labels].any() else []
        warnings += [warning for warning in [evidence.folds.fewer_than_asked()] if warning]
        issues, past = np.zeros(len(labels), bool), np.zeros(len(labels), bool)
        scores = np.ones(len(labels))
        count, noise_per_class = None, {}
        if assessed.sum() and len(np.unique(labels[assessed])) >= 2:
            issues[assessed], scores[assessed], count = flag_issues(
                labels[assessed], pred_probs[assessed], count_probs[assessed])
            past[assessed] = past_budget(scores[assessed], count)
            noise_per_class = estimated_noise_per_class(labels[assessed], count_probs[assessed], classes,
                                                        total=count.estimated)
            if count.weak:
                warnings.append(weak_evidence_warning(count))
        estimated = count.estimated if count is not None else 0
        table = evidence_table(samples.index, labels, pred_probs, issues, scores, assessed, classes, past=past)
        table["evidence"] = [dict(row, members=votes) for row, votes in
                             zip(table["evidence"], member_votes(evidence, labels, classes))]
        flagged_per_class = pd.Series(labels[issues]).map(dict(enumerate(classes))).value_counts()
        everyone = np.ones(len(labels), bool)
        summary = {
            "flagged": int(issues.sum()),
            "audited": int(len(labels)),
            "assessed": int(assessed.sum()),
            "skipped_unreadable": int(skipped),
            "per_class": {name: int(flagged_per_class.get(name, 0)) for name in classes},
            "estimated_issues": estimated,
            "estimated_noise_rate": round(estimated / max(int(assessed.sum()), 1), 4),
            "estimated_interval": [count.low, count.high] if count is not None else None,
            "count": count.as_dict() if count is not None else None,
            "weak_evidence": bool(count is not None and count.weak),
            "review_budget": estimated,
            "past_budget": int(past.sum()),
            "score_quantiles": score_quantiles(scores[assessed]),
            "estimated_noise_per_class": noise_per_class,
            "fold_accuracy": _rounded(float((pred_probs[assessed].argmax(1) == labels[assessed]).mean())
                                      if assessed.any() else float("nan")),
            "folds": evidence.folds.count,
            "filter_by": FILTER_BY,
            "ranking": RANKING_METHOD,
            "notes": evidence.folds.notes,
            "warnings": warnings,
            "too_small_classes": [classes[k] for k in np.flatnonzero(small)],
            "members": {
                output.name: {"weight": evidence.combination.weights[output.name],
                              "accuracy": _rounded(output.accuracy(labels, everyone)),
                              "rows": int(output.informative.sum()), **output.details}
                for output in evidence.outputs
            },
            "unavailable_members": evidence.unavailable,
            "price_evidence": "price" in evidence.combination.weights,
            "left_out_of_last_fit": evidence.left_out_of_last_fit,
            **evidence.details,
        }
        return self.result(table, summary)


def _rounded(value: float) -> Optional[float]:
    return None if np.isnan(value) else round(value, 4)


def audited_samples(context: AuditContext) -> tuple[pd.DataFrame, np.ndarray]:
    """The samples the check can judge (readable, hashed) and their current labels as class indices."""
    samples = context.samples[context.samples["readable"].astype(bool) & context.samples["content_hash"].notna()]
    return samples, context.label_indices()[context.samples.index.get_indexer(samples.index)]


def too_small_classes(labels: np.ndarray, n_classes: int, min_class_size: int) -> np.ndarray:
    """Which classes have at least one but fewer than `min_class_size` listings in `labels` (N,): bool (K,)."""
    counts = np.bincount(labels, minlength=n_classes)
    return (counts > 0) & (counts < min_class_size)


def small_classes_warning(labels: np.ndarray, small: np.ndarray, classes: list[str], min_class_size: int) -> str:
    """One line saying which classes were too small to judge and how many listings that leaves unjudged."""
    names = [classes[k] for k in np.flatnonzero(small)]
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    return (f"{len(names)} of {len(classes)} classes have fewer than {min_class_size} readable listings "
            f"({shown}): their {int(small[labels].sum())} listings were not judged; add listings or merge classes")


def judgeable(labels: np.ndarray) -> bool:
    """Whether cross-validation can run: two classes with two samples each."""
    return len(labels) > 0 and (np.bincount(labels) >= 2).sum() >= 2


#: Quantiles of the judged listings' scores kept in the summary, for the queue's precision (core.audit.evidence.precision).
SCORE_QUANTILES = 201


def score_quantiles(scores: np.ndarray) -> list[float]:
    """SCORE_QUANTILES evenly spaced quantiles of the judged listings' scores (N,), rounded to 1e-6: enough
    to stand for every listing in the precision estimate's anchor without storing N scores. Empty for none."""
    if len(scores) == 0:
        return []
    return [round(float(value), 6) for value in np.quantile(scores, np.linspace(0, 1, SCORE_QUANTILES))]


def weak_evidence_warning(count: IssueCount) -> str:
    """The one line a reviewer reads when the evidence cannot back a count: what to do, and why."""
    return (f"The evidence here is weak: review the first {count.estimated} flags as a ranking, not a count (label "
            f"errors estimated at {count.low}-{count.high}): {'; '.join(count.reasons)}. "
            + (f"{count.ranked - count.estimated} more are ranked past them ({PAST_BUDGET_MISLABEL} in the queue), to "
               "review while your decisions keep confirming them. " if count.ranked > count.estimated else "")
            + "More listings per class make it stronger (networks fine-tuned on such photos did not, where measured: "
            "docs/mislabel.md)")


def estimated_noise_per_class(labels: np.ndarray, pred_probs: np.ndarray, classes: list[str], *,
                              total: Optional[float] = None) -> dict[str, float]:
    """The share of each class's samples whose label is wrong, by class name: cleanlab's (the calibrated
    confident joint's off-diagonal mass of the class's row), scaled so that the shares add up to `total`
    listings over all classes when given (the audit's count: where the evidence is weak it is below cleanlab's,
    and the classes must not add up to more than the count the page shows beside them)."""
    joint = compute_confident_joint(labels, pred_probs, calibrate=True)
    totals = joint.sum(axis=1)
    rates = 1.0 - np.diag(joint) / np.maximum(totals, 1e-12)
    sizes = np.bincount(labels, minlength=len(classes))
    wrong = float((rates * sizes).sum())
    if total is not None and wrong > 0:
        rates = np.clip(rates * total / wrong, 0.0, 1.0)
    return {name: round(float(rate), 4) if totals[k] > 0 else 0.0 for k, (name, rate) in enumerate(zip(classes, rates))}


def _unjudged_table(samples: pd.DataFrame, reason: str) -> pd.DataFrame:
    return pd.DataFrame({"is_mislabel_issue": False, "mislabel_score": 1.0, "suggested_label": None,
                         "reason": reason, "evidence": [{} for _ in range(len(samples))]}, index=samples.index)


def _top(probs: np.ndarray, classes: list[str], count: int = 3) -> list[dict[str, Any]]:
    order = np.argsort(-probs, kind="stable")[:count]
    return [{"label": classes[k], "probability": round(float(probs[k]), 4)} for k in order]


def member_votes(evidence: Evidence, labels: np.ndarray, classes: list[str]) -> list[list[dict[str, Any]]]:
    """Per row, each member's own vote where it had evidence: its top class and probability, the
    probability it gives the current label, its weight, and what a reviewer can check (title words, price)."""
    votes: list[list[dict[str, Any]]] = [[] for _ in range(len(labels))]
    for output in evidence.outputs:
        top = output.pred_probs.argmax(1)
        weight = evidence.combination.weights[output.name]
        for row in np.flatnonzero(output.informative):
            vote = {"member": output.name, "label": evidence.labels_of_members[output.name],
                    "top": classes[top[row]], "probability": round(float(output.pred_probs[row, top[row]]), 4),
                    "given_probability": round(float(output.pred_probs[row, labels[row]]), 4), "weight": weight}
            if output.explanations and output.explanations[row]:
                vote.update(output.explanations[row])
            votes[row].append(vote)
    return votes


def evidence_table(index: pd.Index, labels: np.ndarray, pred_probs: np.ndarray, issues: np.ndarray,
                   scores: np.ndarray, assessed: np.ndarray, classes: list[str], *,
                   past: Optional[np.ndarray] = None) -> pd.DataFrame:
    """The check's per-sample table: is_mislabel_issue (`issues`, bool (N,)), past_budget (`past`, bool (N,): the
    ranking past the review budget; none when omitted), mislabel_score and the evidence columns.

    The suggested label of a flagged or past-budget sample is its most probable class other than the given one.
    """
    past = np.zeros(len(labels), bool) if past is None else past
    suggest = issues | past
    others = pred_probs.copy()
    others[np.arange(len(labels)), labels] = -1.0
    suggested = others.argmax(axis=1)
    rows = []
    for row, (given, best) in enumerate(zip(labels, suggested)):
        probs = pred_probs[row]
        if not assessed[row]:
            reason = f"not judged: too few readable listings of '{classes[given]}'"
        else:
            reason = (f"the evidence gives '{classes[given]}' {probs[given]:.0%} and "
                      f"'{classes[best]}' {probs[best]:.0%}")
        rows.append({
            "suggested_label": classes[best] if suggest[row] else None,
            "reason": reason,
            "evidence": {
                "given_label": classes[given], "given_probability": round(float(probs[given]), 4),
                "suggested_label": classes[best], "suggested_probability": round(float(probs[best]), 4),
                "top3": _top(probs, classes),
            },
        })
    table = pd.DataFrame(rows, index=index)
    table.insert(0, "mislabel_score", np.clip(scores, 0.0, 1.0))
    table.insert(0, "past_budget", past)
    table.insert(0, "is_mislabel_issue", issues)
    return table
