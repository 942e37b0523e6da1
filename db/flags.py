"""Flags of audit jobs: storing one audit's flags, reading them back with their files, counting, comparing runs.

Every audit job keeps its own flags (Flag.job_id), so a later audit never
overwrites what an earlier one said. Each function takes the caller's session first.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import pandas as pd
from sqlalchemy import and_, func, insert, select, text
from sqlalchemy.orm import Session

from core.audit.checks.base import PAST_BUDGET_PREFIX
from db.models import Flag, Job, Sample
from db.review import queue_summary

#: Columns of flags_frame: the flag and its sample's path (relative to the dataset root).
FLAG_FRAME_COLUMNS = [
    "flag_id", "job_id", "sample_id", "path", "kind", "score", "given_label", "suggested_label", "group",
    "reason", "evidence",
]
INSERT_BATCH = 2000
#: Columns of kind_summary.
KIND_SUMMARY_COLUMNS = ["kind", "files", "items", "open", "decided"]


def _json_value(value: Any) -> Any:
    """numpy scalars and arrays as plain Python values, for json.dumps."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _optional_text(value: Any) -> Optional[str]:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value == "":
        return None
    return str(value)


def _optional_int(value: Any) -> Optional[int]:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return int(value)


def store_flags(session: Session, job_id: int, flags: pd.DataFrame) -> int:
    """Insert the flags of audit job `job_id`; returns how many.

    flags: core.audit.run.FLAG_COLUMNS (sample_id, kind, score, given_label,
    suggested_label, group, reason, evidence dict).
    """
    rows = [
        {
            "job_id": job_id, "sample_id": int(row.sample_id), "kind": row.kind, "score": float(row.score),
            "given_label": row.given_label, "suggested_label": _optional_text(row.suggested_label),
            "group_id": _optional_int(row.group), "reason": row.reason or "",
            "evidence_json": json.dumps(row.evidence or {}, default=_json_value),
        }
        for row in flags.itertuples(index=False)
    ]
    for start in range(0, len(rows), INSERT_BATCH):
        session.execute(insert(Flag), rows[start:start + INSERT_BATCH])
    if session.get_bind().dialect.name == "postgresql":
        # The planner's row counts for this audit's flags, before a reviewer opens its queue: without
        # them PostgreSQL plans the queue's subqueries as if the audit had one flag (nested loops over
        # every flag, 4x slower at 50,000 flags) until autovacuum next analyses the table. ANALYZE sees
        # the rows this transaction inserted.
        session.execute(text("ANALYZE flags"))
    return len(rows)


def audit_jobs(session: Session, dataset_id: int, *, status: Optional[str] = "succeeded") -> list[Job]:
    """The dataset's audit jobs, newest first; only those with `status` unless it is None."""
    statement = select(Job).where(Job.dataset_id == dataset_id, Job.kind == "audit")
    if status is not None:
        statement = statement.where(Job.status == status)
    return list(session.scalars(statement.order_by(Job.id.desc())))


def previous_audit_job(session: Session, job: Job) -> Optional[Job]:
    """The succeeded audit of the same dataset just before `job`, or None."""
    return session.scalars(
        select(Job).where(Job.dataset_id == job.dataset_id, Job.kind == "audit", Job.status == "succeeded",
                          Job.id < job.id)
        .order_by(Job.id.desc()).limit(1)
    ).one_or_none()


def flags_frame(session: Session, job_id: int, *, kind: Optional[str] = None) -> pd.DataFrame:
    """The flags of audit job `job_id` (of one kind if given), worst first (score, then id).

    Columns FLAG_FRAME_COLUMNS; suggested_label and group are None where there is none;
    evidence is the parsed dict.
    """
    statement = (
        select(Flag.id, Flag.job_id, Flag.sample_id, Sample.path, Flag.kind, Flag.score, Flag.given_label,
               Flag.suggested_label, Flag.group_id, Flag.reason, Flag.evidence_json)
        .join(Sample, Sample.id == Flag.sample_id)
        .where(Flag.job_id == job_id)
        .order_by(Flag.score, Flag.id)
    )
    if kind is not None:
        statement = statement.where(Flag.kind == kind)
    frame = pd.DataFrame(session.execute(statement).all(), columns=FLAG_FRAME_COLUMNS)
    frame["evidence"] = [json.loads(text or "{}") for text in frame["evidence"]]
    frame["suggested_label"] = frame["suggested_label"].astype(object).where(frame["suggested_label"].notna(), None)
    frame["group"] = pd.Series([None if pd.isna(group) else int(group) for group in frame["group"]],
                               index=frame.index, dtype=object)
    return frame


def flag_counts(session: Session, job_id: int) -> dict[str, int]:
    """Flags per kind of audit job `job_id` (kinds with none are absent), by kind name."""
    rows = session.execute(
        select(Flag.kind, func.count(Flag.id)).where(Flag.job_id == job_id).group_by(Flag.kind).order_by(Flag.kind)
    )
    return {kind: count for kind, count in rows}


