"""The mislabel check's evidence gathered: its options, which members run, their out-of-fold outputs combined,
and cleanlab's flags and ranking on them (core.audit.checks.mislabel describes the method).

`gather_evidence(context, samples, labels, options)` makes the audit's folds, runs the chosen members (or a
fine-tuning or training-run source for the photo) and combines them; `flag_issues` flags as many as the
combined evidence can back, the least self-confident first.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd
from cleanlab.rank import get_label_quality_scores

from core.audit.checks.base import AuditContext
from core.audit.evidence.base import MEMBER_MODULES, EvidenceInput, Member, MemberOutput, get_member
from core.audit.evidence.combine import Combination, combine
from core.audit.evidence.count import IssueCount, count_label_issues
from core.audit.evidence.folds import AuditFolds, audit_duplicate_groups, make_folds
from core.audit.evidence.image import EMBEDDING_SHARE, embed_together, members_embedded_together
from core.audit.oof import DEFAULT_FOLDS
from core.progress import within

SOURCES = ("embeddings", "finetune", "run")
#: cleanlab's ranking method, chosen by measurement on several datasets (docs/mislabel.md): the least
#: self-confident first.
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
#: Relative share of the progress bar of each member's first round, from their cold times at 2,800 listings
#: (photo 30 s, crop 30 s: its crops are embedded too, title and price a few seconds with the combination).
PROGRESS_WEIGHTS = {"photo": 4.0, "crop": 4.0, "pixels": 3.0, "title": 0.5, "price": 0.2}


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


def past_budget(scores: np.ndarray, count: IssueCount) -> np.ndarray:
    """The listings ranked past the review budget, bool (N,): after the count.estimated lowest `scores` (N,),
    the next ones up to count.ranked (none unless the evidence is weak)."""
    past = np.zeros(len(scores), bool)
    past[np.argsort(scores, kind="stable")[count.estimated:count.ranked]] = True
    return past


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
    together = members_embedded_together(members, data)
    steps = [(r, m) for r in range(options.rounds) for m in members]
    bounds = _progress_bounds(steps, together)
    if together:
        began = time.perf_counter()
        embed_together(together, dataclasses.replace(
            data, progress=within(context.progress, 0.0, float(bounds[1]), "photos, every view at once: ")))
        details["embedded_together"] = {"members": [m.name for m in together],
                                        "seconds": round(time.perf_counter() - began, 2)}
    seconds: dict[str, float] = {}
    exclude = np.zeros(len(labels), bool)
    for round_index in range(options.rounds):
        outputs = []
        for member in members:
            position = steps.index((round_index, member)) + 1
            progress = within(context.progress, float(bounds[position]), float(bounds[position + 1]),
                              f"round {round_index + 1}, {member.name}: ")
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


def _progress_bounds(steps: list[tuple[int, Member]], together: list[Member]) -> np.ndarray:
    """Where each part of the check starts and ends on its progress bar, in [0, 1], shape (len(steps) + 2,):
    first the one pass that embeds the `together` members' photos (empty without one), then each (round,
    member) step, by PROGRESS_WEIGHTS (a later round refits only: 0.3 of it)."""
    def share(round_index: int, member: Member) -> float:
        weight = PROGRESS_WEIGHTS.get(member.name, 1.0)
        if round_index:
            return 0.3 * weight
        return weight * (1 - EMBEDDING_SHARE) if member in together else weight

    shares = [sum(PROGRESS_WEIGHTS.get(m.name, 1.0) * EMBEDDING_SHARE for m in together)]
    shares += [share(round_index, member) for round_index, member in steps]
    return np.concatenate([[0.0], np.cumsum(shares)]) / sum(shares)


def _photo_source(context: AuditContext, samples: pd.DataFrame, labels: np.ndarray,
                  options: MislabelOptions) -> tuple[Optional[FixedMember], dict[str, Any]]:
    """The photo evidence of the finetune and run sources as a member; None for the embeddings source."""
    if options.source == "embeddings":
        return None, {"backbone": options.backbone}
    pred_probs, details = SOURCE_FUNCTIONS[options.source](context, samples, labels, options)
    return FixedMember(options.source, pred_probs, details), details


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
        from core.models.checkpoints import load_out_of_fold  # loads torch

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
