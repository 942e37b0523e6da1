"""`listing-audit scan DATASET_DIR`: inspect every image and join listings.csv into the database."""
from __future__ import annotations

import argparse
from pathlib import Path

from cli.common import CliError, ProgressBar, add_db_option, add_format_option, open_db, print_json
from db.queries import get_or_create_dataset
from jobs.runner import create_job, job_result, run_job


def register(subparsers) -> None:
    parser = subparsers.add_parser("scan", help="scan a dataset folder into the database")
    parser.add_argument("dataset_dir", help="folder whose subfolders are classes")
    add_db_option(parser)
    add_format_option(parser)
    parser.add_argument("--workers", type=int, default=None, help="processes to use (default: all cores)")
    parser.set_defaults(func=run)


def format_summary(summary: dict) -> str:
    lines = [
        f"Dataset {summary['root']}",
        f"  {summary['images']} images in {len(summary['classes'])} classes "
        f"({summary['new']} new, {summary['updated']} changed, {summary['unchanged']} unchanged, "
        f"{summary['missing']} missing) in {summary['seconds']:.1f} s",
    ]
    width = max((len(c) for c in summary["classes"]), default=0)
    lines += [f"  {name:<{width}}  {count:>7}" for name, count in summary["classes"].items()]
    for name in summary["empty_classes"]:
        lines.append(f"  warning: class folder {name!r} has no images")
    lines.append(f"  unreadable: {len(summary['unreadable'])}")
    lines += [f"    {item['path']}: {item['reason']}" for item in summary["unreadable"]]
    if summary["listings_file"]:
        lines.append(f"  listings.csv rows matching no image: {summary['unmatched_listings']}")
        lines.append(f"  images without a listing row: {summary['images_without_listing']}")
    else:
        lines.append("  no listings.csv: prices and titles are empty")
    lines += [f"  listings.csv: {problem}" for problem in summary["listings_problems"]]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    if not Path(args.dataset_dir).is_dir():
        raise CliError(f"dataset folder does not exist or is not a folder: {args.dataset_dir}")
    factory = open_db(args)
    with factory.begin() as session:
        dataset = get_or_create_dataset(session, args.dataset_dir)
        job_id = create_job(session, dataset.id, "scan", {"root": dataset.root, "workers": args.workers}).id
    bar = ProgressBar("scanning")
    job = run_job(factory, job_id, echo=bar)
    if job.status != "succeeded":
        raise CliError(f"scan failed: {job.error}")
    summary = job_result(job)
    if args.format == "json":
        print_json(summary)
    else:
        print(format_summary(summary))
    return 0
