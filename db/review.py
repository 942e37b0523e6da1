"""Queries behind the Review, History and Export screens: the paged review queue, its evidence, the log.

The review queue is the flags of a dataset's latest succeeded audit job, worst
(lowest score) first. A duplicate group appears once, through its worst member.

A flag is *decided* when its sample has a decision in effect (not an undo, and
not undone since) made after the flag's audit job was created; decisions taken
from the Review page also carry the flag's id, and they are necessarily that
recent. For a duplicate group, a delete, keep or restore in effect on any of its
members, or any decision taken on the group's own flag, decides the group; a
relabel or price fix made from another flag of a member leaves it open. Undoing the decision therefore re-opens the flag; a correction made
before the audit does not close the audit's new flags.

Every function takes the caller's session first; the queue functions run a
LIMIT/OFFSET query on indexed columns, never a whole-table load.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Iterable, Optional

import numpy as np
import pandas as pd
from sqlalchemy import and_, case, func, literal, or_, select
from sqlalchemy.orm import Session

from core.audit.checks.base import MISLABEL_KINDS
from db.corrections import LOG_COLUMNS, Decision, decide_many, in_effect, log_statement, sample_state
from db.models import Correction, Dataset, Flag, Job, Sample
from db.queries import latest_corrections_subquery, samples_frame

REVIEW_STATES = ("open", "decided", "all")
#: history_frame's columns: the log's, and the listing's own price (so a price fix reads "45,450.00 → 45.00").
HISTORY_COLUMNS = [*LOG_COLUMNS, "listed_price"]
#: Decisions on any member that decide a duplicate group (whatever flag they were taken on).
GROUP_DECIDING_ACTIONS = ("delete", "keep", "restore")
#: Columns of queue_page: the flag, its sample's file and current state, and whether it is decided.
QUEUE_COLUMNS = [
    "flag_id", "kind", "score", "given_label", "suggested_label", "group_id", "reason", "evidence",
    "sample_id", "path", "label", "current_label", "deleted", "last_correction_id", "readable", "error",
    "missing", "price", "title", "mtime_ns", "file_size", "content_hash", "listing_id", "width", "height", "decided",
]
#: Columns of sample_view, used for anything drawn on screen: identity, file version, current state.
SAMPLE_VIEW_COLUMNS = [
    "sample_id", "path", "label", "current_label", "deleted", "last_correction_id", "readable", "error",
    "missing", "price", "title", "mtime_ns", "file_size", "content_hash", "listing_id", "width", "height",
]


@dataclass(frozen=True)
class QueueFilter:
    """Which flags the queue shows. Empty `kinds`/`classes` mean all; the class is the flag's given label.

    score_min/score_max bound the flag score (inclusive, in [0, 1]); state is one of REVIEW_STATES.
    """

    kinds: tuple[str, ...] = ()
    classes: tuple[str, ...] = ()
    score_min: float = 0.0
    score_max: float = 1.0
    state: str = "open"

    def __post_init__(self) -> None:
        if self.state not in REVIEW_STATES:
            raise ValueError(f"unknown review state {self.state!r}; states are: {', '.join(REVIEW_STATES)}")


def latest_audit_job(session: Session, dataset_id: int) -> Optional[Job]:
    """The dataset's latest succeeded audit job, whose flags are the review queue; None when there is none."""
    return session.scalars(
        select(Job).where(Job.dataset_id == dataset_id, Job.kind == "audit", Job.status == "succeeded")
        .order_by(Job.id.desc()).limit(1)
    ).one_or_none()


def data_version(session: Session, dataset_id: int) -> tuple:
    """Changes whenever what the review screens show may have changed: a new audit, decision or scan.

    Cheap (three indexed lookups); used as part of cache keys.
    """
    audit = latest_audit_job(session, dataset_id)
    last_correction = session.scalar(select(func.max(Correction.id))) or 0
    scanned_at = session.scalar(select(Dataset.scanned_at).where(Dataset.id == dataset_id))
    return (audit.id if audit else 0, last_correction, str(scanned_at))


