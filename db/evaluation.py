"""The dataset's evaluation split, the reference labels runs are scored against, and runs compared on common ground.

Each takes the session first. The split is stored per listing (EvaluationSide) the first time it is
needed and only ever extended: new files join by core.train.eval_split's rule, nothing moves.
"""
from __future__ import annotations

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.train.compare import BOOTSTRAP_ROUNDS, RunComparison, compare_predictions
from core.train.eval_split import EVALUATION_FRACTION, assign_evaluation
from core.scan.copies import duplicate_groups
from db.corrections import in_effect
from db.engine import insert_ignoring_duplicates
from db.models import Correction, EvaluationSide, Sample, utcnow
from db.queries import samples_frame
from db.runs import get_run, run_name, run_predictions

#: Which labels runs are scored against: every listing's label after all decisions, or only the
#: listings a reviewer relabelled or kept (decisions still in effect).
LABEL_SOURCES = ("current", "verified")
LABEL_SOURCE_TEXT = {
    "current": "today's labels (after every review decision)",
    "verified": "verified labels only (listings a reviewer relabelled or kept)",
}


def evaluation_sides(session: Session, dataset_id: int) -> pd.Series:
    """Stored sides: bool per sample id (True = evaluation), every listing that has one."""
    rows = session.execute(select(EvaluationSide.sample_id, EvaluationSide.evaluation)
                           .where(EvaluationSide.dataset_id == dataset_id)).all()
    return pd.Series({sample_id: bool(side) for sample_id, side in rows}, dtype=bool, name="evaluation")


def ensure_evaluation_split(session: Session, dataset_id: int, *, fraction: float = EVALUATION_FRACTION) -> int:
    """Give every present, hashed listing without a side one (core.train.eval_split.assign_evaluation); returns how
    many were added. Writes: call it in `factory.begin()`. Two processes at once add the same sides, and
    the second one's inserts are ignored."""
    samples = samples_frame(session, dataset_id)
    samples = samples[samples["content_hash"].notna()].reset_index(drop=True)
    stored = evaluation_sides(session, dataset_id)
    if samples.empty or samples["id"].isin(stored.index).all():
        return 0
    assigned = samples["id"].map(stored).astype(object).where(samples["id"].isin(stored.index), None)
    sides = assign_evaluation(samples["content_hash"].tolist(), samples["label"].tolist(),
                              duplicate_groups(samples), assigned.tolist(), fraction=fraction)
    new = ~samples["id"].isin(stored.index).to_numpy()
    now = utcnow()
    rows = [{"sample_id": int(sample_id), "dataset_id": dataset_id, "evaluation": bool(side), "assigned_at": now}
            for sample_id, side in zip(samples["id"][new], sides[new])]
    # executemany, which SQLAlchemy sends in batches: one multi-row VALUES of 100,000 listings would bind
    # 400,000 parameters, past SQLite's limit (32,766)
    session.execute(insert_ignoring_duplicates(session, EvaluationSide).on_conflict_do_nothing(), rows)
    return len(rows)


def split_summary(session: Session, dataset_id: int) -> dict[str, int]:
    """How the present listings divide: {"evaluation": n, "training": n, "unassigned": n} (unassigned: not
    hashed yet, or scanned since the split was last extended)."""
    counts = dict(session.execute(
        select(EvaluationSide.evaluation, func.count())
        .join(Sample, Sample.id == EvaluationSide.sample_id)
        .where(EvaluationSide.dataset_id == dataset_id, Sample.missing.is_(False))
        .group_by(EvaluationSide.evaluation)
    ).all())
    present = session.scalar(select(func.count(Sample.id)).where(Sample.dataset_id == dataset_id,
                                                                 Sample.missing.is_(False)))
    evaluation, training = int(counts.get(True, 0)), int(counts.get(False, 0))
    return {"evaluation": evaluation, "training": training, "unassigned": int(present) - evaluation - training}


def _verified_ids(session: Session, dataset_id: int) -> set[int]:
    """Samples with a relabel or keep decision still in effect."""
    return set(session.scalars(
        select(Correction.sample_id).join(Sample, Sample.id == Correction.sample_id)
        .where(Sample.dataset_id == dataset_id, Correction.action.in_(("relabel", "keep")), in_effect())
        .distinct()
    ))


def reference_labels(session: Session, dataset_id: int, *, labels: str = "current") -> pd.Series:
    """Class name per sample id to score runs against: every listing not deleted with its label after every
    decision ("current"), or only those a reviewer relabelled or kept ("verified")."""
    if labels not in LABEL_SOURCES:
        raise ValueError(f"unknown labels {labels!r}; choose one of: {', '.join(LABEL_SOURCES)}")
    samples = samples_frame(session, dataset_id, include_missing=True)
    samples = samples[~samples["deleted"]]
    if labels == "verified":
        samples = samples[samples["id"].isin(_verified_ids(session, dataset_id))]
    return pd.Series(samples["current_label"].to_numpy(), index=samples["id"].to_numpy(), name="label")


def compare_runs(session: Session, before_id: int, after_id: int, *, labels: str = "current",
                 rounds: int = BOOTSTRAP_ROUNDS) -> RunComparison:
    """Runs `before_id` and `after_id` (succeeded runs of one dataset) compared on the validation images both
    scored, against `labels` (see reference_labels); ValueError in one line otherwise."""
    jobs = [get_run(session, run_id) for run_id in (before_id, after_id)]
    for job in jobs:
        if job is not None and job.status != "succeeded":
            raise ValueError(f"{run_name(job.number, capital=False)} is not a finished training run")
    if None in jobs:
        raise ValueError("no such training run")
    if jobs[0].dataset_id != jobs[1].dataset_id:
        raise ValueError(f"runs {jobs[0].number} and {jobs[1].number} trained on different datasets")
    reference = reference_labels(session, jobs[0].dataset_id, labels=labels)
    return compare_predictions(run_predictions(jobs[0]), run_predictions(jobs[1]), reference, rounds=rounds)

