"""`listing-audit export DATASET_DIR --out DIR [--mode copy|symlink|manifest]`: write the cleaned dataset.

ImageFolder layout under --out: relabelled images under their new class;
deleted, unreadable and missing images left out; manifest.csv and summary.json.
The source folder is never modified. --out must be absent or empty, or hold an
earlier export (recognised by its marker file), which --overwrite replaces.
"""
from __future__ import annotations

import argparse

from cli.common import CliError, ProgressBar, add_db_option, add_format_option, open_db, print_json, require_dataset
from core.export.plan import EXPORT_MODES, ExportError, format_summary
from jobs.export import export_dataset


def register(subparsers) -> None:
    parser = subparsers.add_parser("export", help="write the cleaned dataset (ImageFolder layout) and a manifest")
    parser.add_argument("dataset_dir", help="the dataset folder (as scanned)")
    parser.add_argument("--out", required=True, help="folder to write the export to (absent or empty)")
    parser.add_argument("--mode", choices=EXPORT_MODES, default="copy",
                        help="copy the images, symlink them, or write the manifest only (default: copy)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an earlier export in --out: only the files it wrote are removed "
                             "(a non-empty folder without an export of ours is refused)")
    add_db_option(parser)
    add_format_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    factory = open_db(args)
    with factory() as session:
        dataset_id = require_dataset(session, args.dataset_dir).id
    bar = ProgressBar("exporting")
    try:
        summary = export_dataset(factory, dataset_id, out=args.out, mode=args.mode, overwrite=args.overwrite,
                                 progress=bar)
    except ExportError as error:
        raise CliError(str(error)) from error
    if args.format == "json":
        print_json(summary)
    else:
        print(f"Exported to {summary['out']} ({summary['mode']})")
        print(format_summary(summary))
        for path in summary["failed"]:
            print(f"  warning: {path} vanished since the scan and was not exported")
        for path in summary["refused_outside"]:
            print(f"  warning: {path} now leads outside the dataset folder and was not exported")
    return 0