# --- the queue ----------------------------------------------------------------------------------


def _decided_sample_ids(job_id: int):
    """Samples with a decision in effect made since the audit job was created (a SELECT of sample ids)."""
    job_created = select(Job.created_at).where(Job.id == job_id).scalar_subquery()
    return select(Correction.sample_id).where(Correction.created_at >= job_created, in_effect())


def _group_deciding_sample_ids(job_id: int):
    """Samples whose decision since the audit decides their duplicate group: a delete, keep or restore, or
    one taken on the group's flag. A relabel or price fix taken on another flag of the same listing (a
    mislabel accepted) leaves the group open: whether the copies should stay is still undecided."""
    job_created = select(Job.created_at).where(Job.id == job_id).scalar_subquery()
    duplicate_flags = select(Flag.id).where(Flag.job_id == job_id, Flag.kind == "duplicate")
    return select(Correction.sample_id).where(
        Correction.created_at >= job_created, in_effect(),
        or_(Correction.action.in_(GROUP_DECIDING_ACTIONS), Correction.flag_id.in_(duplicate_flags)),
    )


def _decided_condition(job_id: int):
    decided_samples = _decided_sample_ids(job_id)
    decided_groups = select(Flag.group_id).where(
        Flag.job_id == job_id, Flag.kind == "duplicate", Flag.sample_id.in_(_group_deciding_sample_ids(job_id))
    )
    is_group = and_(Flag.kind == "duplicate", Flag.group_id.is_not(None))
    return or_(
        and_(is_group, Flag.group_id.in_(decided_groups)),
        and_(~is_group, Flag.sample_id.in_(decided_samples)),
    )


def _group_representatives(job_id: int):
    """Ids of each duplicate group's worst flag (lowest score, then lowest id)."""
    ranked = select(
        Flag.id,
        func.row_number().over(partition_by=Flag.group_id, order_by=(Flag.score, Flag.id)).label("rank"),
    ).where(Flag.job_id == job_id, Flag.kind == "duplicate", Flag.group_id.is_not(None)).subquery()
    return select(ranked.c.id).where(ranked.c.rank == 1)


def _queue_conditions(job_id: int, queue: QueueFilter) -> list:
    conditions = [
        Flag.job_id == job_id,
        Flag.score >= queue.score_min,
        Flag.score <= queue.score_max,
        or_(Flag.kind != "duplicate", Flag.group_id.is_(None), Flag.id.in_(_group_representatives(job_id))),
    ]
    if queue.kinds:
        conditions.append(Flag.kind.in_(queue.kinds))
    if queue.classes:
        conditions.append(Flag.given_label.in_(queue.classes))
    if queue.state == "open":
        conditions.append(~_decided_condition(job_id))
    elif queue.state == "decided":
        conditions.append(_decided_condition(job_id))
    return conditions


def queue_count(session: Session, job_id: int, queue: QueueFilter) -> int:
    """How many items the queue has under `queue`."""
    return session.scalar(select(func.count(Flag.id)).where(*_queue_conditions(job_id, queue))) or 0


def queue_flag_ids(session: Session, job_id: int, queue: QueueFilter, *, offset: int, limit: int) -> list[int]:
    """Flag ids of queue items offset .. offset+limit-1, worst first (score, then id)."""
    return list(session.scalars(
        select(Flag.id).where(*_queue_conditions(job_id, queue))
        .order_by(Flag.score, Flag.id).offset(offset).limit(limit)
    ))


def queue_rank(session: Session, job_id: int, queue: QueueFilter, flag_id: int) -> Optional[int]:
    """0-based position of flag `flag_id` in the queue, or None when the queue does not hold it."""
    flag = session.get(Flag, flag_id)
    if flag is None or session.scalar(
        select(func.count(Flag.id)).where(Flag.id == flag_id, *_queue_conditions(job_id, queue))
    ) == 0:
        return None
    ahead = or_(Flag.score < flag.score, and_(Flag.score == flag.score, Flag.id < flag.id))
    return session.scalar(select(func.count(Flag.id)).where(ahead, *_queue_conditions(job_id, queue)))


