"""`listing-audit audit DATASET_DIR`: run the audit checks on a scanned dataset and print a summary per kind.

The same job code path as the app (an `audit` job run in the foreground). The
dataset must have been scanned into the database first (`listing-audit scan`).
"""
from __future__ import annotations

import argparse
import sys

from typing import Optional

import pandas as pd
from sqlalchemy.orm import Session

from cli.common import CliError, ProgressBar, add_db_option, add_format_option, open_db, print_json, require_dataset
from cli.executor import add_executor_option, chosen_executor
from core.audit.run import available_checks
from db.flags import class_flag_counts
from db.runs import latest_out_of_fold_run, run_by_number, run_result
from jobs.audit import AuditError, audit_params
from jobs.runner import create_job, job_result, run_job


NOISIEST_SHOWN = 5


def register(subparsers) -> None:
    checks = ",".join(available_checks())
    parser = subparsers.add_parser("audit", help="find mislabels, price outliers, duplicates, broken and poor images")
    parser.add_argument("dataset_dir", help="the dataset folder (scanned before)")
    add_db_option(parser)
    parser.add_argument("--checks", default=None,
                        help=f"comma-separated checks to run (default: all: {checks})")
    parser.add_argument("--folds", type=int, default=None, help="cross-validation folds of the mislabel check")
    parser.add_argument("--backbone", default=None, help="image backbone of the mislabel check")
    parser.add_argument("--mislabel-source", choices=("embeddings", "finetune", "run"), default="embeddings",
                        help="where the mislabel check's out-of-fold probabilities come from: cached backbone "
                             "embeddings and cross-validated classifiers (default); K networks fine-tuned on the "
                             "photos (slow without a GPU); or a K-fold training run (`listing-audit train --folds K`)")
    parser.add_argument("--run", type=int, default=None, metavar="RUN",
                        help="with --mislabel-source run: the training run (default: the newest with "
                             "out-of-fold probabilities)")
    parser.add_argument("--members", default=None,
                        help="comma-separated evidence of the mislabel check (default: all that the data has: "
                             "photo,crop,pixels,title,price); each one's weight is fitted on the dataset")
    parser.add_argument("--no-price-evidence", action="store_true",
                        help="judge labels by the photos alone (by default a price that fits another class "
                             "counts as mislabel evidence)")
    add_executor_option(parser)
    add_format_option(parser)
    parser.set_defaults(func=run)


def format_summary(number: int, root: str, result: dict, classes: pd.DataFrame) -> str:
    """The text summary of audit `number`: flags and time per check, then the noisiest classes
    (`classes`: db.flags.class_flag_counts)."""
    lines = [
        f"Audit {number} of {root}: {result['samples']} samples, {len(result['classes'])} classes, "
        f"{result['flags']} flags in {result['seconds']:.1f} s",
        f"  {'check':<10} {'flags':>6} {'seconds':>8}",
    ]
    for name, summary in result["checks"].items():
        if "error" in summary:
            lines.append(f"  {name:<10} {'failed':>6} {summary['seconds']:>8.1f}   {summary['error']}")
            continue
        lines.append(f"  {name:<10} {summary['flags']:>6} {summary['seconds']:>8.1f}{_details(name, summary)}")
        lines += [f"  warning: {warning}" for warning in summary.get("warnings", [])]
    noisy = classes[classes["flagged_samples"] > 0].head(NOISIEST_SHOWN)
    if not noisy.empty:
        lines.append("  noisiest classes (share of samples with any flag):")
        lines += [f"    {row.Index:<16} {row.flagged_share:6.1%}  ({row.flagged_samples} of {row.samples})"
                  for row in noisy.itertuples()]
    return "\n".join(lines)


def interval_text(summary: dict) -> str:
    """", 95% interval 51-142" from a mislabel summary's estimated_interval; "" without one."""
    interval = summary.get("estimated_interval")
    return f", 95% interval {interval[0]}-{interval[1]}" if interval else ""


