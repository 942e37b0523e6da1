"""The `mislabel` check: cleanlab on out-of-fold predicted probabilities.

Where the probabilities come from is pluggable (option `source`):
- "embeddings" (default): the object crop of each image embedded by a frozen ImageNet backbone
  (`backbone`, cached by content hash) and by weight-free shape features ("pixels"), a
  cross-validated classifier on each, their probabilities averaged (core.features, core.oof).
  Two rounds: the second refits every fold without the first round's suspects, so label
  errors do not teach the classifiers their wrong labels. backbone "pixels" uses the shape
  features alone and needs no weights file.
- "finetune": K networks fine-tuned on the images (core.training); `pretrained` false trains
  them from scratch.
- "run": a finished training run's out-of-fold probabilities: `pred_probs`, an (N, K) array in
  `context.samples` order or a DataFrame indexed by sample id with the classes as columns, or
  `run_dir`, the run's folder.
Whatever the source, with `use_price` (default) each sample's probabilities are multiplied by how
well its listing price fits each class (core.checks.price.price_likelihood) and renormalised.
cleanlab then flags with FILTER_BY and scores with RANKING_METHOD (measured in docs/mislabel.md).
Options come from the check's keyword arguments, else from `context.params`, else the defaults
of `MislabelOptions`. Every sample is judged under its current label (corrections respected);
deleted samples are not in the context and unreadable ones cannot be embedded.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd
from cleanlab.count import num_label_issues
from cleanlab.filter import find_label_issues
from cleanlab.rank import get_label_quality_scores

from core.checks.base import AuditContext, Check, CheckResult, register
from core.checks.price import class_price_stats, price_likelihood, valid_log_prices
from core.oof import DEFAULT_FOLDS, OutOfFold

log = logging.getLogger(__name__)

SOURCES = ("embeddings", "finetune", "run")
#: cleanlab's issue filter and ranking method, chosen by measurement on two demos (docs/mislabel.md):
#: flag cleanlab's estimate of the number of issues, the least self-confident first.
FILTER_BY = "low_self_confidence"
RANKING_METHOD = "self_confidence"
#: The filter that picks the suspects left out of the next round's fit: recall matters more there.
LEAVE_OUT_FILTER_BY = "prune_by_noise_rate"
#: Price evidence (core.checks.price.price_likelihood): classes need this many prices to have a price
#: model, at least PRICE_MIN_CLASSES classes must have one, and this share of prices fits no class.
PRICE_MIN_CLASS_PRICES = 8
PRICE_MIN_CLASSES = 2
PRICE_MIN_SCALE = 0.05
PRICE_STRAY_SHARE = 0.05
#: Shape features always join a pretrained backbone's embeddings in the ensemble.
SHAPE_BACKBONE = "pixels"


@dataclass(frozen=True)
class MislabelOptions:
    """The check's options. rounds: fits of the embeddings source (2: refit without the suspects);
    pretrained, epochs, cache_dir: of the finetune source; pred_probs, run_dir: of the run source."""

    source: str = "embeddings"
    backbone: str = "mobilenet_v2"
    folds: int = DEFAULT_FOLDS
    image_size: int = 112
    rounds: int = 2
    use_price: bool = True
    seed: int = 0
    device: str = "auto"
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


OPTION_NAMES = frozenset(f.name for f in fields(MislabelOptions))


def resolve_options(params: dict[str, Any], overrides: dict[str, Any]) -> MislabelOptions:
    """Defaults, then the audit's params (known names, not None), then the check's own keyword options."""
    chosen = {k: v for k, v in params.items() if k in OPTION_NAMES and v is not None}
    chosen.update({k: v for k, v in overrides.items() if v is not None})
    options = replace(MislabelOptions(), **chosen)
    options.validate()
    return options


@dataclass
class Probabilities:
    """Out-of-fold probabilities of the audited samples, and what to say about how they were made."""

    oof: OutOfFold
    details: dict[str, Any]


@register
class MislabelCheck(Check):
    """Flags samples whose current label cleanlab finds unlikely under out-of-fold probabilities."""

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
        made = out_of_fold(context, samples, labels, options)
        return self._judge(samples, labels, made, context.classes, skipped)

    def _judge(self, samples: pd.DataFrame, labels: np.ndarray, made: Probabilities, classes: list[str],
               skipped: int) -> CheckResult:
        oof = made.oof
        assessed = oof.assessed
        issues = np.zeros(len(labels), bool)
        scores = np.ones(len(labels))
        estimated = 0
        if assessed.sum() and len(np.unique(labels[assessed])) >= 2:
            issues[assessed] = find_label_issues(labels[assessed], oof.pred_probs[assessed], filter_by=FILTER_BY)
            scores[assessed] = get_label_quality_scores(labels[assessed], oof.pred_probs[assessed],
                                                        method=RANKING_METHOD)
            estimated = int(num_label_issues(labels[assessed], oof.pred_probs[assessed]))
        table = evidence_table(samples.index, labels, oof.pred_probs, issues, scores, assessed, classes)
        flagged_per_class = pd.Series(labels[issues]).map(dict(enumerate(classes))).value_counts()
        summary = {
            "flagged": int(issues.sum()),
            "audited": int(len(labels)),
            "assessed": int(assessed.sum()),
            "skipped_unreadable": int(skipped),
            "per_class": {name: int(flagged_per_class.get(name, 0)) for name in classes},
            "estimated_noise_rate": round(estimated / max(int(assessed.sum()), 1), 4),
            "fold_accuracy": round(oof.accuracy, 4),
            "folds": oof.folds,
            "filter_by": FILTER_BY,
            "ranking": RANKING_METHOD,
            "notes": oof.notes,
            **made.details,
        }
        return self.result(table, summary)


def audited_samples(context: AuditContext) -> tuple[pd.DataFrame, np.ndarray]:
    """The samples the check can judge (readable, hashed) and their current labels as class indices."""
    samples = context.samples[context.samples["readable"].astype(bool) & context.samples["content_hash"].notna()]
    return samples, context.label_indices()[context.samples.index.get_indexer(samples.index)]


def judgeable(labels: np.ndarray) -> bool:
    """Whether cross-validation can run: two classes with two samples each."""
    return len(labels) > 0 and (np.bincount(labels) >= 2).sum() >= 2


def out_of_fold(context: AuditContext, samples: pd.DataFrame, labels: np.ndarray,
                options: MislabelOptions) -> Probabilities:
    """Out-of-fold probabilities of `samples` (rows of context.samples) from the source options name,
    times how well each listing's price fits each class when `use_price` and the samples have prices."""
    price = price_fit(samples, labels, context.classes) if options.use_price else None
    made = SOURCE_FUNCTIONS[options.source](context, samples, labels, options, price)
    made.oof = with_price(made.oof, price)
    made.details["price_evidence"] = price is not None
    return made


