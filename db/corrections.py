"""Review decisions on samples: append-only, derived state, undo, and conflict detection.

A sample's state is (label, deleted, price): price is the reviewer's fix of the
listing's price, None while the listing's own price (from listings.csv) stands.
Every decision appends a Correction that records the state before and after it; nothing is ever updated or deleted. Two
decisions made on the same previous state cannot both land (unique
(sample_id, previous_id)), so a reviewer acting on a stale view is told.

Beyond single decisions: several decisions applied as one action (`decide_many`,
sharing a batch id), "undo my last action" for a reviewer, and the log written to
and replayed from CSV so review work moves between machines.
"""
from __future__ import annotations

import csv
import math
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import IO, Iterable, Optional

from sqlalchemy import and_, false, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from core.csvsafe import SafeDictWriter, unescape_row
from db.models import Correction, Sample, utcnow

ACTIONS = ("relabel", "delete", "keep", "restore", "price", "undo")


class DecisionError(ValueError):
    """A decision that cannot be applied (unknown class, impossible action); nothing was changed."""


class DecisionConflict(DecisionError):
    """Someone else decided on the sample after the reviewer last saw it; nothing was changed."""


@dataclass(frozen=True)
class SampleState:
    label: str
    deleted: bool
    last_correction_id: int  # 0 when the sample has no corrections
    price: Optional[float] = None  # the reviewer's price; None: the listing's own price stands


def latest_correction(session: Session, sample_id: int) -> Optional[Correction]:
    return session.scalars(
        select(Correction).where(Correction.sample_id == sample_id).order_by(Correction.id.desc()).limit(1)
    ).one_or_none()


def sample_state(session: Session, sample: Sample) -> SampleState:
    last = latest_correction(session, sample.id)
    if last is None:
        return SampleState(sample.label, False, 0)
    return SampleState(last.new_label, last.deleted, last.id, last.new_price)


def undo_target(session: Session, sample_id: int) -> Optional[Correction]:
    """The sample's latest decision that is not an undo and has not been undone."""
    history = list(session.scalars(select(Correction).where(Correction.sample_id == sample_id).order_by(Correction.id)))
    undone = {c.reverts_id for c in history if c.action == "undo"}
    for correction in reversed(history):
        if correction.action != "undo" and correction.id not in undone:
            return correction
    return None


def _next_state(session: Session, sample: Sample, state: SampleState, action: str,
                new_label: Optional[str], new_price: Optional[float],
                classes: list[str]) -> tuple[str, bool, Optional[float], Optional[int]]:
    """(label, deleted, price, reverts_id) after `action`, or DecisionError if it is impossible."""
    if action == "relabel":
        if new_label not in classes:
            raise DecisionError(f"unknown class {new_label!r}; classes are: {', '.join(classes)}")
        if state.deleted:
            raise DecisionError(f"{sample.path} is deleted; restore it before relabelling")
        if new_label == state.label:
            raise DecisionError(f"{sample.path} is already labelled {new_label!r}")
        return new_label, False, state.price, None
    if action == "delete":
        if state.deleted:
            raise DecisionError(f"{sample.path} is already deleted")
        return state.label, True, state.price, None
    if action == "keep":
        if state.deleted:
            raise DecisionError(f"{sample.path} is deleted; restore it instead of keeping it")
        return state.label, False, state.price, None
    if action == "restore":
        if not state.deleted:
            raise DecisionError(f"{sample.path} is not deleted, so it cannot be restored")
        return state.label, False, state.price, None
    if action == "price":
        return state.label, state.deleted, _checked_price(sample, state, new_price), None
    target = undo_target(session, sample.id)
    if target is None:
        raise DecisionError(f"{sample.path} has no decision to undo")
    return target.old_label, target.was_deleted, target.old_price, target.id


def _checked_price(sample: Sample, state: SampleState, new_price: Optional[float]) -> float:
    """The fixed price, or DecisionError for a missing, negative or unchanged one or a deleted sample."""
    if new_price is None or not math.isfinite(new_price) or new_price < 0:
        raise DecisionError(f"a price must be a number of 0 or more, not {new_price!r}")
    if state.deleted:
        raise DecisionError(f"{sample.path} is deleted; restore it before fixing its price")
    current = state.price if state.price is not None else sample.price
    if current is not None and math.isclose(current, new_price, rel_tol=0.0, abs_tol=1e-9):
        raise DecisionError(f"{sample.path} already costs {new_price:,.2f}")
    return float(new_price)


#: Longest reviewer name a decision is stored with (characters); a name is who decided, not a note.
MAX_REVIEWER_CHARS = 100


