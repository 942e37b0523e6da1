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
- "finetune": K networks fine-tuned on the images (core.training); `pretrained` false trains them
  from scratch.
- "run": a finished training run's out-of-fold probabilities: `pred_probs`, an (N, K) array in
  `context.samples` order or a DataFrame indexed by sample id with the classes as columns, or
  `run_dir`, the run's folder.
Title and price members join every source. A title is written by the seller who chose the label, so
it may count against a label but never for it (core.audit.evidence.combine.accuse_only). cleanlab then
scores with RANKING_METHOD and flags as many as the evidence independent of the label can back:
cleanlab's own estimate where the noise rate read among the surest listings agrees, else that
calibrated count (core.audit.evidence.count); when the evidence is weak the flags are a ranking with a
review budget and a warning says so (`flag_issues`; measured in docs/mislabel.md).
Options come from the check's keyword arguments, else from `context.params`, else the defaults of
`MislabelOptions`. Every sample is judged under its current label (corrections respected); deleted
samples are not in the context and unreadable ones cannot be embedded.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd
from cleanlab.count import compute_confident_joint
from cleanlab.rank import get_label_quality_scores

from core.audit.checks.base import AuditContext, Check, CheckResult, register
from core.audit.evidence.base import MEMBER_MODULES, EvidenceInput, Member, MemberOutput, get_member
from core.audit.evidence.combine import Combination, combine
from core.audit.evidence.count import IssueCount, count_label_issues
from core.audit.evidence.folds import AuditFolds, audit_duplicate_groups, make_folds
from core.audit.oof import DEFAULT_FOLDS

log = logging.getLogger(__name__)

SOURCES = ("embeddings", "finetune", "run")
#: cleanlab's issue filter and ranking method, chosen by measurement on several datasets (docs/mislabel.md):
#: flag as many as the evidence can back (core.audit.evidence.count), the least self-confident first (`flag_issues`).
FILTER_BY = "low_self_confidence"
RANKING_METHOD = "self_confidence"
#: The members of the embeddings source that look at the photo; the finetune and run sources replace them.
PHOTO_MEMBERS = ("photo", "crop", "pixels")
#: The members used unless the audit names its own (docs/mislabel.md: on listing photos the weight-free
#: "pixels" member gets a weight near zero and costs as much as "crop"); "pixels" replaces the network
#: members when the backbone is "pixels" (no weights file).
DEFAULT_MEMBERS = ("photo", "crop", "title", "price")
WEIGHT_FREE_MEMBERS = ("pixels", "title", "price")
#: A class with fewer readable listings is not judged: its out-of-fold model has seen at most three of its
#: examples, and on 200 classes of two photos each the check flagged 398 of 400 listings.
MIN_CLASS_SIZE = 5
#: Relative share of the progress bar of each member's first round (embedding dominates).
PROGRESS_WEIGHTS = {"photo": 6.0, "crop": 3.0, "pixels": 3.0, "title": 1.0, "price": 0.2}


@dataclass(frozen=True)
class MislabelOptions:
    """The check's options. members: names of the evidence members to use (None: `default_members`);
    image_size: side of the object crop (crop member) and of the finetune source's images;
    photo_size: side of the whole photo (photo member); rounds: fits (2: refit without the suspects);
    use_price: the price member; min_class_size: classes with fewer readable listings are not judged
    (their listings still teach the other folds); executor: where photos are embedded ("local" or "ray",
    core.executors); pretrained, epochs, cache_dir: of the finetune source; pred_probs, run_dir: of the
    run source."""

    source: str = "embeddings"
    backbone: str = "mobilenet_v2"
    members: Optional[tuple[str, ...]] = None
    folds: int = DEFAULT_FOLDS
    image_size: int = 112
    photo_size: int = 160
    rounds: int = 1
    use_price: bool = True
    min_class_size: int = MIN_CLASS_SIZE
    seed: int = 0
    device: str = "auto"
    executor: str = "local"
    pretrained: bool = True
    epochs: int = 3
    cache_dir: str = str(Path("data") / "cache" / "images")
    pred_probs: Any = None
    run_dir: Optional[str] = None

    def validate(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"unknown mislabel source {self.source!r}; sources are: {', '.join(SOURCES)}")
        if self.folds < 2:
            raise ValueError(f"folds must be at least 2, got {self.folds}")
        if self.rounds < 1:
            raise ValueError(f"rounds must be at least 1, got {self.rounds}")
        if self.source == "run" and self.pred_probs is None and not self.run_dir:
            raise ValueError("the run source needs pred_probs or run_dir")
        unknown = [name for name in self.members or () if name not in MEMBER_MODULES]
        if unknown:
            raise ValueError(f"unknown evidence member {unknown[0]!r}; members are: {', '.join(MEMBER_MODULES)}")


