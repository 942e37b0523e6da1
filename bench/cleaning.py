"""The whole cleaning loop on a demo dataset: train, audit, accept the audit's suggestions, retrain,
and score both runs against the demo's answer key.

Usage: python bench/cleaning.py --dataset DEMO_DIR [--db PATH] [--epochs 3] [--image-size 96]
                                [--batch-size 64] [--freeze-epochs 1] [--cpu-threads N]

1. Scan the demo into a fresh database and train the "before" run on the folder labels.
2. Audit it (every check, defaults) and accept what the audit says, as `listing-audit accept` does
   (core.acceptance): relabel every mislabel flag to its suggested label, keep one member of each
   duplicate group (one not flagged as a mislabel where there is one) and delete the others,
   delete broken files. One action (db.review.apply_plan).
3. Train the "after" run with the same configuration and seed.
4. Score both runs' validation predictions against their own labels (what the Metrics page shows)
   and against truth.csv on the validation images the two runs share, and the decisions
   themselves against the answer key.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.acceptance import ACCEPTABLE_KINDS, plan_acceptance  # noqa: E402
from core.metrics import classification_report  # noqa: E402
from core.train_config import TrainConfig  # noqa: E402
from db.engine import make_engine, make_session_factory  # noqa: E402
from db.queries import dataset_classes, samples_frame  # noqa: E402
from db.review import QueueFilter, apply_plan, open_flag_rows  # noqa: E402
from db.runs import get_run, run_result  # noqa: E402
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
    """How many relabels of a core.acceptance plan named the true class, and how many deletions removed a
    broken file or one member of a planted duplicate pair (the copy or its original: either may be kept)."""
    relabels = plan[plan["action"] == "relabel"]
    right = (truth.loc[relabels["path"], "true_label"].to_numpy() == relabels["new_label"].to_numpy()).sum()
    deletions = plan[plan["action"] == "delete"]
    planted = set(truth.index[(truth["is_duplicate"] == 1) | (truth["is_broken"] == 1)])
    planted |= set(truth["duplicate_of"].dropna())
    return {"relabels": len(relabels), "relabels_to_true_class": int(right), "deletions": len(deletions),
            "deletions_of_broken_or_duplicated_files": int(deletions["path"].isin(planted).sum())}


def scored(result: dict, classes: list[str], paths: pd.Series, truth: pd.DataFrame, shared: set[int]) -> dict:
    """Accuracy and macro F1 of a run's validation predictions against its own labels, and against the
    true labels on the `shared` validation sample ids."""
    validation = result["validation"]
    ids = np.asarray(validation["sample_ids"])
    pred = np.asarray(validation["pred"])
    own = result["metrics"]
    keep = np.isin(ids, list(shared))
    index = {name: k for k, name in enumerate(classes)}
    true = np.array([index[truth.at[paths[int(i)], "true_label"]] for i in ids[keep]])
    against_truth = classification_report(true, pred[keep], classes)
    return {"images": len(ids), "own_accuracy": own["accuracy"], "own_macro_f1": own["macro_avg"]["f1"],
            "shared_images": int(keep.sum()), "true_accuracy": against_truth["accuracy"],
            "true_macro_f1": against_truth["macro_avg"]["f1"], "seconds": result["seconds"]}


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
    truth = pd.read_csv(root / "truth.csv").set_index("path")
    with factory() as session:
        paths = samples_frame(session, dataset_id, include_missing=True).set_index("id")["path"]
    shared = set(before["validation"]["sample_ids"]) & set(after["validation"]["sample_ids"])
    rows = {"before (folder labels)": scored(before, classes, paths, truth, shared),
            "after (audit accepted)": scored(after, classes, paths, truth, shared)}
    print(f"\ndecisions against the answer key: {decision_quality(plan, truth)}")
    print(f"training: {config.to_dict()}")
    print(pd.DataFrame(rows).T.round(3).to_string())


if __name__ == "__main__":
    main()