def sample_view(session: Session, sample_ids: Iterable[int]) -> pd.DataFrame:
    """SAMPLE_VIEW_COLUMNS of the given samples (a screenful), indexed by sample id.

    The latest correction is looked up per sample on its (sample_id, id) index,
    so the cost is proportional to the number of samples asked for.
    """
    sample_ids = list(sample_ids)
    last_id = (
        select(func.max(Correction.id)).where(Correction.sample_id == Sample.id).correlate(Sample).scalar_subquery()
    )
    statement = (
        select(
            Sample.id, Sample.path, Sample.label,
            func.coalesce(Correction.new_label, Sample.label), func.coalesce(Correction.deleted, False),
            func.coalesce(Correction.id, 0), Sample.readable, Sample.error, Sample.missing,
            func.coalesce(Correction.new_price, Sample.price), Sample.title, Sample.mtime_ns, Sample.file_size,
            Sample.content_hash, Sample.listing_id, Sample.width,
            Sample.height,
        )
        .outerjoin(Correction, Correction.id == last_id)
        .where(Sample.id.in_(sample_ids))
    )
    frame = pd.DataFrame(session.execute(statement).all(), columns=SAMPLE_VIEW_COLUMNS)
    for column in ("deleted", "readable", "missing"):
        frame[column] = frame[column].astype(bool)
    frame["price"] = frame["price"].astype(float)
    return frame.set_index("sample_id", drop=False)


def queue_page(session: Session, job_id: int, queue: QueueFilter, *, offset: int, limit: int) -> pd.DataFrame:
    """Queue items offset .. offset+limit-1 with QUEUE_COLUMNS, worst first.

    `evidence` is the flag's parsed evidence dict; `suggested_label` is '' when there is none;
    `decided` follows the module's definition.
    """
    return rows_for_flags(session, job_id, queue_flag_ids(session, job_id, queue, offset=offset, limit=limit))


def rows_for_flags(session: Session, job_id: int, flag_ids: list[int]) -> pd.DataFrame:
    """Queue rows (QUEUE_COLUMNS) of the given flags of job `job_id`, in the given order."""
    if not flag_ids:
        return pd.DataFrame(columns=QUEUE_COLUMNS)
    flags = session.execute(
        select(
            Flag.id, Flag.kind, Flag.score, Flag.given_label, Flag.suggested_label, Flag.group_id,
            Flag.reason, Flag.evidence_json, Flag.sample_id, _decided_condition(job_id).label("decided"),
        ).where(Flag.id.in_(flag_ids))
    ).all()
    frame = pd.DataFrame(flags, columns=[
        "flag_id", "kind", "score", "given_label", "suggested_label", "group_id", "reason", "evidence",
        "sample_id", "decided",
    ])
    frame["evidence"] = [json.loads(text or "{}") for text in frame["evidence"]]
    frame["decided"] = frame["decided"].astype(bool)
    frame["suggested_label"] = frame["suggested_label"].fillna("")
    frame = frame.join(sample_view(session, frame["sample_id"]).drop(columns="sample_id"), on="sample_id")
    order = {flag_id: position for position, flag_id in enumerate(flag_ids)}
    frame = frame.sort_values("flag_id", key=lambda ids: ids.map(order)).reset_index(drop=True)
    return frame[QUEUE_COLUMNS]


