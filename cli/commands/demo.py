"""`listing-audit demo`: build the demo dataset, Fashion-MNIST drawn as listing photos with planted problems.

Prints what was planted; truth.csv in the dataset is the answer key.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from cli.common import CliError, ProgressBar
from core.demo import DEFAULT_NOISE_RATE, DEFAULT_PER_CLASS, DEFAULT_SOURCE, DemoError, DemoReport, build_demo

DEFAULT_OUT = Path("data/demo")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="build the demo dataset (Fashion-MNIST listing photos with planted problems)",
        description="Build a demo dataset: class folders of listing photos, listings.csv, and truth.csv, "
                    "the answer key to the planted mislabels, duplicates, price typos and broken files.",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default: {DEFAULT_OUT})")
    parser.add_argument("--per-class", type=int, default=DEFAULT_PER_CLASS,
                        help=f"listing photos per class (default: {DEFAULT_PER_CLASS})")
    parser.add_argument("--seed", type=int, default=0, help="random seed; the same seed builds the same files")
    parser.add_argument("--noise-rate", type=float, default=DEFAULT_NOISE_RATE,
                        help=f"share of photos put in a wrong, confusable class (default: {DEFAULT_NOISE_RATE})")
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE,
                        help=f"folder with the Fashion-MNIST idx .gz files (default: {DEFAULT_SOURCE})")
    parser.add_argument("--overwrite", action="store_true", help="replace a previous demo at --out")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        report = build_demo(
            args.out, source_dir=args.source, per_class=args.per_class, seed=args.seed,
            noise_rate=args.noise_rate, overwrite=args.overwrite, progress=ProgressBar("demo"),
        )
    except DemoError as error:
        raise CliError(str(error)) from error
    except OSError as error:
        raise CliError(f"could not build the demo in {args.out}: {error}") from error
    print(format_report(report))
    return 0


def format_report(report: DemoReport) -> str:
    """A few lines saying where the demo is and what was planted in it."""
    kinds = ", ".join(f"{count} {kind}" for kind, count in report.duplicate_kinds.items())
    return "\n".join([
        f"Built demo dataset in {report.path} ({report.seconds:.1f} s)",
        f"  {report.photos:,} listing photos in {len(report.classes)} class folders, "
        f"{report.files:,} files in all (rows of listings.csv)",
        f"  mislabelled:  {report.planted_mislabels:,} photos in a confusable class's folder",
        f"  duplicates:   {report.duplicates:,} re-uploads ({kinds}); "
        f"{report.label_conflicts:,} of them in another class's folder",
        f"  price typos:  {report.price_typos:,}",
        f"  broken files: {report.broken:,}",
        f"  answer key:   {report.path / 'truth.csv'}",
    ])