OPTION_NAMES = frozenset(f.name for f in fields(MislabelOptions))


def resolve_options(params: dict[str, Any], overrides: dict[str, Any]) -> MislabelOptions:
    """Defaults, then the audit's params (known names, not None), then the check's own keyword options."""
    chosen = {k: v for k, v in params.items() if k in OPTION_NAMES and v is not None}
    chosen.update({k: v for k, v in overrides.items() if v is not None})
    if isinstance(chosen.get("members"), (list, str)):
        members = chosen["members"]
        chosen["members"] = tuple(m.strip() for m in (members.split(",") if isinstance(members, str) else members)
                                  if m.strip())
    options = replace(MislabelOptions(), **chosen)
    options.validate()
    return options


@dataclass
class Evidence:
    """What the members and the combiner made for one audit: the members' outputs (last round), the
    combination, the folds, the members left out and why, and facts about the source."""

    outputs: list[MemberOutput]
    labels_of_members: dict[str, str]
    combination: Combination
    folds: AuditFolds
    unavailable: dict[str, str]
    left_out_of_last_fit: int
    details: dict[str, Any]


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
        issues = np.zeros(len(labels), bool)
        scores = np.ones(len(labels))
        count, noise_per_class = None, {}
        if assessed.sum() and len(np.unique(labels[assessed])) >= 2:
            issues[assessed], scores[assessed], count = flag_issues(
                labels[assessed], pred_probs[assessed], count_probs[assessed])
            noise_per_class = estimated_noise_per_class(labels[assessed], count_probs[assessed], classes)
            if count.weak:
                warnings.append(weak_evidence_warning(count))
        estimated = count.estimated if count is not None else 0
        table = evidence_table(samples.index, labels, pred_probs, issues, scores, assessed, classes)
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


def flag_issues(labels: np.ndarray, pred_probs: np.ndarray,
                count_probs: np.ndarray) -> tuple[np.ndarray, np.ndarray, IssueCount]:
    """cleanlab's `low_self_confidence` rule: the n samples with the lowest self-confidence in `pred_probs`
    (N, K) are issues, n = the number of label issues under `count_probs` (N, K) that the evidence can
    back (core.audit.evidence.count: cleanlab's count where the calibrated interval holds it).
    Returns (issues bool (N,), scores in [0, 1] (N,) lower = worse, the count)."""
    scores = get_label_quality_scores(labels, pred_probs, method=RANKING_METHOD)
    count = count_label_issues(labels, count_probs)
    issues = np.zeros(len(labels), bool)
    issues[np.argsort(scores, kind="stable")[:count.estimated]] = True
    return issues, scores, count


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
            f"errors estimated at {count.low}-{count.high}): {'; '.join(count.reasons)}. More listings "
            f"per class make it stronger (networks fine-tuned on such photos did not, where measured: "
            f"docs/mislabel.md)")


def estimated_noise_per_class(labels: np.ndarray, pred_probs: np.ndarray, classes: list[str]) -> dict[str, float]:
    """cleanlab's estimate of the share of each class's samples whose label is wrong (from the calibrated
    confident joint: off-diagonal mass of the class's row), by class name."""
    joint = compute_confident_joint(labels, pred_probs, calibrate=True)
    totals = joint.sum(axis=1)
    rates = 1.0 - np.diag(joint) / np.maximum(totals, 1e-12)
    return {name: round(float(rate), 4) if totals[k] > 0 else 0.0 for k, (name, rate) in enumerate(zip(classes, rates))}


# --- gathering the evidence -----------------------------------------------------------------------------


