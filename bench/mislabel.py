"""Mislabel detection quality on a demo dataset, measured against its truth.csv.

Scans the demo into a benchmark database (kept with --db, so embeddings are cached between
runs), runs the mislabel check as shipped and prints precision, recall, F1 and AUROC of the
mislabel score against the planted mislabels, with time and peak memory. --study adds the
research tables behind the choices in docs/mislabel.md: each ensemble member alone, one
round against two with and without price evidence, and every cleanlab filter and ranking
method on the shipped probabilities.

    .venv/bin/python -m cli.main demo --out /tmp/demo-mis --seed 1
    .venv/bin/python bench/mislabel.py /tmp/demo-mis --db /tmp/bench-mislabel.db [--study]
"""
from __future__ import annotations

import argparse
import dataclasses
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cleanlab.filter import find_label_issues  # noqa: E402
from cleanlab.rank import get_label_quality_scores  # noqa: E402
from sklearn.metrics import f1_score, precision_score, recall_score, roc_auc_score  # noqa: E402

from core.checks.base import AuditContext  # noqa: E402
from core.checks.mislabel import (  # noqa: E402
    FILTER_BY, RANKING_METHOD, MislabelCheck, MislabelOptions, audited_samples, out_of_fold, resolve_options,
)
from core.features import embed_cached, get_backbone  # noqa: E402
from core.oof import out_of_fold_probabilities  # noqa: E402
from db.embeddings import DbEmbeddingStore  # noqa: E402
from db.engine import make_engine, make_session_factory  # noqa: E402
from db.queries import dataset_classes  # noqa: E402
from jobs.audit import audit_samples  # noqa: E402
from jobs.scan import scan_dataset  # noqa: E402

FILTERS = ("prune_by_noise_rate", "prune_by_class", "both", "confident_learning", "predicted_neq_given",
           "low_normalized_margin", "low_self_confidence")
RANKINGS = ("self_confidence", "normalized_margin", "confidence_weighted_entropy")


