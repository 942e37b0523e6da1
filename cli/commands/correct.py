"""`listing-audit correct DATASET_DIR PATH --relabel CLASS | --delete | --keep | --restore | --price VALUE | --undo`:
one decision.

Goes through db.corrections.decide, the same code path as the Review page: an
unknown class, an unknown path or an impossible action is an error and changes nothing.
"""
from __future__ import annotations

import argparse
import getpass
import math
from pathlib import Path, PurePosixPath
from typing import Optional

from sqlalchemy import select
from sqlalchemy.orm import Session

from cli.common import CliError, add_db_option, add_format_option, open_db, print_json, require_dataset, shown
from db.corrections import DecisionError, checked_reviewer, decide
from db.engine import write_transaction
from db.models import Dataset, Sample
from db.queries import dataset_classes

PAST_TENSE = {"relabel": "relabelled", "delete": "deleted", "keep": "kept", "restore": "restored",
              "price": "repriced", "undo": "undid"}


def default_reviewer() -> str:
    """The login name, as the reviewer of scripted decisions when --reviewer is not given."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "cli"


def chosen_reviewer(given: Optional[str]) -> str:
    """--reviewer without surrounding white space, or the login name when it is not given; CliError for a
    blank or overlong name."""
    if given is None:
        return default_reviewer()
    try:
        return checked_reviewer(given, required=True)
    except DecisionError as error:
        raise CliError(f"--reviewer: {error}") from error


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "correct", help="record one review decision on one image",
        description="Relabel, delete, keep, restore, fix the price of, or undo the last decision on one image of a "
                    "scanned dataset.",
    )
    parser.add_argument("dataset_dir", help="the dataset folder (as scanned)")
    parser.add_argument("path", help="the image, relative to the dataset folder (or a path to the file itself)")
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--relabel", metavar="CLASS", help="move the image to class CLASS")
    action.add_argument("--delete", action="store_true", help="leave the image out of training and export")
    action.add_argument("--keep", action="store_true", help="the flag was wrong: keep the image as it is")
    action.add_argument("--restore", action="store_true", help="bring a deleted image back")
    action.add_argument("--price", type=price_value, metavar="VALUE",
                        help="fix the listing's price (e.g. a lost decimal point); export and later audits use it")
    action.add_argument("--undo", action="store_true", help="revert the image's latest decision")
    parser.add_argument("--reviewer", default=None, help="who decides (default: your login name)")
    parser.add_argument("--note", default="", help="why, stored with the decision")
    add_db_option(parser)
    add_format_option(parser)
    parser.set_defaults(func=run)


def price_value(text: str) -> float:
    """--price: a plain non-negative number (no thousands separators: 1299.00, not 1,299.00)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a price: {text!r} (write it like 1299.00)") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"a price must be 0 or more, not {text!r}")
    return value


def chosen_action(args: argparse.Namespace) -> str:
    if args.relabel is not None:
        return "relabel"
    if args.price is not None:
        return "price"
    return next(name for name in ("delete", "keep", "restore", "undo") if getattr(args, name))


def sample_path(dataset: Dataset, given: str) -> str:
    """`given` as a POSIX path relative to the dataset root: a file path inside the root, or already relative."""
    root = Path(dataset.root)
    candidate = Path(given).expanduser()
    if candidate.is_absolute() or candidate.exists():
        resolved = candidate.resolve()
        if root in resolved.parents:
            return resolved.relative_to(root).as_posix()
    return PurePosixPath(given.replace("\\", "/")).as_posix().removeprefix("./")


def find_sample(session: Session, dataset: Dataset, given: str) -> Sample:
    path = sample_path(dataset, given)
    sample = session.scalars(select(Sample).where(Sample.dataset_id == dataset.id, Sample.path == path)).one_or_none()
    if sample is None:
        raise CliError(f"no image {path!r} in dataset {dataset.root} (paths are relative to the dataset folder)")
    return sample


def record_decision(session: Session, sample_id: int, action: str, *, classes: list[str],
                    args: argparse.Namespace, reviewer: str) -> dict:
    """Decide on sample `sample_id` in `session`'s transaction; returns the decision as a dict."""
    sample = session.get(Sample, sample_id)
    try:
        correction = decide(session, sample, action, classes=classes, new_label=args.relabel,
                            new_price=args.price, reviewer=reviewer, note=args.note)
    except DecisionError as error:
        raise CliError(str(error)) from error
    return {
        "id": correction.id, "path": sample.path, "action": action,
        "old_label": correction.old_label, "new_label": correction.new_label,
        "was_deleted": correction.was_deleted, "deleted": correction.deleted, "reviewer": reviewer,
        "old_price": correction.old_price if correction.old_price is not None else sample.price,
        "new_price": correction.new_price if correction.new_price is not None else sample.price,
    }


def describe_state(label: str, deleted: bool, price, *, priced: bool) -> str:
    """e.g. "bag", "bag (deleted)", or when the decision changed the price "bag at 1,299.00"."""
    shown = f" at {price:,.2f}" if priced and price is not None else ""
    return f"{label}{' (deleted)' if deleted else ''}{shown}"


def run(args: argparse.Namespace) -> int:
    action = chosen_action(args)
    reviewer = chosen_reviewer(args.reviewer)
    factory = open_db(args)
    # Look up before taking the write lock: a wrong dataset or path is refused without waiting for it,
    # and the lock is held only for the decision itself (other reviewers queue behind it).
    with factory() as session:
        dataset = require_dataset(session, args.dataset_dir)
        sample_id = find_sample(session, dataset, args.path).id
        classes = dataset_classes(session, dataset.id)
    outcome = write_transaction(factory, lambda session: record_decision(
        session, sample_id, action, classes=classes, args=args, reviewer=reviewer))
    if args.format == "json":
        print_json(outcome)
    else:
        priced = outcome["old_price"] != outcome["new_price"]
        state = describe_state(outcome["new_label"], outcome["deleted"], outcome["new_price"], priced=priced)
        before = describe_state(outcome["old_label"], outcome["was_deleted"], outcome["old_price"], priced=priced)
        print(f"{PAST_TENSE[action]} {shown(outcome['path'])}: {shown(before)} -> {shown(state)}  "
              f"(decision {outcome['id']} by {shown(reviewer) or '-'})")
    return 0
