"""Detection quality and cost of a full audit on a demo dataset, scored against its truth.csv.

Usage: python bench/audit.py --dataset data/demo [--dataset data/demo-fashion ...]
                             [--checks mislabel,price,...] [--folds 5] [--backbone mobilenet_v2]
                             [--workers N] [--db PATH] [--json]

Scans the dataset into a fresh temporary database, runs an audit job on it
(the same code as `listing-audit audit`), and scores each kind of flag against
truth.csv: precision, recall and F1 of mislabels, price typos and broken files;
duplicates as pairs (a re-upload counts as found when it and its original land in
one group; precision over every pair of files that share a group), also per kind
of re-upload; the AUROC of the mislabel score; the mislabel check's count with its
interval and whether it called the evidence weak; what set the expected prices (sources and weights, or
why class statistics did); its evidence members (weight, out-of-fold accuracy against the given labels, seconds); quality
flags (the demo plants none). Reports wall time per check and peak memory
(resource.getrusage of this process and of the scan's worker processes).
Several --dataset options audit each in turn (each in its own fresh database).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from db.engine import make_engine, make_session_factory  # noqa: E402
from jobs.audit import audit_job, audit_params  # noqa: E402
from jobs.runner import create_job  # noqa: E402
from jobs.scan import scan_dataset  # noqa: E402


def detection(flagged: set[str], truth: set[str]) -> dict[str, float]:
    """Precision, recall, F1 and counts of flagged paths against true paths."""
    hits = len(flagged & truth)
    precision = hits / len(flagged) if flagged else float("nan")
    recall = hits / len(truth) if truth else float("nan")
    f1 = 2 * precision * recall / (precision + recall) if hits else 0.0
    return {"flagged": len(flagged), "true": len(truth), "found": hits,
            "precision": precision, "recall": recall, "f1": f1}


def duplicate_scores(issues: pd.DataFrame, samples: pd.DataFrame, truth: pd.DataFrame) -> dict:
    """Pair precision / recall of duplicate groups, and recall per kind of re-upload."""
    group_of = dict(zip(samples.loc[issues.index, "path"], issues["group"]))
    copies = truth[truth["is_duplicate"] == 1]
    found = [group_of.get(copy) is not None and group_of.get(copy) == group_of.get(original)
             for copy, original in zip(copies["path"], copies["duplicate_of"])]
    true_pairs = {frozenset(pair) for pair in zip(copies["path"], copies["duplicate_of"])}
    members = issues[issues["is_duplicate_issue"]]
    predicted = [frozenset(pair) for _, group in members.groupby("group")
                 for pair in combinations(samples.loc[group.index, "path"], 2)]
    correct = sum(pair in true_pairs for pair in predicted)
    precision = correct / len(predicted) if predicted else float("nan")
    recall = float(np.mean(found)) if found else float("nan")
    by_kind = pd.Series(found, index=copies["duplicate_kind"].to_numpy()).groupby(level=0).mean()
    return {"pairs_predicted": len(predicted), "pairs_true": len(true_pairs), "pairs_found": int(sum(found)),
            "precision": precision, "recall": recall,
            "f1": 2 * precision * recall / (precision + recall) if correct else 0.0,
            "recall_by_kind": {kind: round(float(value), 4) for kind, value in by_kind.items()}}


def score(outcome, truth: pd.DataFrame) -> dict:
    """Every detection score of one audit (see the module docstring)."""
    samples, results = outcome.samples, outcome.run.results
    paths = samples["path"]

    def flagged(name: str) -> set[str]:
        issues = results[name].issues
        return set(paths[issues.index[issues[f"is_{name}_issue"].to_numpy(dtype=bool)]])

    scores = {}
    if "mislabel" in results:
        scores["mislabel"] = detection(flagged("mislabel"), set(truth.loc[truth["is_mislabel"] == 1, "path"]))
        issues = results["mislabel"].issues
        labels = truth.set_index("path").loc[paths[issues.index], "is_mislabel"].to_numpy()
        scores["mislabel"]["auroc"] = float(roc_auc_score(labels, 1.0 - issues["mislabel_score"].to_numpy()))
        past = set(paths[results["mislabel"].past_budget().index])
        scores["mislabel"]["past_budget"] = len(past)
        scores["mislabel"]["past_budget_errors"] = len(past & set(truth.loc[truth["is_mislabel"] == 1, "path"]))
    if "price" in results:
        scores["price"] = detection(flagged("price"), set(truth.loc[truth["is_price_typo"] == 1, "path"]))
    if "broken" in results:
        scores["broken"] = detection(flagged("broken"), set(truth.loc[truth["is_broken"] == 1, "path"]))
    if "duplicate" in results:
        scores["duplicate"] = duplicate_scores(results["duplicate"].issues, samples, truth)
    if "quality" in results:
        scores["quality"] = {"flagged": len(flagged("quality")), "planted": 0}
    return scores


def peak_memory_mb() -> dict[str, float]:
    return {"this_process": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "scan_workers": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}


def run(dataset: Path, *, db: Path, checks, folds, backbone, workers) -> dict:
    factory = make_session_factory(make_engine(db))
    started = time.perf_counter()
    scan = scan_dataset(factory, dataset, workers=workers)
    scan_s = time.perf_counter() - started
    with factory.begin() as session:
        job_id = create_job(session, scan["dataset_id"], "audit",
                            audit_params(checks=checks, folds=folds, backbone=backbone)).id
    began = time.perf_counter()
    outcome = audit_job(factory, job_id, lambda fraction, message: None)
    audit_s = time.perf_counter() - began
    truth = pd.read_csv(dataset / "truth.csv")
    return {
        "dataset": str(dataset), "files": scan["images"], "params": {"checks": list(outcome.run.results), "folds": folds, "backbone": backbone},
        "scores": score(outcome, truth),
        "mislabel_members": outcome.summary["checks"].get("mislabel", {}).get("members", {}),
        "mislabel_count": outcome.summary["checks"].get("mislabel", {}).get("count"),
        "price_model": outcome.summary["checks"].get("price", {}).get("expected_price"),
        "seconds": {"scan": round(scan_s, 1), "audit": round(audit_s, 1),
                    **{name: round(value, 1) for name, value in outcome.run.seconds.items()}},
        "peak_memory_mb": peak_memory_mb(),
    }


def format_report(report: dict) -> str:
    lines = [f"{report['dataset']}: {report['files']} files; checks {', '.join(report['params']['checks'])}",
             "| kind | flagged | true | precision | recall | F1 | other |", "|---|---|---|---|---|---|---|"]
    for kind, values in report["scores"].items():
        if kind == "quality":
            lines.append(f"| quality | {values['flagged']} | 0 planted | | | | |")
            continue
        if kind == "duplicate":
            other = "recall by kind: " + ", ".join(f"{k} {v:.3f}" for k, v in values["recall_by_kind"].items())
            lines.append(f"| duplicate (pairs) | {values['pairs_predicted']} | {values['pairs_true']} | "
                         f"{values['precision']:.3f} | {values['recall']:.3f} | {values['f1']:.3f} | {other} |")
            continue
        other = f"AUROC {values['auroc']:.4f}" if "auroc" in values else ""
        if values.get("past_budget"):
            other += f"; past the budget {values['past_budget']}, {values['past_budget_errors']} of them errors"
        lines.append(f"| {kind} | {values['flagged']} | {values['true']} | {values['precision']:.3f} | "
                     f"{values['recall']:.3f} | {values['f1']:.3f} | {other} |")
    count = report.get("mislabel_count")
    if count:
        lines.append(f"mislabel count: {count['estimated']} (95% interval {count['low']}-{count['high']}; cleanlab's "
                     f"{count['cleanlab']}); weak evidence: {'; '.join(count['reasons']) or 'no'}")
    if report.get("price_model"):
        from core.audit.checks.price import expected_price_text

        lines.append(f"prices: {expected_price_text({'expected_price': report['price_model']})}")
    members = report.get("mislabel_members") or {}
    if members:
        lines += ["| mislabel evidence | weight | out-of-fold accuracy | listings | seconds |", "|---|---|---|---|---|"]
        lines += [f"| {name} | {values['weight']:.3f} | {values['accuracy'] or float('nan'):.3f} | {values['rows']} | "
                  f"{values.get('seconds', float('nan')):.1f} |" for name, values in members.items()]
    seconds = ", ".join(f"{name} {value} s" for name, value in report["seconds"].items())
    memory = report["peak_memory_mb"]
    lines.append(f"time: {seconds}; peak RSS {memory['this_process']:.0f} MB "
                 f"(scan workers {memory['scan_workers']:.0f} MB)")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, action="append", required=True,
                        help="a demo dataset folder with truth.csv (repeat for several)")
    parser.add_argument("--checks", default=None, help="comma-separated checks (default: all)")
    parser.add_argument("--folds", type=int, default=None)
    parser.add_argument("--backbone", default=None)
    parser.add_argument("--workers", type=int, default=None, help="scan processes (default: all cores)")
    parser.add_argument("--db", type=Path, default=None, help="database file to keep (default: a temporary one)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args()
    for dataset in args.dataset:
        if not (dataset / "truth.csv").is_file():
            parser.error(f"{dataset} has no truth.csv: build one with `listing-audit demo --out DIR`")
    for dataset in args.dataset:
        print(f"machine: nproc {os.cpu_count()}, {platform.processor() or platform.machine()}, "
              f"Python {platform.python_version()}; load average " + " ".join(f"{v:.1f}" for v in os.getloadavg()),
              file=sys.stderr)
        with tempfile.TemporaryDirectory() as scratch:
            db = args.db or Path(scratch) / "bench.db"
            report = run(dataset.resolve(), db=db, checks=args.checks.split(",") if args.checks else None,
                         folds=args.folds, backbone=args.backbone, workers=args.workers)
        print(json.dumps(report, indent=2) if args.json else format_report(report), flush=True)


if __name__ == "__main__":
    main()