def _details(name: str, summary: dict) -> str:
    if name == "mislabel" and summary.get("members"):
        weights = ", ".join(f"{member} {values['weight']:.2f}" for member, values in summary["members"].items())
        return (f"   estimated noise {summary['estimated_noise_rate']:.1%} "
                f"({summary['estimated_issues']} listings{interval_text(summary)}); evidence weights: {weights}")
    if name == "duplicate":
        return f"   {summary['groups']} groups, {summary['label_conflict_groups']} with conflicting labels"
    if name == "price":
        from core.audit.checks.price import expected_price_text  # scikit-learn: only once an audit has run

        model = expected_price_text(summary)
        return (f"   {summary['without_price']} without a price"
                + (f", {summary['explained_by_mislabel']} odd prices explained by a mislabel"
                   if summary.get("used_mislabel_result") else "") + (f"\n   {model}" if model else ""))
    if name == "quality":
        found = ", ".join(f"{issue.replace('_', ' ')} {count}" for issue, count in summary["by_issue"].items() if count)
        return f"   {found}" if found else ""
    return ""


def mislabel_options(session: Session, dataset_id: int, args: argparse.Namespace) -> dict:
    """The mislabel check's options from the command line; CliError when the chosen run has no
    out-of-fold probabilities."""
    options: dict = {"use_price": False} if args.no_price_evidence else {}
    if args.members:
        options["members"] = [name.strip() for name in args.members.split(",") if name.strip()]
    if args.mislabel_source == "run":
        options.update(source="run", run_dir=out_of_fold_run_dir(session, dataset_id, args.run))
    elif args.mislabel_source == "finetune":
        options.update(source="finetune")
    return options


def out_of_fold_run_dir(session: Session, dataset_id: int, run_id: Optional[int]) -> str:
    """The folder of training run `run_id` (None: the newest) holding out-of-fold probabilities."""
    if run_id is None:
        folder = latest_out_of_fold_run(session, dataset_id)
        if folder is None:
            raise CliError("no finished training run of this dataset has out-of-fold probabilities; "
                           "train one with `listing-audit train DATASET_DIR --folds 5`")
        return folder
    run = run_by_number(session, run_id)
    if run is None or run.dataset_id != dataset_id:
        raise CliError(f"run {run_id} is not a training run of this dataset")
    result = run_result(run)
    if not result.get("out_of_fold"):
        raise CliError(f"run {run_id} has no out-of-fold probabilities (it was not trained with --folds)")
    return result["out_dir"]


def run(args: argparse.Namespace) -> int:
    if args.folds is not None and args.folds < 2:
        raise CliError("--folds must be at least 2")
    checks = args.checks.split(",") if args.checks else None
    try:
        params = audit_params(checks=checks, folds=args.folds, backbone=args.backbone,
                              executor=chosen_executor(args))
    except AuditError as error:
        raise CliError(str(error)) from error
    if args.run is not None and args.mislabel_source != "run":
        raise CliError("--run needs --mislabel-source run")
    factory = open_db(args)
    with factory.begin() as session:
        dataset = require_dataset(session, args.dataset_dir)
        if dataset.scanned_at is None:
            raise CliError(f"{args.dataset_dir} has not been scanned; run `listing-audit scan {args.dataset_dir}` first")
        root = dataset.root
        mislabel = mislabel_options(session, dataset.id, args)
        if mislabel:
            params["options"] = {"mislabel": mislabel}
        job = create_job(session, dataset.id, "audit", params)
        job_id, number = job.id, job.number
    bar = ProgressBar(f"audit {number}")
    job = run_job(factory, job_id, echo=bar)
    bar.close()
    if job.status != "succeeded":
        first_line = (job.error or "").splitlines()[0] if job.error else ""
        raise CliError(f"audit {number} {job.status}: {first_line}")
    result = job_result(job)
    if args.format == "json":
        print_json({"audit": number, **result})
        return failed_checks_status(result)
    with factory() as session:
        classes = class_flag_counts(session, job_id)
    print(format_summary(number, root, result, classes))
    return failed_checks_status(result)


def failed_checks_status(result: dict) -> int:
    """Exit status 1 when a check failed (its error is printed on stderr; the other checks' flags are
    stored), else 0."""
    for name, error in (result.get("failed_checks") or {}).items():
        print(f"error: the {name} check failed, the other checks' flags are kept: {error}", file=sys.stderr)
    return 1 if result.get("failed_checks") else 0