def checked_reviewer(name: str, *, required: bool = False) -> str:
    """`name` without surrounding white space; DecisionError when it is over MAX_REVIEWER_CHARS, or blank
    and `required` (scripts and tests may decide without a name; the app and the CLI always give one)."""
    name = (name or "").strip()
    if len(name) > MAX_REVIEWER_CHARS:
        raise DecisionError(f"a reviewer name is at most {MAX_REVIEWER_CHARS} characters, not {len(name):,}")
    if required and not name:
        raise DecisionError("the reviewer name is blank: give the name decisions are recorded under")
    return name


def decide(
    session: Session,
    sample: Sample,
    action: str,
    *,
    classes: list[str],
    new_label: Optional[str] = None,
    new_price: Optional[float] = None,
    reviewer: str = "",
    note: str = "",
    expected_last_id: Optional[int] = None,
    flag_id: Optional[int] = None,
    batch_id: Optional[str] = None,
    created_at: Optional[datetime] = None,
) -> Correction:
    """Append one decision on `sample` and return it (flushed, with its id).

    new_price: the listing's corrected price, for action "price".
    expected_last_id: the id of the latest correction the reviewer saw (0 for
    none); if the sample has changed since, DecisionConflict is raised. None
    means "decide on whatever the current state is" (scripts).
    batch_id groups the decisions of one action (see decide_many); created_at
    (UTC) is only given when replaying a log from elsewhere (import_corrections_csv).
    Raises DecisionError when the action is impossible; the session is then unchanged.
    """
    if action not in ACTIONS:
        raise DecisionError(f"unknown action {action!r}; actions are: {', '.join(ACTIONS)}")
    reviewer = checked_reviewer(reviewer)
    # Without a real transaction the SAVEPOINT below would commit at its RELEASE,
    # and a caller rolling back afterwards would still keep this decision.
    begin_write(session)
    state = sample_state(session, sample)
    if expected_last_id is not None and expected_last_id != state.last_correction_id:
        raise DecisionConflict(
            f"{sample.path} was changed by someone else since you loaded it"
            f"{_describe_decision(latest_correction(session, sample.id))}; reload to see the latest decision"
        )
    label, deleted, price, reverts_id = _next_state(session, sample, state, action, new_label, new_price, classes)
    correction = Correction(
        sample_id=sample.id, action=action, old_label=state.label, new_label=label,
        was_deleted=state.deleted, deleted=deleted, old_price=state.price, new_price=price,
        reviewer=reviewer, note=note,
        previous_id=state.last_correction_id, reverts_id=reverts_id, flag_id=flag_id,
        batch_id=batch_id, created_at=created_at or utcnow(),
    )
    try:
        with session.begin_nested():
            session.add(correction)
    except IntegrityError as error:
        raise DecisionConflict(
            f"{sample.path} was changed by someone else at the same moment"
            f"{_describe_decision(latest_correction(session, sample.id))}; reload to see the latest decision"
        ) from error
    return correction


def _describe_decision(correction: Optional[Correction]) -> str:
    """The conflicting decision for a conflict message: ` (bob relabelled it bag -> shoe at 14:02:11 UTC)`;
    empty when there is none to name (the other transaction is not visible yet)."""
    if correction is None:
        return ""
    who = correction.reviewer or "an unnamed reviewer"
    when = as_utc(correction.created_at).strftime("%H:%M:%S UTC")
    if correction.action == "relabel":
        what = f"relabelled it {correction.old_label} -> {correction.new_label}"
    elif correction.action == "price":
        what = f"set its price to {correction.new_price:g}"
    else:
        what = {"delete": "deleted it", "keep": "kept it", "restore": "restored it", "undo": "undid a decision on it"}[
            correction.action]
    return f" ({who} {what} at {when})"


# --- actions of several decisions, and undo of a reviewer's last action -------------------------

#: Columns of the corrections log as CSV, in order (see write_corrections_csv / import_corrections_csv).
LOG_COLUMNS = [
    "id", "created_at", "path", "action", "old_label", "new_label", "was_deleted", "deleted",
    "reviewer", "note", "reverts_id", "flag_id", "batch_id", "old_price", "new_price",
]
#: Columns a log may lack: those of logs written before price decisions, and the optional ones.
OPTIONAL_LOG_COLUMNS = {"id", "note", "reverts_id", "flag_id", "batch_id", "reviewer", "old_price", "new_price"}