def open_flag_rows(session: Session, job_id: int, queue: QueueFilter) -> pd.DataFrame:
    """Every open flag of job `job_id` under `queue`'s kinds, classes and score bounds, with QUEUE_COLUMNS,
    worst first; unlike the queue, every member of a duplicate group (a group is in when its worst
    member's score is within the bounds). What core.audit.acceptance.plan_acceptance reads."""
    in_bounds = and_(Flag.score >= queue.score_min, Flag.score <= queue.score_max)
    groups_in_bounds = select(Flag.group_id).where(
        Flag.job_id == job_id, Flag.kind == "duplicate", Flag.group_id.is_not(None),
        Flag.id.in_(_group_representatives(job_id)), in_bounds,
    )
    is_group = and_(Flag.kind == "duplicate", Flag.group_id.is_not(None))
    conditions = [
        Flag.job_id == job_id,
        or_(and_(is_group, Flag.group_id.in_(groups_in_bounds)), and_(~is_group, in_bounds)),
        ~_decided_condition(job_id),
    ]
    if queue.kinds:
        conditions.append(Flag.kind.in_(queue.kinds))
    if queue.classes:
        conditions.append(Flag.given_label.in_(queue.classes))
    ids = list(session.scalars(select(Flag.id).where(*conditions).order_by(Flag.score, Flag.id)))
    return rows_for_flags(session, job_id, ids)


def apply_plan(session: Session, plan: pd.DataFrame, *, classes: list[str], reviewer: str, note: str,
               carry_job_id: Optional[int] = None) -> list[Correction]:
    """Make the decisions of a core.audit.acceptance plan as one action (db.corrections.decide_many): all or
    nothing when the caller rolls back on DecisionError, e.g. when a sample was decided on meanwhile.
    carry_job_id: the audit whose duplicate groups carry each decision to the sample's open copies."""
    decisions = [Decision(int(row.sample_id), row.action, new_label=row.new_label, flag_id=int(row.flag_id),
                          expected_last_id=int(row.expected_last_id)) for row in plan.itertuples()]
    if carry_job_id is not None:
        decisions = carry_to_copies(session, carry_job_id, decisions, actions=CARRIED_IN_BULK)
    return decide_many(session, decisions, classes=classes, reviewer=reviewer, note=note)


def queue_summary(session: Session, job_id: int) -> pd.DataFrame:
    """Per kind of flag: items in the queue (duplicate groups counted once), how many open and decided.

    One grouped pass over the job's flags.
    """
    decided = _decided_condition(job_id)
    rows = session.execute(
        select(Flag.kind, func.count(Flag.id), func.sum(case((decided, 1), else_=0)))
        .where(*_queue_conditions(job_id, QueueFilter(state="all")))
        .group_by(Flag.kind).order_by(Flag.kind)
    ).all()
    frame = pd.DataFrame(rows, columns=["kind", "items", "decided"])
    frame["decided"] = frame["decided"].fillna(0).astype(int)
    frame["open"] = frame["items"] - frame["decided"]
    return frame[["kind", "items", "open", "decided"]]


#: Decisions that confirm a mislabel flag (the label was wrong) and that refute it.
CONFIRMING_ACTIONS = ("relabel", "delete")
REFUTING_ACTIONS = ("keep",)


def mislabel_decisions(session: Session, job_id: int, *, kind: str = "mislabel") -> pd.DataFrame:
    """The job's mislabel flags (or those of `kind`, e.g. the ranking past the budget), one row each: score;
    decided (a decision in effect made since the audit job was created, or on a listing of a decided duplicate
    group's, as the queue counts it); confirmed (that decision was a relabel or a delete) and refuted (a keep);
    decided_at (UTC) and correction_id, its latest decision's. Flags decided otherwise (a price fix) are neither
    confirmed nor refuted."""
    job_created = select(Job.created_at).where(Job.id == job_id).scalar_subquery()
    latest = (
        select(Correction.sample_id, func.max(Correction.id).label("correction_id"))
        .where(Correction.created_at >= job_created, in_effect())
        .group_by(Correction.sample_id).subquery()
    )
    rows = session.execute(
        select(Flag.id, Flag.score, Correction.action, Correction.created_at, Correction.id,
               _decided_condition(job_id).label("decided"))
        .select_from(Flag)
        .outerjoin(latest, latest.c.sample_id == Flag.sample_id)
        .outerjoin(Correction, Correction.id == latest.c.correction_id)
        .where(Flag.job_id == job_id, Flag.kind == kind)
        .order_by(Flag.score, Flag.id)
    ).all()
    frame = pd.DataFrame(rows, columns=["flag_id", "score", "action", "decided_at", "correction_id", "decided"])
    frame["decided"] = frame["decided"].astype(bool)
    frame["confirmed"] = frame["decided"] & frame["action"].isin(CONFIRMING_ACTIONS)
    frame["refuted"] = frame["decided"] & frame["action"].isin(REFUTING_ACTIONS)
    return frame.drop(columns="action")


