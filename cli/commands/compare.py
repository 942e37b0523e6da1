"""`listing-audit compare RUN_A RUN_B [--labels current|verified] [--format text|json]`: two training runs on
common ground (the images both scored, one set of labels), each change with its bootstrap interval."""
from __future__ import annotations

import argparse

from cli.common import CliError, add_db_option, add_format_option, open_db, print_json, shown
from core.train.compare import OVERALL, RunComparison
from db.evaluation import LABEL_SOURCE_TEXT, LABEL_SOURCES, compare_runs
from db.runs import run_by_number

OVERALL_NAMES = {"accuracy": "accuracy", "macro_precision": "macro precision", "macro_recall": "macro recall",
                 "macro_f1": "macro F1"}


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "compare", help="compare two training runs on the images both scored, against one set of labels",
        description="Score two runs' stored validation predictions against the same labels on the images both "
                    "evaluated, with a paired bootstrap interval for every change.",
    )
    parser.add_argument("run_a", type=int, help="the baseline run's number (for example before a cleaning round)")
    parser.add_argument("run_b", type=int, help="the number of the run to compare with it")
    parser.add_argument("--labels", choices=LABEL_SOURCES, default="current",
                        help="today's labels after every review decision (current), or only the listings a "
                             "reviewer relabelled or kept (verified)")
    add_db_option(parser)
    add_format_option(parser)
    parser.set_defaults(func=run)


def _change(row) -> str:
    return f"{row.before:.3f} → {row.after:.3f}  {row.change:+.3f} [{row.low:+.3f}, {row.high:+.3f}]"


def format_text(comparison: RunComparison, run_a: int, run_b: int, labels: str) -> str:
    lines = [comparison.ground(run_a, run_b, LABEL_SOURCE_TEXT[labels]), ""]
    if not comparison.images:
        return lines[0]
    table = comparison.changes
    for row in table[table["row"] == OVERALL].itertuples():
        lines.append(f"{OVERALL_NAMES[row.metric]:<16} {_change(row)}")
    lines += ["", "per class (F1; change and interval):"]
    per_class = table[(table["row"] != OVERALL) & (table["metric"] == "f1")]
    width = max(len(shown(name)) for name in per_class["row"])
    for row in per_class.itertuples():
        lines.append(f"{shown(row.row):<{width}}  {row.support:>6} images  {_change(row)}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    factory = open_db(args)
    with factory() as session:
        runs = [run_by_number(session, number) for number in (args.run_a, args.run_b)]
        for number, found in zip((args.run_a, args.run_b), runs):
            if found is None:
                raise CliError(f"no training run {number}")
        try:
            comparison = compare_runs(session, runs[0].id, runs[1].id, labels=args.labels)
        except ValueError as error:
            raise CliError(str(error)) from error
    if args.format == "json":
        print_json({"run_a": args.run_a, "run_b": args.run_b, "labels": args.labels, **comparison.as_dict()})
    else:
        print(format_text(comparison, args.run_a, args.run_b, args.labels))
    return 0
