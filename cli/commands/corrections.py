"""`listing-audit corrections export|import`: move review work between machines as a CSV of the decisions log.

Import matches images by path, replays each decision through the same checks as
the app, skips decisions already in the log (importing twice adds nothing) and
reports every row it skipped and why.
"""
from __future__ import annotations

import argparse
import csv
import io
import sys
from pathlib import Path

from cli.common import CliError, add_db_option, add_format_option, open_db, print_json, require_dataset
from db.corrections import DecisionError, import_corrections_csv, write_corrections_csv
from db.engine import write_transaction
from db.queries import dataset_classes


def register(subparsers) -> None:
    parser = subparsers.add_parser("corrections", help="export or import the review decisions as CSV")
    commands = parser.add_subparsers(dest="corrections_command", required=True, metavar="{export,import}")
    export = commands.add_parser("export", help="write the whole decisions log as CSV")
    export.add_argument("dataset_dir", help="the dataset folder (as scanned)")
    export.add_argument("--out", type=Path, default=None, help="CSV file to write (default: standard output)")
    add_db_option(export)
    export.set_defaults(func=run_export)
    load = commands.add_parser("import", help="replay a decisions CSV written by `corrections export`")
    load.add_argument("dataset_dir", help="the dataset folder (as scanned)")
    load.add_argument("csv_file", type=Path, help="the CSV file")
    add_db_option(load)
    add_format_option(load)
    load.set_defaults(func=run_import)


def run_export(args: argparse.Namespace) -> int:
    factory = open_db(args)
    with factory() as session:
        dataset = require_dataset(session, args.dataset_dir)
        if args.out is None:
            write_corrections_csv(session, dataset.id, sys.stdout)
            return 0
        with args.out.open("w", newline="", encoding="utf-8") as stream:
            count = write_corrections_csv(session, dataset.id, stream)
    print(f"wrote {count} decisions to {args.out}", file=sys.stderr)
    return 0


def run_import(args: argparse.Namespace) -> int:
    if not args.csv_file.is_file():
        raise CliError(f"no such file: {args.csv_file}")
    try:
        text = args.csv_file.read_bytes().decode("utf-8")  # line ends kept for the CSV reader
    except UnicodeDecodeError as error:
        raise CliError(f"cannot import {args.csv_file}: {error}") from error
    factory = open_db(args)

    def add_decisions(session):
        dataset = require_dataset(session, args.dataset_dir)
        try:
            return import_corrections_csv(session, dataset.id, io.StringIO(text, newline=""),
                                          classes=dataset_classes(session, dataset.id))
        except (DecisionError, csv.Error) as error:
            raise CliError(f"cannot import {args.csv_file}: {error}") from error

    report = write_transaction(factory, add_decisions)
    skipped = [{"line": line, "path": path, "reason": reason} for line, path, reason in report.skipped]
    if args.format == "json":
        print_json({"added": report.added, "skipped": skipped})
    else:
        print(f"added {report.added} decisions, skipped {len(skipped)}")
        for item in skipped:
            print(f"  line {item['line']}: {item['path']}: {item['reason']}")
    return 0