class FixedMember(Member):
    """Out-of-fold probabilities made elsewhere (a fine-tuning job, a training run), as a member."""

    label = "network"

    def __init__(self, name: str, pred_probs: np.ndarray, details: dict[str, Any]) -> None:
        self.name = name
        self.pred_probs = pred_probs
        self.details = details

    def unavailable_reason(self, data: EvidenceInput) -> Optional[str]:
        return None

    def out_of_fold(self, data: EvidenceInput, folds: AuditFolds, *,
                    exclude: Optional[np.ndarray] = None) -> MemberOutput:
        return MemberOutput(self.name, self.pred_probs, np.ones(len(self.pred_probs), bool), details=self.details)


def audit_folds(context: AuditContext, samples: pd.DataFrame, labels: np.ndarray, options: MislabelOptions) -> AuditFolds:
    """The audit's folds: grouped by the duplicate check's groups when it ran in this audit."""
    groups = audit_duplicate_groups(samples, context.earlier)
    return make_folds(labels, groups, n_classes=len(context.classes), folds=options.folds, seed=options.seed)


def default_members(backbone: str) -> tuple[str, ...]:
    """The members an audit uses when it names none: DEFAULT_MEMBERS, or WEIGHT_FREE_MEMBERS for the
    weight-free backbone."""
    return WEIGHT_FREE_MEMBERS if backbone == "pixels" else DEFAULT_MEMBERS


def choose_members(data: EvidenceInput, options: MislabelOptions,
                   photo_evidence: Optional[FixedMember]) -> tuple[list[Member], dict[str, str]]:
    """The members that run, in MEMBER_MODULES order, and the reason each other member does not."""
    wanted = options.members or default_members(options.backbone)
    chosen: list[Member] = []
    unavailable: dict[str, str] = {}
    if photo_evidence is not None:
        chosen.append(photo_evidence)
    for name in MEMBER_MODULES:
        if name not in wanted:
            unavailable[name] = "not chosen"
            continue
        if photo_evidence is not None and name in PHOTO_MEMBERS:
            unavailable[name] = f"photo evidence from the {options.source} source"
            continue
        member = get_member(name)
        reason = member.unavailable_reason(data)
        if reason is None:
            chosen.append(member)
        else:
            unavailable[name] = reason
    if not chosen:
        raise ValueError(f"no evidence member can run: {'; '.join(f'{k}: {v}' for k, v in unavailable.items())}")
    return chosen, unavailable


def gather_evidence(context: AuditContext, samples: pd.DataFrame, labels: np.ndarray,
                    options: MislabelOptions) -> Evidence:
    """Every member's out-of-fold output and their combination, in `options.rounds` rounds."""
    folds = audit_folds(context, samples, labels, options)
    data = EvidenceInput(samples, labels, context.classes, context.root, options, context.embeddings)
    photo_evidence, details = _photo_source(context, samples, labels, options)
    members, unavailable = choose_members(data, options, photo_evidence)
    steps = [(r, m) for r in range(options.rounds) for m in members]
    weights = np.array([PROGRESS_WEIGHTS.get(m.name, 1.0) * (1 if r == 0 else 0.3) for r, m in steps])
    starts = np.concatenate([[0.0], np.cumsum(weights)[:-1]]) / weights.sum()
    exclude = np.zeros(len(labels), bool)
    seconds: dict[str, float] = {}
    for round_index in range(options.rounds):
        outputs = []
        for member in members:
            position = steps.index((round_index, member))
            start, share = starts[position], weights[position] / weights.sum()
            progress = (lambda f, m, s=start, w=share, name=member.name, r=round_index:
                        context.progress(s + w * f, f"round {r + 1}, {name}: {m}"))
            progress(0.0, "starting")
            began = time.perf_counter()
            output = member.out_of_fold(dataclasses.replace(data, progress=progress), folds, exclude=exclude)
            if round_index + 1 == options.rounds:
                member.release()  # at 100,000 photos a view's embeddings are 0.9 GB
            seconds[member.name] = seconds.get(member.name, 0.0) + time.perf_counter() - began
            output.details["seconds"] = round(seconds[member.name], 2)
            outputs.append(output)
        combination = combine(outputs, labels, folds, exclude=exclude,
                              written_with_label=[m.name for m in members if m.written_with_label])
        if round_index + 1 < options.rounds:
            exclude = np.zeros(len(labels), bool)
            assessed = folds.assessed
            exclude[assessed] = flag_issues(labels[assessed], combination.pred_probs[assessed],
                                            combination.count_probs[assessed])[0]
    return Evidence(outputs, {m.name: m.label for m in members}, combination, folds, unavailable,
                    int(exclude.sum()), {"source": options.source, "rounds": options.rounds, **details})


