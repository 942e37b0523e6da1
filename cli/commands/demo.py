"""`listing-audit demo`: build the demo dataset, listing photos with planted problems and an answer key.

Three styles: "photos" (default: colour items on tables, floors and beds), "sketches" (the same listings as
pencil drawings) and "fashion" (Fashion-MNIST).
Prints what was planted; truth.csv in the dataset is the answer key.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from cli.common import CliError, ProgressBar
from core.demo.styles import DEFAULT_STYLE, DemoError
from core.demo.build import STYLES, DemoReport, build_demo

DEFAULT_OUT = Path("data/demo")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="build the demo dataset (listing photos with planted problems and an answer key)",
        description="Build a demo dataset: class folders of listing photos, listings.csv, and truth.csv, "
                    "the answer key to the planted mislabels, duplicates, price typos and broken files.",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default: {DEFAULT_OUT})")
    parser.add_argument("--style", choices=sorted(STYLES), default=DEFAULT_STYLE,
                        help="photos: colour items on tables, floors and beds, 320-900 px (default); "
                             "sketches: the same listings drawn as pencil sketches; "
                             "fashion: Fashion-MNIST items on a plain background, 224 px")
    parser.add_argument("--classes", choices=("broad", "fine"), default="broad",
                        help="photos and sketches styles: 9 broad classes (default) or 24 fine ones, a harder dataset")
    parser.add_argument("--per-class", type=int, default=None,
                        help="listing photos per class (default: about 5,000 photos in all)")
    parser.add_argument("--seed", type=int, default=0, help="random seed; the same seed builds the same files")
    parser.add_argument("--noise-rate", type=float, default=None,
                        help="share of photos put in a wrong class's folder (default: 0.10 photos, 0.08 fashion)")
    parser.add_argument("--no-titles", action="store_true",
                        help="leave every title in listings.csv empty (same photos and labels)")
    parser.add_argument("--label-titles", action="store_true",
                        help="every title only repeats the folder's class (\"coat for sale\"), as sellers write "
                             "titles from the category they picked")
    parser.add_argument("--misfiled-items", action="store_true",
                        help="plant the mislabels as whole kinds of item misfiled together (most of one kind's "
                             "listings in one wrong folder, as a seller's habit), not one listing at a time")
    parser.add_argument("--no-prices", action="store_true",
                        help="leave every price in listings.csv empty (same photos and labels)")
    parser.add_argument("--source", type=Path, default=None,
                        help="folder the style draws from (default: /usr/share/tuxpaint/stamps for photos, "
                             "/usr/share/datasets/fashion-mnist for fashion)")
    parser.add_argument("--overwrite", action="store_true", help="replace a previous demo at --out")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        report = build_demo(
            args.out, style=args.style, classes=args.classes, source_dir=args.source, per_class=args.per_class,
            seed=args.seed, noise_rate=args.noise_rate, titles=not args.no_titles,
            label_titles=args.label_titles, prices=not args.no_prices, misfiled_items=args.misfiled_items,
            overwrite=args.overwrite, progress=ProgressBar("demo"),
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
        f"  {report.photos:,} listing photos ({report.style}) in {len(report.classes)} class folders, "
        f"{report.files:,} files in all (rows of listings.csv)",
        f"  mislabelled:  {report.planted_mislabels:,} photos in a wrong class's folder",
        f"  duplicates:   {report.duplicates:,} re-uploads ({kinds}); "
        f"{report.label_conflicts:,} of them in another class's folder",
        f"  price typos:  {report.price_typos:,}",
        f"  broken files: {report.broken:,}",
        f"  answer key:   {report.path / 'truth.csv'}",
    ])
