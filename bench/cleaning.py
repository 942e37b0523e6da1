"""The whole cleaning loop on a demo dataset: train, audit, accept the audit's suggestions, retrain,
and score both runs against the demo's answer key.

Usage: python bench/cleaning.py --dataset DEMO_DIR [--db PATH] [--epochs 3] [--image-size 96]
                                [--batch-size 64] [--freeze-epochs 1] [--cpu-threads N]

1. Scan the demo into a fresh database and train the "before" run on the folder labels.
2. Audit it (every check, defaults) and accept what the audit says, as `listing-audit accept` does
   (core.audit.acceptance): relabel every mislabel flag to its suggested label, keep one member of each
   duplicate group (one not flagged as a mislabel where there is one) and delete the others,
   delete broken files. One action (db.review.apply_plan).
3. Train the "after" run with the same configuration and seed (both validate on the dataset's
   evaluation split, db.evaluation).
4. Compare the two runs as the Metrics page does (db.evaluation.compare_runs: the images both
   scored, against today's labels and against verified labels, paired bootstrap intervals), as
   each run scored itself (its own labels), and against truth.csv on the same common images
   (core.train.compare.compare_predictions); and the decisions themselves against the answer key.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.audit.acceptance import ACCEPTABLE_KINDS, plan_acceptance  # noqa: E402
from core.train.compare import compare_predictions  # noqa: E402
from core.models.config import TrainConfig  # noqa: E402
from db.engine import make_engine, make_session_factory  # noqa: E402
from db.queries import dataset_classes, samples_frame  # noqa: E402
from db.review import QueueFilter, apply_plan, open_flag_rows  # noqa: E402
from db.evaluation import compare_runs  # noqa: E402
from db.runs import get_run, run_predictions, run_result  # noqa: E402
from jobs.audit import audit_job, audit_params  # noqa: E402
from jobs.runner import create_job, run_job  # noqa: E402
from jobs.scan import scan_dataset  # noqa: E402


def train(factory, dataset_id: int, config: TrainConfig) -> dict:
    """Run one training job in this process; its result dict (metrics, validation predictions)."""
    with factory.begin() as session:
        job_id = create_job(session, dataset_id, "train", {"config": config.to_dict()}).id
    started = time.perf_counter()
    job = run_job(factory, job_id)
    if job.status != "succeeded":
        raise SystemExit(f"training run {job_id} {job.status}: {job.error}")
    with factory() as session:
        result = run_result(get_run(session, job_id))
    result["seconds"] = time.perf_counter() - started
    result["run_id"] = job_id
    return result


def decision_quality(plan: pd.DataFrame, truth: pd.DataFrame) -> dict:
    """How many relabels of a core.audit.acceptance plan named the true class, and how many deletions removed a
    broken file or one member of a planted duplicate pair (the copy or its original: either may be kept)."""
    relabels = plan[plan["action"] == "relabel"]
    right = (truth.loc[relabels["path"], "true_label"].to_numpy() == relabels["new_label"].to_numpy()).sum()
    deletions = plan[plan["action"] == "delete"]
    planted = set(truth.index[(truth["is_duplicate"] == 1) | (truth["is_broken"] == 1)])
    planted |= set(truth["duplicate_of"].dropna())
    return {"relabels": len(relabels), "relabels_to_true_class": int(right), "deletions": len(deletions),
            "deletions_of_broken_or_duplicated_files": int(deletions["path"].isin(planted).sum())}


def change_row(comparison, metric: str) -> dict:
    row = comparison.overall(metric)
    return {"images": comparison.images, "before": row.before, "after": row.after, "change": row.change,
            "low": row.low, "high": row.high}


def comparisons(factory, before_id: int, after_id: int, truth: pd.DataFrame, paths: pd.Series) -> pd.DataFrame:
    """The change in accuracy and macro F1 from `before_id` to `after_id`: as each run scored itself, as the
    Metrics page compares them (today's labels, verified labels), and against truth.csv on the images the
    page compares."""
    with factory() as session:
        runs = {run_id: get_run(session, run_id) for run_id in (before_id, after_id)}
        page = {labels: compare_runs(session, before_id, after_id, labels=labels) for labels in ("current", "verified")}
    predictions = {run_id: run_predictions(job) for run_id, job in runs.items()}
    own = {run_id: run_result(job)["metrics"] for run_id, job in runs.items()}
    common = predictions[before_id].index.intersection(predictions[after_id].index)
    true = pd.Series(truth.loc[paths.loc[common], "true_label"].to_numpy(), index=common)
    against_truth = compare_predictions(predictions[before_id], predictions[after_id], true)
    rows = {}
    for metric, name in (("accuracy", "accuracy"), ("macro_f1", "macro F1")):
        a, b = own[before_id], own[after_id]
        value = (lambda m: m["accuracy"]) if metric == "accuracy" else (lambda m: m["macro_avg"]["f1"])
        rows[(name, "each run on its own labels (old page)")] = {
            "images": f"{a['n']} / {b['n']}", "before": value(a), "after": value(b), "change": value(b) - value(a),
            "low": float("nan"), "high": float("nan")}
        rows[(name, "page: today's labels")] = change_row(page["current"], metric)
        rows[(name, "page: verified labels")] = change_row(page["verified"], metric)
        rows[(name, "truth.csv, same images")] = change_row(against_truth, metric)
    table = pd.DataFrame(rows).T
    for metric in ("accuracy", "macro F1"):
        truth_row, page_row = table.loc[(metric, "truth.csv, same images")], table.loc[(metric, "page: today's labels")]
        print(f"{metric}: page change {page_row.change:+.3f} {'inside' if truth_row.low <= page_row.change <= truth_row.high else 'OUTSIDE'} "
              f"the truth change's interval [{truth_row.low:+.3f}, {truth_row.high:+.3f}]; truth change "
              f"{truth_row.change:+.3f} {'inside' if page_row.low <= truth_row.change <= page_row.high else 'OUTSIDE'} "
              f"the page's interval [{page_row.low:+.3f}, {page_row.high:+.3f}]")
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, required=True, help="a demo dataset folder with truth.csv")
    parser.add_argument("--db", type=Path, default=Path("/tmp/bench-cleaning.db"), help="database file (replaced)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--freeze-epochs", type=int, default=1)
    parser.add_argument("--cpu-threads", type=int, default=None)
    args = parser.parse_args()
    root = args.dataset.resolve()
    for stale in (args.db, Path(f"{args.db}-wal"), Path(f"{args.db}-shm")):
        stale.unlink(missing_ok=True)
    factory = make_session_factory(make_engine(args.db))
    dataset_id = scan_dataset(factory, root)["dataset_id"]
    config = TrainConfig(epochs=args.epochs, image_size=args.image_size, batch_size=args.batch_size,
                         freeze_backbone_epochs=args.freeze_epochs, cpu_threads=args.cpu_threads)
    before = train(factory, dataset_id, config)
    print(f"before: run {before['run_id']}, validation accuracy {before['metrics']['accuracy']:.3f} "
          f"in {before['seconds']:.0f} s", flush=True)

    with factory.begin() as session:
        audit_id = create_job(session, dataset_id, "audit", audit_params()).id
    started = time.perf_counter()
    audit_job(factory, audit_id, lambda fraction, message: None)
    audit_s = time.perf_counter() - started
    with factory.begin() as session:
        flags = open_flag_rows(session, audit_id, QueueFilter(kinds=ACCEPTABLE_KINDS))
        classes = dataset_classes(session, dataset_id)
        plan = plan_acceptance(flags)
        apply_plan(session, plan, classes=classes, reviewer="bench", note="accept the audit's suggestions")
    print(f"audit {audit_s:.0f} s: {len(flags)} flags to accept, {len(plan)} decisions", flush=True)

    after = train(factory, dataset_id, config)
    print(f"after: run {after['run_id']}, validation accuracy {after['metrics']['accuracy']:.3f} "
          f"in {after['seconds']:.0f} s", flush=True)
    truth = pd.read_csv(root / "truth.csv").set_index("path")
    with factory() as session:
        paths = samples_frame(session, dataset_id, include_missing=True).set_index("id")["path"]
    print(f"\ndecisions against the answer key: {decision_quality(plan, truth)}")
    print(f"training: {config.to_dict()}")
    table = comparisons(factory, before["run_id"], after["run_id"], truth, paths)
    with pd.option_context("display.width", 160):
        print(table.astype({c: float for c in ("before", "after", "change", "low", "high")}).round(3).to_string())

if __name__ == "__main__":
    main()