def _photo_source(context: AuditContext, samples: pd.DataFrame, labels: np.ndarray,
                  options: MislabelOptions) -> tuple[Optional[FixedMember], dict[str, Any]]:
    """The photo evidence of the finetune and run sources as a member; None for the embeddings source."""
    if options.source == "embeddings":
        return None, {"backbone": options.backbone}
    pred_probs, details = SOURCE_FUNCTIONS[options.source](context, samples, labels, options)
    return FixedMember(options.source, pred_probs, details), details


# --- per-sample table -----------------------------------------------------------------------------------


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
                   scores: np.ndarray, assessed: np.ndarray, classes: list[str]) -> pd.DataFrame:
    """The check's per-sample table: is_mislabel_issue, mislabel_score and the evidence columns.

    The suggested label of a flagged sample is its most probable class other than the given one.
    """
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
            "suggested_label": classes[best] if issues[row] else None,
            "reason": reason,
            "evidence": {
                "given_label": classes[given], "given_probability": round(float(probs[given]), 4),
                "suggested_label": classes[best], "suggested_probability": round(float(probs[best]), 4),
                "top3": _top(probs, classes),
            },
        })
    table = pd.DataFrame(rows, index=index)
    table.insert(0, "mislabel_score", np.clip(scores, 0.0, 1.0))
    table.insert(0, "is_mislabel_issue", issues)
    return table


# --- sources of photo probabilities made elsewhere -----------------------------------------------------


def _from_finetuning(context: AuditContext, samples: pd.DataFrame, labels: np.ndarray,
                     options: MislabelOptions) -> tuple[np.ndarray, dict[str, Any]]:
    from core.audit.oof import finetune_out_of_fold  # loads torch

    oof = finetune_out_of_fold(
        context.root, list(samples["path"]), list(samples["content_hash"]), labels, classes=context.classes,
        backbone=options.backbone, pretrained=options.pretrained, folds=options.folds, epochs=options.epochs,
        image_size=options.image_size, seed=options.seed, device=options.device, cache_dir=options.cache_dir,
        progress=lambda f, m: context.progress(0.8 * f, m),
    )
    weights = "ImageNet weights" if options.pretrained else "from scratch"
    return oof.pred_probs, {"backbone": f"{options.backbone} ({weights})", "epochs": options.epochs,
                            "image_size": options.image_size}


def _from_run(context: AuditContext, samples: pd.DataFrame, labels: np.ndarray,
              options: MislabelOptions) -> tuple[np.ndarray, dict[str, Any]]:
    """A training run's out-of-fold probabilities, rows aligned with `samples`."""
    classes = context.classes
    if options.pred_probs is None:
        from core.training import load_out_of_fold  # loads torch

        pred_probs = load_out_of_fold(options.run_dir, samples.index.tolist(), classes=classes)
        origin = {"run_dir": str(options.run_dir)}
    elif isinstance(options.pred_probs, pd.DataFrame):
        frame = options.pred_probs
        missing = samples.index.difference(frame.index)
        if len(missing) or list(frame.columns) != list(classes):
            raise ValueError(f"pred_probs must have the columns {classes} and a row per audited sample "
                             f"({len(missing)} missing)")
        pred_probs = frame.loc[samples.index].to_numpy(dtype=float)
        origin = {}
    else:
        pred_probs = np.asarray(options.pred_probs, dtype=float)
        if pred_probs.shape != (len(context.samples), len(classes)):
            raise ValueError(f"pred_probs must have shape {(len(context.samples), len(classes))} "
                             f"(samples x classes), got {pred_probs.shape}")
        pred_probs = pred_probs[context.samples.index.get_indexer(samples.index)]
        origin = {}
    if not np.all(np.isfinite(pred_probs)) or np.any(pred_probs < 0):
        raise ValueError("pred_probs must be finite and non-negative")
    pred_probs = pred_probs / np.maximum(pred_probs.sum(axis=1, keepdims=True), 1e-12)
    return pred_probs, {"backbone": "training run", **origin}


SOURCE_FUNCTIONS = {"finetune": _from_finetuning, "run": _from_run}
