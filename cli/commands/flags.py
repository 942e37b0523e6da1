"""`listing-audit flags DATASET_DIR`: one row per flag of an audit (default: the latest succeeded one), worst first.

Each row says how sure the audit is that the flag is a real problem (1 - its score), as the Review page does.
"""
from __future__ import annotations

import argparse
import json
import math

from cli.common import CliError, add_db_option, open_db, print_csv, print_json, require_dataset
from core.audit.run import CHECK_ORDER
from core.audit.checks.base import PAST_BUDGET_MISLABEL, sure_text
from db.flags import flags_frame
from db.queries import job_by_number
from db.review import latest_audit_job

COLUMNS = ["path", "kind", "sure", "given_label", "suggested_label", "group", "reason", "sample_id", "flag_id",
           "audit"]


def register(subparsers) -> None:
    parser = subparsers.add_parser("flags", help="list the flags of an audit, worst first")
    parser.add_argument("dataset_dir", help="the dataset folder (scanned and audited before)")
    add_db_option(parser)
    parser.add_argument("--kind", default=None, help="only flags of this kind (mislabel, price, duplicate, ...; "
                        "maybe_mislabel: the ranking past a weak mislabel budget)")
    parser.add_argument("--job", type=int, default=None,
                        help="the audit's number (default: the latest succeeded audit)")
    parser.add_argument("--format", choices=("csv", "json"), default="csv", help="output format (default: csv)")
    parser.add_argument("--evidence", action="store_true", help="add each flag's evidence (JSON) as a column")
    parser.set_defaults(func=run)


def _blank(value) -> object:
    """None and NaN as an empty cell."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return value


def flag_rows(frame, *, audit: int, with_evidence: bool) -> list[dict]:
    """Output rows: COLUMNS (and `evidence`), with empty strings where a value is absent; `sure` is the
    flag's score as the Review page shows it (core.audit.checks.base.sure_text, e.g. "0.934"); `audit` the
    audit's number."""
    rows = []
    for record in frame.to_dict("records"):
        values = {**record, "sure": sure_text(record["score"]), "audit": audit}
        row = {column: _blank(values[column]) for column in COLUMNS}
        if row["group"] != "":
            row["group"] = int(row["group"])
        if with_evidence:
            row["evidence"] = record["evidence"]
        rows.append(row)
    return rows


def run(args: argparse.Namespace) -> int:
    kinds = [*CHECK_ORDER, PAST_BUDGET_MISLABEL]
    if args.kind is not None and args.kind not in kinds:
        raise CliError(f"unknown kind {args.kind!r}; kinds are: {', '.join(kinds)}")
    factory = open_db(args)
    with factory() as session:
        dataset = require_dataset(session, args.dataset_dir)
        if args.job is None:
            job = latest_audit_job(session, dataset.id)
            if job is None:
                raise CliError(f"{args.dataset_dir} has no finished audit; run `listing-audit audit {args.dataset_dir}`")
        else:
            job = job_by_number(session, "audit", args.job)
            if job is None or job.dataset_id != dataset.id:
                raise CliError(f"audit {args.job} is not an audit of {args.dataset_dir}")
            if job.status != "succeeded":
                raise CliError(f"audit {args.job} is {job.status}; it has no complete set of flags")
        frame = flags_frame(session, job.id, kind=args.kind)
        number = job.number
    rows = flag_rows(frame, audit=number, with_evidence=args.evidence)
    if args.format == "json":
        print_json(rows)
    else:
        if args.evidence:
            for row in rows:
                row["evidence"] = json.dumps(row["evidence"], sort_keys=True)
        print_csv(rows, COLUMNS + (["evidence"] if args.evidence else []))
    return 0