def price_fit(samples: pd.DataFrame, labels: np.ndarray, classes: list[str]) -> Optional[np.ndarray]:
    """core.checks.price.price_likelihood of each sample's price under each class's prices (current
    labels), shape (N, K); None when fewer than PRICE_MIN_CLASSES classes have PRICE_MIN_CLASS_PRICES prices."""
    if "price" not in samples:
        return None
    log_price = valid_log_prices(samples["price"])
    stats = class_price_stats(log_price, labels, classes, min_count=PRICE_MIN_CLASS_PRICES, min_scale=PRICE_MIN_SCALE)
    if np.isfinite(stats.median).sum() < PRICE_MIN_CLASSES:
        return None
    return price_likelihood(log_price, stats, stray_share=PRICE_STRAY_SHARE)


def with_price(oof: OutOfFold, price: Optional[np.ndarray]) -> OutOfFold:
    """`oof` with each row multiplied by the price fit and renormalised (Bayes' rule with price and
    image independent given the class); unchanged when price is None."""
    if price is None:
        return oof
    combined = oof.pred_probs * price
    combined /= np.maximum(combined.sum(axis=1, keepdims=True), 1e-300)
    return replace(oof, pred_probs=combined)


def _unjudged_table(samples: pd.DataFrame, reason: str) -> pd.DataFrame:
    return pd.DataFrame({"is_mislabel_issue": False, "mislabel_score": 1.0, "suggested_label": None,
                         "reason": reason, "evidence": [{} for _ in range(len(samples))]}, index=samples.index)