# --- evidence -----------------------------------------------------------------------------------


def duplicate_members(session: Session, job_id: int, flag_id: int) -> pd.DataFrame:
    """The samples of the duplicate group of flag `flag_id` (SAMPLE_VIEW_COLUMNS plus flag_id, score), by path.

    Members are the group's flags in this job plus any sample ids or paths the
    flag's evidence lists under `members`.
    """
    flag = session.get(Flag, flag_id)
    if flag.group_id is None:
        member_flags = {flag.sample_id: (flag.id, flag.score)}
    else:
        member_flags = {
            sample_id: (member_id, score)
            for member_id, sample_id, score in session.execute(
                select(Flag.id, Flag.sample_id, Flag.score).where(
                    Flag.job_id == job_id, Flag.kind == "duplicate", Flag.group_id == flag.group_id
                )
            )
        }
    sample_ids = set(member_flags) | _evidence_member_ids(session, flag)
    members = sample_view(session, sample_ids).sort_values("path").reset_index(drop=True)
    members["flag_id"] = [member_flags.get(sid, (None, None))[0] for sid in members["sample_id"]]
    members["score"] = [member_flags.get(sid, (None, None))[1] for sid in members["sample_id"]]
    return members


#: Decisions that carry from a listing to its copies: what the photo is, not what one listing says (a price).
CARRIED_ACTIONS = ("relabel", "delete", "keep")


def open_copies(session: Session, job_id: int, sample_id: int) -> list[tuple[int, Optional[int]]]:
    """The other listings of `sample_id`'s duplicate group in audit job `job_id` that a decision on it carries
    to: under the same current label, not deleted, with no decision in effect since the audit. Returns
    (sample id, its mislabel flag id in the job or None) pairs, by sample id; empty outside a group."""
    groups = select(Flag.group_id).where(Flag.job_id == job_id, Flag.kind == "duplicate",
                                         Flag.sample_id == sample_id, Flag.group_id.is_not(None))
    members = session.scalars(
        select(Flag.sample_id).where(Flag.job_id == job_id, Flag.kind == "duplicate", Flag.group_id.in_(groups),
                                     Flag.sample_id != sample_id, ~Flag.sample_id.in_(_decided_sample_ids(job_id)))
        .distinct().order_by(Flag.sample_id)
    ).all()
    if not members:
        return []
    label = sample_state(session, session.get(Sample, sample_id)).label
    mislabel_flags = dict(session.execute(
        select(Flag.sample_id, Flag.id).where(Flag.job_id == job_id, Flag.kind.in_(MISLABEL_KINDS),
                                              Flag.sample_id.in_(members))
    ).all())
    copies = []
    for member in members:
        state = sample_state(session, session.get(Sample, member))
        if state.label == label and not state.deleted:
            copies.append((member, mislabel_flags.get(member)))
    return copies


#: What a page or a plan of many decisions carries: its deletions are those of broken files and of the
#: copies a duplicate group does not keep, which must not spread to the copy kept.
CARRIED_IN_BULK = ("relabel", "keep")


def carry_to_copies(session: Session, job_id: int, decisions: list[Decision], *,
                    actions: tuple[str, ...] = CARRIED_ACTIONS) -> list[Decision]:
    """`decisions` followed by the same decision on the open copies (open_copies in audit job `job_id`) of
    every sample they decide with one of `actions`, each copy once and none the list decides already; made
    in one action with them, one undo takes them all back."""
    deciding = {decision.sample_id for decision in decisions}
    carried = []
    for decision in decisions:
        if decision.action not in actions:
            continue
        for copy_id, copy_flag in open_copies(session, job_id, decision.sample_id):
            if copy_id not in deciding:
                deciding.add(copy_id)
                carried.append(Decision(copy_id, decision.action, new_label=decision.new_label, flag_id=copy_flag))
    return decisions + carried