def peak_rss_mb() -> float:
    """Peak resident memory of this process and its finished children (DataLoader workers), MiB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return (own + children) / 1024


def scores_line(name: str, truth: np.ndarray, issues: np.ndarray, quality: np.ndarray, seconds: float = float("nan")) -> dict:
    """Detection metrics of one configuration: issues bool (N,), quality (N,) lower = more suspect."""
    return {
        "configuration": name,
        "flagged": int(issues.sum()),
        "precision": round(precision_score(truth, issues, zero_division=0), 3),
        "recall": round(recall_score(truth, issues), 3),
        "F1": round(f1_score(truth, issues), 3),
        "AUROC": round(roc_auc_score(truth, -quality), 4),
        "seconds": round(seconds, 1),
    }


def load_context(root: Path, db: Path) -> tuple[AuditContext, np.ndarray]:
    """The demo scanned into `db` as an AuditContext with the embedding cache, and the truth per sample."""
    factory = make_session_factory(make_engine(db))
    dataset_id = scan_dataset(factory, root)["dataset_id"]
    with factory() as session:
        samples = audit_samples(session, dataset_id)
        classes = dataset_classes(session, dataset_id)
    truth = pd.read_csv(root / "truth.csv").set_index("path")
    context = AuditContext(samples=samples, classes=classes, root=root, embeddings=DbEmbeddingStore(factory))
    return context, truth


def run_shipped(context: AuditContext, truth_of: pd.Series) -> tuple[dict, dict]:
    started = time.perf_counter()
    result = MislabelCheck().find_issues(context)
    seconds = time.perf_counter() - started
    issues = result.issues
    truth = truth_of.loc[context.samples.loc[issues.index, "path"]].to_numpy(dtype=bool)
    line = scores_line("as shipped", truth, issues["is_mislabel_issue"].to_numpy(bool),
                       issues["mislabel_score"].to_numpy(float), seconds)
    return line, result.summary


def study(context: AuditContext, truth_of: pd.Series) -> list[dict]:
    """Each member alone, one round against two, every filter and ranking on the shipped probabilities."""
    options = resolve_options(context.params, {})
    samples, labels = audited_samples(context)
    truth = truth_of.loc[samples["path"]].to_numpy(dtype=bool)
    lines = []
    for name in (options.backbone, "pixels"):
        spec = get_backbone(name)
        vectors = embed_cached([str(context.root / p) for p in samples["path"]], list(samples["content_hash"]),
                               store=context.embeddings, backbone=name, image_size=options.image_size).vectors
        started = time.perf_counter()
        oof = out_of_fold_probabilities(vectors, labels, n_classes=len(context.classes), folds=options.folds,
                                        classifier=spec.classifier, seed=options.seed)
        seconds = time.perf_counter() - started
        lines.append(_probabilities_line(f"{name} + {spec.classifier} alone, 1 round", truth, labels,
                                         oof.pred_probs, seconds))
    final = None
    for rounds, use_price in ((1, False), (1, True), (2, False), (2, True)):
        started = time.perf_counter()
        made = out_of_fold(context, samples, labels, dataclasses.replace(options, rounds=rounds, use_price=use_price))
        seconds = time.perf_counter() - started
        name = f"ensemble, {rounds} round(s), {'with' if use_price else 'without'} price"
        lines.append(_probabilities_line(name, truth, labels, made.oof.pred_probs, seconds))
        final = made.oof.pred_probs
    for filter_by in FILTERS:
        issues = find_label_issues(labels, final, filter_by=filter_by)
        quality = get_label_quality_scores(labels, final, method=RANKING_METHOD)
        lines.append(scores_line(f"filter_by={filter_by}", truth, issues, quality))
    issues = find_label_issues(labels, final, filter_by=FILTER_BY)
    for method in RANKINGS:
        quality = get_label_quality_scores(labels, final, method=method)
        lines.append(scores_line(f"ranking={method}", truth, issues, quality))
    return lines


def _probabilities_line(name: str, truth: np.ndarray, labels: np.ndarray, pred_probs: np.ndarray,
                        seconds: float) -> dict:
    issues = find_label_issues(labels, pred_probs, filter_by=FILTER_BY)
    quality = get_label_quality_scores(labels, pred_probs, method=RANKING_METHOD)
    line = scores_line(name, truth, issues, quality, seconds)
    line["accuracy_vs_given"] = round(float((pred_probs.argmax(1) == labels).mean()), 3)
    return line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("demo", type=Path, help="a demo dataset folder with truth.csv")
    parser.add_argument("--db", type=Path, default=Path("/tmp/bench-mislabel.db"),
                        help="benchmark database (kept: embeddings are cached in it)")
    parser.add_argument("--backbone", default=MislabelOptions.backbone)
    parser.add_argument("--folds", type=int, default=MislabelOptions.folds)
    parser.add_argument("--study", action="store_true", help="also print the research tables")
    args = parser.parse_args()
    root = args.demo.resolve()
    started = time.perf_counter()
    context, truth = load_context(root, args.db)
    scan_seconds = time.perf_counter() - started
    context.params.update(backbone=args.backbone, folds=args.folds)
    truth_of = truth["is_mislabel"].astype(bool)
    line, summary = run_shipped(context, truth_of)
    audited = context.samples.loc[context.samples["readable"], "path"]
    print(f"demo {root}: {len(context.samples)} samples, {int(truth_of.loc[audited].sum())} mislabelled among the "
          f"{len(audited)} readable; scan {scan_seconds:.1f} s")
    print(f"check summary: embedded {summary['embedded']}, from cache {summary['embeddings_from_cache']}, "
          f"fold accuracy {summary['fold_accuracy']}, estimated noise {summary['estimated_noise_rate']}, "
          f"backbone {summary['backbone']}")
    table = [line]
    if args.study:
        table += study(context, truth_of)
    print(pd.DataFrame(table).to_string(index=False))
    print(f"peak memory {peak_rss_mb():.0f} MiB")


if __name__ == "__main__":
    main()
