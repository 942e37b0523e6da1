"""`listing-audit history DATASET_DIR [--format text|csv|json]`: the review decisions log, oldest first."""
from __future__ import annotations

import argparse

from cli.common import add_db_option, add_format_option, open_db, print_csv, print_json, require_dataset, shown
from db.corrections import LOG_COLUMNS, describe_change
from db.review import HistoryFilter, history_frame


def register(subparsers) -> None:
    parser = subparsers.add_parser("history", help="print the log of review decisions")
    parser.add_argument("dataset_dir", help="the dataset folder (as scanned)")
    parser.add_argument("--reviewer", action="append", default=[], help="only this reviewer's decisions (repeatable)")
    parser.add_argument("--class", dest="classes", action="append", default=[],
                        help="only decisions whose label before or after is this class (repeatable)")
    parser.add_argument("--action", action="append", default=[],
                        choices=["relabel", "delete", "keep", "restore", "undo"], help="only this action (repeatable)")
    add_db_option(parser)
    add_format_option(parser, ("text", "csv", "json"))
    parser.set_defaults(func=run)


def format_text(rows: list[dict]) -> str:
    if not rows:
        return "no decisions yet"
    lines = []
    for row in rows:
        change = shown(describe_change(row, arrow="->"))
        note = f"  # {shown(row['note'])}" if row["note"] else ""
        lines.append(f"{row['id']:>6}  {row['created_at']:%Y-%m-%d %H:%M:%S}  {shown(row['reviewer']) or '-':<12} "
                     f"{row['action']:<8} {shown(row['path'])}: {change}{note}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    factory = open_db(args)
    with factory() as session:
        dataset = require_dataset(session, args.dataset_dir)
        frame = history_frame(session, dataset.id, HistoryFilter(
            reviewers=tuple(args.reviewer), classes=tuple(args.classes), actions=tuple(args.action),
        ), newest_first=False)
    rows = frame.astype(object).where(frame.notna(), None).to_dict("records")
    if args.format == "json":
        print_json([{**row, "created_at": row["created_at"].isoformat()} for row in rows])
    elif args.format == "csv":
        print_csv([{**row, "created_at": row["created_at"].isoformat()} for row in rows], LOG_COLUMNS)
    else:
        print(format_text(rows))
    return 0