def _evidence_member_ids(session: Session, flag: Flag) -> set[int]:
    """Sample ids named by the flag's evidence `members` (ints, {"sample_id"|"id": int} or paths)."""
    listed = json.loads(flag.evidence_json or "{}").get("members") or []
    ids, paths = set(), set()
    for member in listed:
        if isinstance(member, dict):
            member = member.get("sample_id", member.get("id", member.get("path")))
        if isinstance(member, bool):
            continue
        if isinstance(member, int):
            ids.add(member)
        elif isinstance(member, str):
            paths.add(member)
    if not ids and not paths:
        return set()
    dataset_id = select(Sample.dataset_id).where(Sample.id == flag.sample_id).scalar_subquery()
    return set(session.scalars(select(Sample.id).where(
        Sample.dataset_id == dataset_id, or_(Sample.id.in_(ids), Sample.path.in_(paths))
    )))


def class_examples(
    session: Session, dataset_id: int, label: str, *, limit: int = 4, exclude: Iterable[int] = ()
) -> pd.DataFrame:
    """Up to `limit` readable, present samples whose folder class is `label` (SAMPLE_VIEW_COLUMNS).

    Samples with a flag in no audit come first, so the examples show what the
    class looks like; the order is stable (by content hash, i.e. arbitrary but fixed,
    then by id). Unflagged and flagged samples are read by two queries that each walk
    the class's (dataset, label, content hash) index and stop after `limit` rows, so
    the cost does not grow with the size of the class.
    """
    in_class = (
        select(Sample.id)
        .where(Sample.dataset_id == dataset_id, Sample.label == label, Sample.readable.is_(True),
               Sample.missing.is_(False), Sample.id.not_in(list(exclude)))
        .order_by(Sample.content_hash, Sample.id)
    )
    ever_flagged = select(Flag.id).where(Flag.sample_id == Sample.id).exists()
    ids = list(session.scalars(in_class.where(~ever_flagged).limit(limit)))
    if len(ids) < limit:
        ids += session.scalars(in_class.where(ever_flagged).limit(limit - len(ids)))
    view = sample_view(session, ids)
    return view.loc[[i for i in ids if i in view.index]].reset_index(drop=True)


def class_prices(session: Session, dataset_id: int, label: str) -> np.ndarray:
    """Prices of the present samples whose folder class is `label`, shape (N,), missing prices left out."""
    return np.fromiter(session.scalars(
        select(Sample.price).where(Sample.dataset_id == dataset_id, Sample.label == label,
                                   Sample.missing.is_(False), Sample.price.is_not(None))
    ), dtype=np.float64)


def bulk_accept_candidates(session: Session, job_id: int, queue: QueueFilter, *, count: int) -> pd.DataFrame:
    """The `count` worst open mislabel flags with a suggested label, under `queue`'s class and score bounds.

    Returns their queue rows plus `applicable` (False when the sample is deleted,
    or already carries the suggested label) — only applicable rows would change.
    """
    mislabels = QueueFilter(kinds=("mislabel",), classes=queue.classes, score_min=queue.score_min,
                            score_max=queue.score_max, state="open")
    ids = list(session.scalars(
        select(Flag.id).where(*_queue_conditions(job_id, mislabels), Flag.suggested_label.is_not(None),
                              Flag.suggested_label != literal(""))
        .order_by(Flag.score, Flag.id).limit(max(0, count))
    ))
    rows = rows_for_flags(session, job_id, ids)
    rows["applicable"] = ~rows["deleted"].astype(bool) & (rows["current_label"] != rows["suggested_label"])
    return rows


# --- history and export -------------------------------------------------------------------------


