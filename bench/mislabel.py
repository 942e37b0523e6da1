"""Mislabel detection on demo datasets, member by member, measured against each dataset's truth.csv.

For each dataset: scans it into a benchmark database (kept with --db, so embeddings are cached
between runs), runs the duplicate check (its groups make the folds) and the mislabel check's
evidence as shipped, then prints one table: each member alone (its out-of-fold accuracy against
the given labels, its weight in the combination, and cleanlab's flags on its probabilities alone),
combinations of subsets of the members (re-weighed by the combiner on the same outputs), and the
shipped combination, with precision, recall, F1 and AUROC against the planted mislabels.

    .venv/bin/python -m cli.main demo --out /tmp/demo-photos
    .venv/bin/python -m cli.main demo --out /tmp/demo-fashion --style fashion
    .venv/bin/python bench/mislabel.py /tmp/demo-photos [/tmp/demo-fashion ...] --db /tmp/bench-mislabel.db
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sklearn.metrics import f1_score, precision_score, recall_score, roc_auc_score  # noqa: E402

from core.audit.checks.base import AuditContext  # noqa: E402
from core.audit.checks.duplicates import DuplicateCheck  # noqa: E402
from core.audit.evidence.gather import PHOTO_MEMBERS, flag_issues, gather_evidence, resolve_options  # noqa: E402
from core.audit.checks.mislabel import audited_samples  # noqa: E402
from core.audit.evidence.combine import combine  # noqa: E402
from db.embeddings import DbEmbeddingStore  # noqa: E402
from db.engine import make_engine, make_session_factory  # noqa: E402
from db.queries import dataset_classes  # noqa: E402
from jobs.audit import audit_samples  # noqa: E402
from jobs.scan import scan_dataset  # noqa: E402


def peak_rss_mb() -> float:
    """Peak resident memory of this process and its finished children (DataLoader workers), MiB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return (own + children) / 1024


def scores_line(name: str, truth: np.ndarray, labels: np.ndarray, pred_probs: np.ndarray,
                count_probs: Optional[np.ndarray] = None, **extra) -> dict:
    """The check's flags and ranking (core.audit.evidence.gather.flag_issues) on `pred_probs` (N, K), the
    number flagged estimated from `count_probs` (default: pred_probs), scored against truth (bool (N,))."""
    issues, quality, _ = flag_issues(labels, pred_probs, pred_probs if count_probs is None else count_probs)
    return {
        "evidence": name, **extra,
        "accuracy": round(float((pred_probs.argmax(1) == labels).mean()), 3),
        "flagged": int(issues.sum()), "true": int(truth.sum()),
        "P": round(precision_score(truth, issues, zero_division=0), 3),
        "R": round(recall_score(truth, issues), 3),
        "F1": round(f1_score(truth, issues), 3),
        "AUROC": round(roc_auc_score(truth, -quality), 4),
    }


def load_context(root: Path, db: Path, params: dict) -> tuple[AuditContext, pd.Series]:
    """The dataset scanned into `db` as an AuditContext with the embedding cache and this audit's
    duplicate groups, and whether each path is truly mislabelled."""
    factory = make_session_factory(make_engine(db))
    dataset_id = scan_dataset(factory, root)["dataset_id"]
    with factory() as session:
        samples = audit_samples(session, dataset_id)
        classes = dataset_classes(session, dataset_id)
    context = AuditContext(samples=samples[samples["readable"].astype(bool)], classes=classes, root=root,
                           params=params, embeddings=DbEmbeddingStore(factory))
    context.earlier["duplicate"] = DuplicateCheck().find_issues(context)
    truth = pd.read_csv(root / "truth.csv").set_index("path")["is_mislabel"].astype(bool)
    return context, truth


def study(root: Path, db: Path, params: dict) -> tuple[list[dict], dict]:
    """The table of one dataset and facts about the run (sizes, seconds)."""
    context, truth_of = load_context(root, db, params)
    options = resolve_options(context.params, {})
    samples, labels = audited_samples(context)
    truth = truth_of.loc[samples["path"]].to_numpy(dtype=bool)
    started = time.perf_counter()
    evidence = gather_evidence(context, samples, labels, options)
    seconds = time.perf_counter() - started
    weights = evidence.combination.weights
    lines = [scores_line(f"{o.name} alone", truth, labels, o.pred_probs, weight=weights[o.name],
                         rows=int(o.informative.sum())) for o in evidence.outputs]
    names = [o.name for o in evidence.outputs]
    subsets = {"photo members only": [n for n in names if n in PHOTO_MEMBERS],
               "without title": [n for n in names if n != "title"],
               "without price": [n for n in names if n != "price"]}
    for label, subset in subsets.items():
        if 0 < len(subset) < len(names):
            outputs = [o for o in evidence.outputs if o.name in subset]
            combined = combine(outputs, labels, evidence.folds, exclude=np.zeros(len(labels), bool),
                               written_with_label=["title"])
            lines.append(scores_line(f"{label} (one round)", truth, labels, combined.pred_probs, combined.count_probs))
    everything = combine(evidence.outputs, labels, evidence.folds, exclude=np.zeros(len(labels), bool))
    lines.append(scores_line("all, title may also acquit (one round)", truth, labels, everything.pred_probs))
    lines.append(scores_line(f"combined, {options.rounds} rounds (shipped)", truth, labels,
                             evidence.combination.pred_probs, evidence.combination.count_probs))
    facts = {"dataset": str(root), "audited": len(labels), "mislabelled": int(truth.sum()),
             "classes": len(context.classes), "seconds": round(seconds, 1), "unavailable": evidence.unavailable}
    return lines, facts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("datasets", type=Path, nargs="+", help="demo dataset folders with truth.csv")
    parser.add_argument("--db", type=Path, default=Path("/tmp/bench-mislabel.db"),
                        help="benchmark database (kept: embeddings are cached in it)")
    parser.add_argument("--members", default=None, help="comma-separated members (default: all that can run)")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--folds", type=int, default=None)
    parser.add_argument("--photo-size", type=int, default=None, help="side of the photo member's whole-image view")
    parser.add_argument("--json", type=Path, default=None, help="also write the tables to this JSON file")
    args = parser.parse_args()
    print(f"machine: nproc {os.cpu_count()}, {platform.processor() or platform.machine()}, Python "
          f"{platform.python_version()}; load average " + " ".join(f"{v:.1f}" for v in os.getloadavg()))
    params = {k: v for k, v in {"members": args.members, "rounds": args.rounds, "folds": args.folds,
                                "photo_size": args.photo_size}.items() if v}
    report = []
    for root in args.datasets:
        lines, facts = study(root.resolve(), args.db, params)
        print(f"\n{facts['dataset']}: {facts['audited']} audited, {facts['mislabelled']} mislabelled, "
              f"{facts['classes']} classes; evidence {facts['seconds']} s; not used: {facts['unavailable']}")
        print(pd.DataFrame(lines).fillna("").to_string(index=False))
        report.append({**facts, "lines": lines})
    print(f"peak memory {peak_rss_mb():.0f} MiB")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