def _top(probs: np.ndarray, classes: list[str], count: int = 3) -> list[dict[str, Any]]:
    order = np.argsort(-probs, kind="stable")[:count]
    return [{"label": classes[k], "probability": round(float(probs[k]), 4)} for k in order]


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
            reason = f"not judged: the only sample of '{classes[given]}'"
        else:
            reason = (f"the model gives '{classes[given]}' {probs[given]:.0%} and "
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


# --- sources of out-of-fold probabilities -------------------------------------------------------------


def _from_embeddings(context: AuditContext, samples: pd.DataFrame, labels: np.ndarray,
                     options: MislabelOptions, price: Optional[np.ndarray]) -> Probabilities:
    """Average of the out-of-fold probabilities of each member's classifier on its embeddings."""
    from core.features import embed_cached, get_backbone  # loads torch
    from core.oof import out_of_fold_probabilities

    members = [options.backbone] + ([SHAPE_BACKBONE] if options.backbone != SHAPE_BACKBONE else [])
    specs = [get_backbone(name) for name in members]
    paths = [str(context.root / path) for path in samples["path"]]
    embed_share = 0.7
    vectors, keys, computed, reused = [], [], 0, 0
    for position, spec in enumerate(specs):
        start = embed_share * position / len(specs)
        embedded = embed_cached(
            paths, list(samples["content_hash"]), store=context.embeddings, backbone=spec.name,
            image_size=options.image_size, device=options.device,
            progress=lambda f, m, s=start: context.progress(s + embed_share * f / len(specs), f"{spec.name}: {m}"),
        )
        vectors.append(embedded.vectors)
        keys.append(embedded.key)
        computed, reused = computed + embedded.computed, reused + embedded.reused
    exclude = np.zeros(len(labels), bool)
    steps = options.rounds * len(specs)
    for round_index in range(options.rounds):
        results = []
        for position, (spec, features) in enumerate(zip(specs, vectors)):
            start = embed_share + (1 - embed_share) * (round_index * len(specs) + position) / steps
            results.append(out_of_fold_probabilities(
                features, labels, n_classes=len(context.classes), folds=options.folds,
                classifier=spec.classifier, seed=options.seed, exclude_from_training=exclude,
                progress=lambda f, m, s=start: context.progress(s + (1 - embed_share) * f / steps,
                                                                 f"cross-validation round {round_index + 1}: {m}"),
            ))
        oof = _average(results)
        if round_index + 1 < options.rounds:
            judged = with_price(oof, price)
            exclude = np.zeros(len(labels), bool)
            exclude[oof.assessed] = find_label_issues(labels[oof.assessed], judged.pred_probs[oof.assessed],
                                                      filter_by=LEAVE_OUT_FILTER_BY)
    details = {
        "source": "embeddings", "backbone": "+".join(keys),
        "classifier": "+".join(spec.classifier for spec in specs), "rounds": options.rounds,
        "left_out_of_last_fit": int(exclude.sum()), "embedded": computed, "embeddings_from_cache": reused,
    }
    return Probabilities(oof, details)


def _average(results: list[OutOfFold]) -> OutOfFold:
    """One OutOfFold whose probabilities are the mean of the members' (same folds, same samples)."""
    pred_probs = np.mean([r.pred_probs for r in results], axis=0)
    first = results[0]
    labels_known = first.assessed
    fold_accuracy = [float(np.mean([r.fold_accuracy[i] for r in results])) for i in range(len(first.fold_accuracy))]
    notes = list(dict.fromkeys(note for r in results for note in r.notes))
    return OutOfFold(pred_probs, labels_known, fold_accuracy, first.folds, notes)


def _from_finetuning(context: AuditContext, samples: pd.DataFrame, labels: np.ndarray,
                     options: MislabelOptions, price: Optional[np.ndarray]) -> Probabilities:
    from core.oof import finetune_out_of_fold  # loads torch

    oof = finetune_out_of_fold(
        context.root, list(samples["path"]), list(samples["content_hash"]), labels, classes=context.classes,
        backbone=options.backbone, pretrained=options.pretrained, folds=options.folds, epochs=options.epochs,
        image_size=options.image_size, seed=options.seed, device=options.device, cache_dir=options.cache_dir,
        progress=context.progress,
    )
    weights = "ImageNet weights" if options.pretrained else "from scratch"
    return Probabilities(oof, {"source": "finetune", "backbone": f"{options.backbone} ({weights})",
                               "epochs": options.epochs, "image_size": options.image_size})


def _from_run(context: AuditContext, samples: pd.DataFrame, labels: np.ndarray,
              options: MislabelOptions, price: Optional[np.ndarray]) -> Probabilities:
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
    correct = pred_probs.argmax(1) == labels
    oof = OutOfFold(pred_probs, np.ones(len(labels), bool), [float(correct.mean())], folds=0)
    return Probabilities(oof, {"source": "run", "backbone": "training run", **origin})


SOURCE_FUNCTIONS = {"embeddings": _from_embeddings, "finetune": _from_finetuning, "run": _from_run}