@dataclass(frozen=True)
class HistoryFilter:
    """Which decisions the History screen lists; empty tuples mean all.

    classes match a decision's label before or after it.
    """

    reviewers: tuple[str, ...] = ()
    classes: tuple[str, ...] = ()
    actions: tuple[str, ...] = ()


def _history_statement(dataset_id: int, history: HistoryFilter):
    statement = log_statement(dataset_id)
    if history.reviewers:
        statement = statement.where(Correction.reviewer.in_(history.reviewers))
    if history.classes:
        statement = statement.where(or_(Correction.old_label.in_(history.classes),
                                        Correction.new_label.in_(history.classes)))
    if history.actions:
        statement = statement.where(Correction.action.in_(history.actions))
    return statement


def history_count(session: Session, dataset_id: int, history: HistoryFilter = HistoryFilter()) -> int:
    return session.scalar(select(func.count()).select_from(_history_statement(dataset_id, history).subquery())) or 0


def history_frame(
    session: Session,
    dataset_id: int,
    history: HistoryFilter = HistoryFilter(),
    *,
    newest_first: bool = True,
    offset: int = 0,
    limit: Optional[int] = None,
) -> pd.DataFrame:
    """Decisions of the dataset with HISTORY_COLUMNS (LOG_COLUMNS, then the listing's own price from
    listings.csv; created_at in UTC), filtered, paged when `limit` is given."""
    statement = _history_statement(dataset_id, history).order_by(None).add_columns(Sample.price)
    statement = statement.order_by(Correction.id.desc() if newest_first else Correction.id)
    if limit is not None:
        statement = statement.offset(offset).limit(limit)
    frame = pd.DataFrame(session.execute(statement).all(), columns=HISTORY_COLUMNS)
    frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True)
    for column in ("was_deleted", "deleted"):
        frame[column] = frame[column].astype(bool)
    for column in ("reverts_id", "flag_id"):
        frame[column] = frame[column].astype("Int64")
    return frame


def history_reviewers(session: Session, dataset_id: int) -> list[str]:
    """Reviewer names that appear in the dataset's log, sorted."""
    return sorted(session.scalars(
        select(Correction.reviewer).join(Sample, Sample.id == Correction.sample_id)
        .where(Sample.dataset_id == dataset_id).distinct()
    ))


def export_frame(session: Session, dataset_id: int) -> pd.DataFrame:
    """Every sample (missing ones too) with its current state and its latest decision, for core.export.plan.

    samples_frame's columns plus `last_action` and `reviewer` of the latest
    correction in effect ('' when the sample was never decided on or its decisions were undone),
    `price_fixed` (a reviewer's price stands; `price` is then that price), and
    `listing_json`: the listing's extra listings.csv columns as JSON (None without them).
    """
    samples = samples_frame(session, dataset_id, include_missing=True)
    last = session.execute(
        select(Correction.sample_id, Correction.action, Correction.reviewer)
        .join(Sample, Sample.id == Correction.sample_id)
        .where(Sample.dataset_id == dataset_id, in_effect())
        .order_by(Correction.id)
    ).all()
    latest = {sample_id: (action, reviewer) for sample_id, action, reviewer in last}
    samples["last_action"] = [latest.get(sid, ("", ""))[0] for sid in samples["id"]]
    samples["reviewer"] = [latest.get(sid, ("", ""))[1] for sid in samples["id"]]
    # A reviewer's price stands when the sample's latest correction (of any kind) carries one.
    latest_price = dict(session.execute(
        select(Correction.sample_id, Correction.new_price).join(Sample, Sample.id == Correction.sample_id)
        .where(Sample.dataset_id == dataset_id, Correction.id.in_(select(latest_corrections_subquery().c.last_id)))
    ).all())
    samples["price_fixed"] = [latest_price.get(sid) is not None for sid in samples["id"]]
    extras = dict(session.execute(select(Sample.id, Sample.listing_json).where(Sample.dataset_id == dataset_id)).all())
    samples["listing_json"] = [extras.get(sid) for sid in samples["id"]]
    return samples