def begin_write(session: Session) -> None:
    """Open a real SQLite write transaction on the session now, so several decisions commit or roll back together.

    The sqlite3 driver only starts a transaction before a data-changing
    statement; the SAVEPOINT that `decide` uses would otherwise run in
    autocommit mode and its RELEASE commit each decision on its own. A no-op
    UPDATE makes the driver BEGIN and takes the write lock up front (waiting
    under the busy timeout), so the reads that follow see the latest state.
    """
    session.execute(update(Correction).where(false()).values(note=""))


def new_batch_id() -> str:
    """A fresh id shared by the decisions of one action."""
    return uuid.uuid4().hex


@dataclass(frozen=True)
class Decision:
    """One decision of a several-sample action (see decide_many); fields as in `decide`."""

    sample_id: int
    action: str
    new_label: Optional[str] = None
    expected_last_id: Optional[int] = None
    flag_id: Optional[int] = None
    new_price: Optional[float] = None


def decide_many(
    session: Session,
    decisions: Iterable[Decision],
    *,
    classes: list[str],
    reviewer: str = "",
    note: str = "",
    batch_id: Optional[str] = None,
) -> list[Correction]:
    """Apply several decisions as one action sharing one batch id; returns them in order.

    The first impossible or conflicting decision raises DecisionError / DecisionConflict.
    The action is all or nothing when the caller rolls its transaction back on
    that exception, as `with factory.begin() as session:` does. Each sample may appear once.
    """
    decisions = list(decisions)
    sample_ids = [decision.sample_id for decision in decisions]
    if len(set(sample_ids)) != len(sample_ids):
        raise DecisionError("a sample appears more than once in one action")
    samples = {sample.id: sample for sample in session.scalars(select(Sample).where(Sample.id.in_(sample_ids)))}
    unknown = sorted(set(sample_ids) - set(samples))
    if unknown:
        raise DecisionError(f"unknown sample ids: {unknown}")
    batch_id = batch_id or new_batch_id()
    return [
        decide(
            session, samples[decision.sample_id], decision.action, classes=classes,
            new_label=decision.new_label, new_price=decision.new_price, reviewer=reviewer, note=note,
            expected_last_id=decision.expected_last_id, flag_id=decision.flag_id, batch_id=batch_id,
        )
        for decision in decisions
    ]


def is_undone():
    """SQL condition on Correction: some later undo reverts it."""
    undo = aliased(Correction)
    return select(undo.id).where(undo.sample_id == Correction.sample_id, undo.reverts_id == Correction.id).exists()


def in_effect():
    """SQL condition on Correction: a decision (not an undo) that has not been undone."""
    return and_(Correction.action != "undo", ~is_undone())


def last_action(session: Session, dataset_id: int, reviewer: str) -> list[Correction]:
    """The reviewer's latest action still in effect in the dataset: its decisions, oldest first.

    One decision, or every decision of its batch that is still in effect; empty when there is none.
    """
    latest = session.scalars(
        select(Correction).join(Sample, Sample.id == Correction.sample_id)
        .where(Sample.dataset_id == dataset_id, Correction.reviewer == reviewer, in_effect())
        .order_by(Correction.id.desc()).limit(1)
    ).one_or_none()
    if latest is None or latest.batch_id is None:
        return [latest] if latest is not None else []
    return list(session.scalars(
        select(Correction).where(Correction.batch_id == latest.batch_id, in_effect()).order_by(Correction.id)
    ))


def undo_last_action(
    session: Session, dataset_id: int, reviewer: str, *, classes: list[str], note: str = ""
) -> list[Correction]:
    """Undo the reviewer's latest action still in effect (a whole batch at once); returns the undo decisions.

    DecisionError when the reviewer has nothing to undo; DecisionConflict when
    someone decided on one of its samples since (nothing is undone when the
    caller rolls back on it). Repeated calls walk back through earlier actions.
    """
    if not reviewer:
        raise DecisionError("set a reviewer name first: undo reverts your own last decision")
    begin_write(session)
    action = last_action(session, dataset_id, reviewer)
    if not action:
        raise DecisionError(f"{reviewer} has no decision left to undo in this dataset")
    batch_id = new_batch_id() if len(action) > 1 else None
    undos = []
    for correction in reversed(action):
        sample = session.get(Sample, correction.sample_id)
        target = undo_target(session, sample.id)
        if target is None or target.id != correction.id:
            raise DecisionConflict(
                f"{sample.path} was decided on again after your decision; see the History page"
            )
        undos.append(decide(
            session, sample, "undo", classes=classes, reviewer=reviewer, note=note,
            expected_last_id=sample_state(session, sample).last_correction_id, batch_id=batch_id,
        ))
    return undos


