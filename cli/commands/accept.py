"""`listing-audit accept DATASET_DIR`: accept the latest audit's suggestions as one undoable action.

Relabels mislabel flags to their suggested class, keeps one member of each duplicate group and
deletes the rest, deletes broken files (core.audit.acceptance). A relabel carries to the listing's open
copies under the same label in the audit's duplicate groups (db.review.carry_to_copies). Only open
flags count: a sample decided on since the audit keeps that decision. All decisions go through db.corrections.decide_many as one
batch, so `--undo` (or the Review page's undo) reverts them together. --dry-run shows the plan.
"""
from __future__ import annotations

import argparse
from typing import Optional

import pandas as pd

from cli.commands.correct import chosen_reviewer
from cli.common import CliError, add_db_option, add_format_option, open_db, print_json, require_dataset
from core.audit.acceptance import ACCEPTABLE_KINDS, plan_acceptance
from db.corrections import DecisionError, undo_last_action
from db.engine import write_transaction
from db.models import Job
from db.queries import dataset_classes, job_by_number
from db.review import QueueFilter, apply_plan, latest_audit_job, open_flag_rows

SHOWN_IN_DRY_RUN = 20


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "accept", help="accept the latest audit's suggestions (relabel, delete duplicates and broken files)",
        description="Accept the open flags of the latest audit as one action: relabel mislabels to their "
                    "suggested class, keep one image of each duplicate group and delete the others, delete "
                    "broken files. Source files are never touched; --undo reverts the whole action.",
    )
    parser.add_argument("dataset_dir", help="the dataset folder (scanned and audited before)")
    parser.add_argument("--kinds", default=",".join(ACCEPTABLE_KINDS),
                        help=f"comma-separated kinds of flag to accept (default: {','.join(ACCEPTABLE_KINDS)})")
    parser.add_argument("--max-score", type=float, default=1.0,
                        help="accept only flags scored at most this (lower is more certain; default 1)")
    parser.add_argument("--job", type=int, default=None, help="the audit's number (default: the latest)")
    parser.add_argument("--dry-run", action="store_true", help="show what would be decided; change nothing")
    parser.add_argument("--undo", action="store_true", help="revert the reviewer's last action instead")
    parser.add_argument("--reviewer", default=None, help="who decides (default: your login name)")
    parser.add_argument("--note", default="accepted the audit's suggestions", help="stored with each decision")
    add_db_option(parser)
    add_format_option(parser)
    parser.set_defaults(func=run)


def chosen_kinds(text: str) -> tuple[str, ...]:
    kinds = tuple(dict.fromkeys(kind.strip() for kind in text.split(",") if kind.strip()))
    unknown = sorted(set(kinds) - set(ACCEPTABLE_KINDS))
    if not kinds or unknown:
        raise CliError(f"--kinds takes {', '.join(ACCEPTABLE_KINDS)}" + (f"; not {', '.join(unknown)}" if unknown else ""))
    return kinds


def audit_job_of(session, dataset_id: int, number: Optional[int]) -> Job:
    """The dataset's audit named `number`, or its latest finished one; CliError unless it finished."""
    job = latest_audit_job(session, dataset_id) if number is None else job_by_number(session, "audit", number)
    if job is None or job.dataset_id != dataset_id or job.status != "succeeded":
        raise CliError("no finished audit of this dataset" + (f" numbered {number}" if number is not None else "")
                       + "; run `listing-audit audit DATASET_DIR` first")
    return job


def run(args: argparse.Namespace) -> int:
    if not 0.0 <= args.max_score <= 1.0:
        raise CliError("--max-score must be between 0 and 1")
    kinds = chosen_kinds(args.kinds)
    reviewer = chosen_reviewer(args.reviewer)
    factory = open_db(args)

    def decide(session):
        """Plan and apply (or only plan) in one write transaction; returns (summary, plan, flag count, job id)."""
        dataset = require_dataset(session, args.dataset_dir)
        classes = dataset_classes(session, dataset.id)
        if args.undo:
            try:
                undone = undo_last_action(session, dataset.id, reviewer, classes=classes, note="undo of accept")
            except DecisionError as error:
                raise CliError(str(error)) from error
            return {"undone": len(undone), "reviewer": reviewer}, None, 0, None
        job = audit_job_of(session, dataset.id, args.job)
        flags = open_flag_rows(session, job.id, QueueFilter(kinds=kinds, score_max=args.max_score))
        plan = plan_acceptance(flags)
        counts = plan["action"].value_counts().to_dict()
        summary = {"job_id": job.id, "open_flags": len(flags), "relabelled": counts.get("relabel", 0),
                   "deleted": counts.get("delete", 0), "dry_run": args.dry_run, "reviewer": reviewer}
        if not args.dry_run:
            try:
                made = apply_plan(session, plan, classes=classes, reviewer=reviewer, note=args.note,
                                  carry_job_id=job.id)
                summary["carried_to_copies"] = len(made) - len(plan)
            except DecisionError as error:  # the transaction rolls back: nothing was decided
                raise CliError(f"nothing accepted: {error}") from error
        return summary, plan, len(flags), job.id

    summary, plan, flag_count, job_id = write_transaction(factory, decide)
    if args.undo:
        return report(summary, args, f"undid {summary['undone']} decisions of {reviewer}'s last action")
    if args.dry_run:
        return report({**summary, "decisions": plan.to_dict("records")}, args, dry_run_text(summary, plan))
    return report(summary, args, (
        f"accepted audit {job_id}: {summary['relabelled']} relabelled, {summary['deleted']} deleted "
        f"({flag_count} open flags)" + (f", the same decision carried to {summary['carried_to_copies']} copies in "
                                         "their duplicate groups" if summary.get("carried_to_copies") else "")
        + f" as one action by {reviewer}; "
        f"undo with `listing-audit accept {args.dataset_dir} --undo`" if len(plan) else
        f"nothing to accept: audit {job_id} has no open {'/'.join(kinds)} flags that would change anything"))


def dry_run_text(summary: dict, plan: pd.DataFrame) -> str:
    lines = [f"would relabel {summary['relabelled']} and delete {summary['deleted']} "
             f"(audit {summary['job_id']}, {summary['open_flags']} open flags); nothing changed"]
    for row in plan.head(SHOWN_IN_DRY_RUN).itertuples():
        target = f"-> {row.new_label}" if row.action == "relabel" else ""
        lines.append(f"  {row.action:<8} {row.path}  {target}  ({row.kind})")
    if len(plan) > SHOWN_IN_DRY_RUN:
        lines.append(f"  ... and {len(plan) - SHOWN_IN_DRY_RUN} more (--format json lists them all)")
    return "\n".join(lines)


def report(result: dict, args: argparse.Namespace, text: str) -> int:
    if args.format == "json":
        print_json(result)
    else:
        print(text)
    return 0
