"""`listing-audit scan DATASET_DIR`: inspect every image and join listings.csv into the database."""
from __future__ import annotations

import argparse
from pathlib import Path

from cli.common import CliError, ProgressBar, add_db_option, add_format_option, open_db, print_json, shown
from cli.executor import add_executor_option, chosen_executor
from db.queries import get_or_create_dataset
from jobs.runner import create_job, job_result, run_job

#: The text summary lists at most this many unreadable files (--format json lists all).
MAX_LISTED_UNREADABLE = 20


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "scan", help="scan a dataset folder into the database",
        description="Decode-check, hash and measure every image of a dataset folder (one subfolder per class) "
                    "and join its listings.csv. Rescans only read new and changed files.",
    )
    parser.add_argument("dataset_dir", help="folder whose subfolders are classes")
    add_db_option(parser)
    add_format_option(parser)
    parser.add_argument("--workers", type=positive_int, default=None,
                        help="processes to use (default: all cores); with --executor ray, most Ray tasks at a time")
    add_executor_option(parser)
    parser.set_defaults(func=run)


def _count(number: int, noun: str, plural: str = "") -> str:
    return f"{number:,} {noun if number == 1 else plural or noun + 's'}"


def format_summary(summary: dict) -> str:
    """The scan summary as text for a terminal: counts, classes, unreadable and skipped files, listings.csv join."""
    classes = summary["classes"]
    unreadable = summary["unreadable"]
    lines = [
        f"Scanned {shown(summary['root'])} in {summary['seconds']:.1f} s",
        f"  {_count(summary['images'], 'image')} in {_count(len(classes), 'class', 'classes')}: "
        f"{summary['new']:,} new, {summary['updated']:,} changed, {summary['unchanged']:,} unchanged",
    ]
    if summary["missing"]:
        lines.append(f"  {_count(summary['missing'], 'file')} seen before no longer on disk (kept, marked missing)")
    lines.append("")
    if not classes:
        lines.append("  no class folders: a dataset folder holds one subfolder per class, each with its images")
    width = max([len("class"), *(len(shown(name)) for name in classes)])
    lines.append(f"  {'class':<{width}}  {'images':>7}")
    for name, count in classes.items():
        note = "  <- empty folder" if name in summary["empty_classes"] else ""
        lines.append(f"  {shown(name):<{width}}  {count:>7,}{note}")
    lines.append("")
    if unreadable:
        lines.append(f"Unreadable: {_count(len(unreadable), 'file')} (kept in the database, flagged as broken)")
        lines += [f"  {shown(item['path'])}: {shown(item['reason'])}" for item in unreadable[:MAX_LISTED_UNREADABLE]]
        if len(unreadable) > MAX_LISTED_UNREADABLE:
            lines.append(f"  ... and {len(unreadable) - MAX_LISTED_UNREADABLE:,} more (--format json lists all)")
    else:
        lines.append("Unreadable: none")
    if summary["warnings"]:
        lines.append("Not scanned:")
        lines += [f"  {shown(warning)}" for warning in summary["warnings"]]
    if summary.get("decision_notes"):
        lines.append("Review decisions:")
        lines += [f"  {shown(note)}" for note in summary["decision_notes"]]
    if summary["listings_file"]:
        lines.append("listings.csv:")
        lines.append(f"  rows matching no image: {summary['unmatched_listings']:,}")
        lines.append(f"  images without a row: {summary['images_without_listing']:,}")
        lines += [f"  problem: {shown(problem)}" for problem in summary["listings_problems"]]
    else:
        lines.append("listings.csv: none in the folder, so no prices or titles")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    if not Path(args.dataset_dir).is_dir():
        raise CliError(f"dataset folder does not exist or is not a folder: {args.dataset_dir}")
    executor = chosen_executor(args)
    factory = open_db(args)
    with factory.begin() as session:
        dataset = get_or_create_dataset(session, args.dataset_dir)
        params = {"root": dataset.root, "workers": args.workers, "executor": executor}
        job_id = create_job(session, dataset.id, "scan", params).id
    bar = ProgressBar("scanning")
    try:
        job = run_job(factory, job_id, echo=bar)
    except KeyboardInterrupt:
        bar.close()
        raise
    if job.status != "succeeded":
        bar.close()
        reason = (job.error or job.status).split("\n\n", 1)[0]  # the error line, not its traceback
        raise CliError(f"scan {job.status}: {reason}")
    summary = job_result(job)
    if args.format == "json":
        print_json(summary)
    else:
        print(format_summary(summary))
    return 0