def kind_summary(session: Session, job_id: int) -> pd.DataFrame:
    """Per kind of check audit job `job_id` ran, failed checks left out, those that flagged nothing included:
    flagged files, review items (a duplicate group counts once, as on the Review page), how many open and decided.

    Columns KIND_SUMMARY_COLUMNS, in the order the audit ran the checks.
    """
    files = flag_counts(session, job_id)
    ran = (json.loads(session.get(Job, job_id).result_json or "{}")).get("flags_by_kind") or {}
    kinds = list(ran) + [kind for kind in files if kind not in ran]
    queue = queue_summary(session, job_id).set_index("kind")
    rows = [
        {"kind": kind, "files": files.get(kind, 0),
         **{column: int(queue.at[kind, column]) if kind in queue.index else 0
            for column in ("items", "open", "decided")}}
        for kind in kinds
    ]
    return pd.DataFrame(rows, columns=KIND_SUMMARY_COLUMNS)


def class_flag_counts(session: Session, job_id: int) -> pd.DataFrame:
    """Per class (the label the audit saw): flags per kind, flagged samples and their share of the class.

    Index: class name; columns: one per kind present, `flagged_samples` (distinct samples
    with any flag), `samples` (audited samples of the class, from the job's result) and
    `flagged_share`; sorted noisiest (highest share, then most flagged) first. A ranking past a
    check's review budget (core.audit.checks.base.PAST_BUDGET_PREFIX) is not flags and not counted.
    """
    flags = and_(Flag.job_id == job_id, ~Flag.kind.startswith(PAST_BUDGET_PREFIX, autoescape=True))
    rows = session.execute(
        select(Flag.given_label, Flag.kind, func.count(Flag.id)).where(flags).group_by(Flag.given_label, Flag.kind)
    ).all()
    per_kind = pd.DataFrame(rows, columns=["class", "kind", "flags"])
    if per_kind.empty:
        table = pd.DataFrame(index=pd.Index([], name="class"))
    else:
        table = per_kind.pivot_table(index="class", columns="kind", values="flags", fill_value=0, aggfunc="sum")
        table.columns.name = None
    distinct = dict(session.execute(
        select(Flag.given_label, func.count(func.distinct(Flag.sample_id))).where(flags).group_by(Flag.given_label)
    ).all())
    sizes = (json.loads(session.get(Job, job_id).result_json or "{}")).get("class_sizes", {})
    classes = sorted(set(table.index) | set(sizes))
    table = table.reindex(classes, fill_value=0).astype(int)
    table["flagged_samples"] = [int(distinct.get(name, 0)) for name in classes]
    table["samples"] = [int(sizes.get(name, 0)) for name in classes]
    table.index.name = "class"
    table["flagged_share"] = np.where(table["samples"] > 0, table["flagged_samples"] / table["samples"].clip(lower=1), 0.0)
    return table.sort_values(["flagged_share", "flagged_samples"], ascending=False, kind="stable")


@dataclass(frozen=True)
class FlagDiff:
    """What changed from audit `old_job_id` to audit `new_job_id`, keyed by (sample, kind).

    new: flags of the new audit with no flag of the same kind on the same sample in the
    old one; resolved: flags of the old audit that the new one no longer raises;
    kept: how many (sample, kind) flags both raise. Frames have FLAG_FRAME_COLUMNS.
    """

    old_job_id: int
    new_job_id: int
    new: pd.DataFrame
    resolved: pd.DataFrame
    kept: int

    def counts(self) -> pd.DataFrame:
        """Per kind: new, resolved (index: kind)."""
        table = pd.DataFrame({"new": self.new["kind"].value_counts(), "resolved": self.resolved["kind"].value_counts()})
        return table.fillna(0).astype(int).sort_index()


def _checks_run(session: Session, job_id: int) -> Optional[set[str]]:
    """The checks audit job `job_id` ran (from its parameters), None when it does not say."""
    checks = json.loads(session.get(Job, job_id).params_json or "{}").get("checks")
    return set(checks) if checks else None


def diff_flags(session: Session, old_job_id: int, new_job_id: int) -> FlagDiff:
    """Compare the flags of two audit jobs (see FlagDiff), over the kinds of check both ran:
    a check left out of one audit is not counted as its flags appearing or vanishing."""
    old = flags_frame(session, old_job_id)
    new = flags_frame(session, new_job_id)
    old_checks, new_checks = _checks_run(session, old_job_id), _checks_run(session, new_job_id)
    if old_checks is not None and new_checks is not None:
        both = old_checks & new_checks
        old = old[old["kind"].isin(both)]
        new = new[new["kind"].isin(both)]
    old_keys = set(zip(old["sample_id"], old["kind"]))
    new_keys = set(zip(new["sample_id"], new["kind"]))
    appeared = [key not in old_keys for key in zip(new["sample_id"], new["kind"])]
    vanished = [key not in new_keys for key in zip(old["sample_id"], old["kind"])]
    return FlagDiff(old_job_id, new_job_id, new[appeared].reset_index(drop=True),
                    old[vanished].reset_index(drop=True), len(old_keys & new_keys))