def undo_decision(
    session: Session, correction_id: int, *, classes: list[str], reviewer: str = "", note: str = ""
) -> Correction:
    """Undo one given decision (e.g. picked from the History page); returns the undo decision.

    Only a sample's latest decision still in effect can be undone this way;
    otherwise DecisionError says which decision came after it.
    """
    correction = session.get(Correction, correction_id)
    if correction is None:
        raise DecisionError(f"there is no decision {correction_id}")
    sample = session.get(Sample, correction.sample_id)
    if correction.action == "undo":
        raise DecisionError(f"decision {correction_id} is itself an undo; make a new decision instead")
    target = undo_target(session, sample.id)
    if target is not None and target.id > correction.id:
        raise DecisionError(
            f"only the latest decision on {sample.path} can be undone; decision {target.id} came after it"
        )
    if target is None or target.id != correction.id:
        raise DecisionError(f"decision {correction_id} was undone already")
    return decide(session, sample, "undo", classes=classes, reviewer=reviewer, note=note,
                  expected_last_id=sample_state(session, sample).last_correction_id)


# --- the log as CSV ------------------------------------------------------------------------------


def log_statement(dataset_id: int):
    """SELECT of the dataset's corrections log, oldest first, with LOG_COLUMNS (path from the sample)."""
    return (
        select(
            Correction.id, Correction.created_at, Sample.path, Correction.action,
            Correction.old_label, Correction.new_label, Correction.was_deleted, Correction.deleted,
            Correction.reviewer, Correction.note, Correction.reverts_id, Correction.flag_id, Correction.batch_id,
            Correction.old_price, Correction.new_price,
        )
        .join(Sample, Sample.id == Correction.sample_id)
        .where(Sample.dataset_id == dataset_id)
        .order_by(Correction.id)
    )


def as_utc(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; every timestamp we store is UTC."""
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def write_corrections_csv(session: Session, dataset_id: int, stream: IO[str]) -> int:
    """Write the dataset's whole corrections log to `stream` as CSV (LOG_COLUMNS); returns the row count.

    Text that a spreadsheet would take for a formula is escaped (core.csvsafe);
    import_corrections_csv reads it back unchanged.
    """
    writer = SafeDictWriter(stream, fieldnames=LOG_COLUMNS, lineterminator="\n")
    writer.writeheader()
    count = 0
    for row in session.execute(log_statement(dataset_id)):
        values = row._asdict()
        values["created_at"] = as_utc(values["created_at"]).isoformat()
        writer.writerow({key: "" if value is None else value for key, value in values.items()})
        count += 1
    return count


@dataclass
class ImportReport:
    """What an import did: rows added, and each skipped row as (CSV line number, path, reason)."""

    added: int = 0
    skipped: list[tuple[int, str, str]] = field(default_factory=list)


class _Diverged(DecisionError):
    """Replaying a row here would give another state than it recorded."""


def _parse_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no", ""):
        return False
    raise ValueError(f"not a boolean: {text!r}")


def _parse_log_row(row: dict[str, str]) -> dict:
    """Typed values of one CSV row; ValueError when a value is malformed."""
    created_at = as_utc(datetime.fromisoformat(row["created_at"].strip()))
    return {
        "id": int(row["id"]) if row.get("id", "").strip() else 0,
        "created_at": created_at.replace(tzinfo=None),
        "path": row["path"],
        "action": row["action"].strip(),
        "old_label": row["old_label"],
        "new_label": row["new_label"],
        "was_deleted": _parse_bool(row["was_deleted"]),
        "deleted": _parse_bool(row["deleted"]),
        "reviewer": row.get("reviewer") or "",
        "note": row.get("note") or "",
        "batch_id": (row.get("batch_id") or "").strip() or None,
        "old_price": _parse_price(row.get("old_price")),
        "new_price": _parse_price(row.get("new_price")),
    }


def _parse_price(text: Optional[str]) -> Optional[float]:
    """A logged price; None for an empty cell (the listing's own price stood)."""
    return float(text) if text and text.strip() else None


def _already_logged(session: Session, sample_id: int, entry: dict) -> bool:
    """Whether the log already holds this very decision (same sample, action, states, reviewer and time)."""
    return session.scalar(
        select(Correction.id).where(
            Correction.sample_id == sample_id, Correction.action == entry["action"],
            Correction.old_label == entry["old_label"], Correction.new_label == entry["new_label"],
            Correction.was_deleted == entry["was_deleted"], Correction.deleted == entry["deleted"],
            Correction.reviewer == entry["reviewer"], Correction.created_at == entry["created_at"],
            Correction.new_price.is_(None) if entry["new_price"] is None else Correction.new_price == entry["new_price"],
        ).limit(1)
    ) is not None


def _replay(session: Session, sample: Sample, entry: dict, classes: list[str]) -> None:
    """Append `entry` as a decision on `sample`, or raise DecisionError saying why it does not apply here."""
    state = sample_state(session, sample)
    if (state.label, state.deleted) != (entry["old_label"], entry["was_deleted"]):
        raise DecisionError(
            f"here it is {_describe(state.label, state.deleted)}, but the row was decided on "
            f"{_describe(entry['old_label'], entry['was_deleted'])}"
        )
    if state.price != entry["old_price"]:
        raise DecisionError(f"here its fixed price is {state.price}, but the row was decided on {entry['old_price']}")
    with session.begin_nested():
        correction = decide(
            session, sample, entry["action"], classes=classes, new_label=entry["new_label"],
            new_price=entry["new_price"], reviewer=entry["reviewer"], note=entry["note"], batch_id=entry["batch_id"],
            created_at=entry["created_at"].replace(tzinfo=timezone.utc),
        )
        if (correction.new_label, correction.deleted, correction.new_price) != (
                entry["new_label"], entry["deleted"], entry["new_price"]):
            raise _Diverged(
                f"here the {entry['action']} gives {_describe(correction.new_label, correction.deleted)}, "
                f"not {_describe(entry['new_label'], entry['deleted'])}"
            )


def _price_or_listed(price: Optional[float], listed: Optional[float]) -> str:
    value = price if price is not None and not (isinstance(price, float) and math.isnan(price)) else listed
    return "no price" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:,.2f}"


def describe_change(row, *, arrow: str = "→") -> str:
    """What one logged decision changed, for people: "bag → shoe", "bag → bag (deleted)", or for a price
    "45,450.00 → 45.00" (a side without a reviewer's price shows the listing's own, `listed_price`).

    row: a mapping with LOG_COLUMNS and optionally listed_price (db.review.history_frame's rows)."""
    listed = row.get("listed_price")
    state = lambda label, deleted: f"{label} (deleted)" if deleted else label
    labels = f"{state(row['old_label'], row['was_deleted'])} {arrow} {state(row['new_label'], row['deleted'])}"
    old, new = (_price_or_listed(row.get(name), listed) for name in ("old_price", "new_price"))
    if old == new:
        return labels
    prices = f"{old} {arrow} {new}"
    same_state = row["old_label"] == row["new_label"] and bool(row["was_deleted"]) == bool(row["deleted"])
    return prices if same_state else f"{labels}; price {prices}"


def _describe(label: str, deleted: bool) -> str:
    return f"{label!r}{' (deleted)' if deleted else ''}"


def import_corrections_csv(session: Session, dataset_id: int, stream: IO[str], *, classes: list[str]) -> ImportReport:
    """Replay a corrections log written by write_corrections_csv (maybe on another machine) into this dataset.

    Rows are applied oldest first; samples are matched by path. A row is added
    only when the sample's current state here is the state the row was decided
    on, through `decide` (same checks as the app). Rows already in the log (same
    sample, action, states, reviewer and timestamp) are skipped, so importing a
    file twice adds nothing. Skipped rows are reported with their reason.
    Cells that the writer escaped against spreadsheet formulas (a leading `'`,
    core.csvsafe) read back as they were. Raises DecisionError when the file lacks required columns.
    """
    reader = csv.DictReader(stream)
    required = set(LOG_COLUMNS) - OPTIONAL_LOG_COLUMNS
    absent = sorted(required - set(reader.fieldnames or []))
    if absent:
        raise DecisionError(f"not a corrections log: missing columns {', '.join(absent)}")
    begin_write(session)
    report = ImportReport()
    entries = []
    for line, row in enumerate(map(unescape_row, reader), start=2):
        try:
            entries.append((line, _parse_log_row(row)))
        except (ValueError, KeyError, AttributeError) as error:
            report.skipped.append((line, row.get("path") or "", f"malformed row: {error}"))
    entries.sort(key=lambda item: (item[1]["created_at"], item[1]["id"], item[0]))
    samples = {
        sample.path: sample
        for sample in session.scalars(select(Sample).where(
            Sample.dataset_id == dataset_id, Sample.path.in_({entry["path"] for _, entry in entries})
        ))
    }
    for line, entry in entries:
        sample = samples.get(entry["path"])
        if sample is None:
            report.skipped.append((line, entry["path"], "no sample with this path in the dataset"))
        elif _already_logged(session, sample.id, entry):
            report.skipped.append((line, entry["path"], "already in the log"))
        else:
            try:
                _replay(session, sample, entry, classes)
            except DecisionError as error:
                report.skipped.append((line, entry["path"], str(error)))
            else:
                report.added += 1
    report.skipped.sort()
    return report
