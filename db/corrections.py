"""Review decisions on samples: append-only, derived state, undo, and conflict detection.

A sample's state is (label, deleted). Every decision appends a Correction that
records the state before and after it; nothing is ever updated or deleted. Two
decisions made on the same previous state cannot both land (unique
(sample_id, previous_id)), so a reviewer acting on a stale view is told.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from db.models import Correction, Sample

ACTIONS = ("relabel", "delete", "keep", "restore", "undo")


class DecisionError(ValueError):
    """A decision that cannot be applied (unknown class, impossible action); nothing was changed."""


class DecisionConflict(DecisionError):
    """Someone else decided on the sample after the reviewer last saw it; nothing was changed."""


@dataclass(frozen=True)
class SampleState:
    label: str
    deleted: bool
    last_correction_id: int  # 0 when the sample has no corrections


def latest_correction(session: Session, sample_id: int) -> Optional[Correction]:
    return session.scalars(
        select(Correction).where(Correction.sample_id == sample_id).order_by(Correction.id.desc()).limit(1)
    ).one_or_none()


def sample_state(session: Session, sample: Sample) -> SampleState:
    last = latest_correction(session, sample.id)
    if last is None:
        return SampleState(sample.label, False, 0)
    return SampleState(last.new_label, last.deleted, last.id)


def undo_target(session: Session, sample_id: int) -> Optional[Correction]:
    """The sample's latest decision that is not an undo and has not been undone."""
    history = list(session.scalars(select(Correction).where(Correction.sample_id == sample_id).order_by(Correction.id)))
    undone = {c.reverts_id for c in history if c.action == "undo"}
    for correction in reversed(history):
        if correction.action != "undo" and correction.id not in undone:
            return correction
    return None


def _next_state(session: Session, sample: Sample, state: SampleState, action: str,
                new_label: Optional[str], classes: list[str]) -> tuple[str, bool, Optional[int]]:
    """(label, deleted, reverts_id) after `action`, or DecisionError if it is impossible."""
    if action == "relabel":
        if new_label not in classes:
            raise DecisionError(f"unknown class {new_label!r}; classes are: {', '.join(classes)}")
        if state.deleted:
            raise DecisionError(f"{sample.path} is deleted; restore it before relabelling")
        if new_label == state.label:
            raise DecisionError(f"{sample.path} is already labelled {new_label!r}")
        return new_label, False, None
    if action == "delete":
        if state.deleted:
            raise DecisionError(f"{sample.path} is already deleted")
        return state.label, True, None
    if action == "keep":
        if state.deleted:
            raise DecisionError(f"{sample.path} is deleted; restore it instead of keeping it")
        return state.label, False, None
    if action == "restore":
        if not state.deleted:
            raise DecisionError(f"{sample.path} is not deleted, so it cannot be restored")
        return state.label, False, None
    target = undo_target(session, sample.id)
    if target is None:
        raise DecisionError(f"{sample.path} has no decision to undo")
    return target.old_label, target.was_deleted, target.id


def decide(
    session: Session,
    sample: Sample,
    action: str,
    *,
    classes: list[str],
    new_label: Optional[str] = None,
    reviewer: str = "",
    note: str = "",
    expected_last_id: Optional[int] = None,
    flag_id: Optional[int] = None,
) -> Correction:
    """Append one decision on `sample` and return it (flushed, with its id).

    expected_last_id: the id of the latest correction the reviewer saw (0 for
    none); if the sample has changed since, DecisionConflict is raised. None
    means "decide on whatever the current state is" (scripts).
    Raises DecisionError when the action is impossible; the session is then unchanged.
    """
    if action not in ACTIONS:
        raise DecisionError(f"unknown action {action!r}; actions are: {', '.join(ACTIONS)}")
    state = sample_state(session, sample)
    if expected_last_id is not None and expected_last_id != state.last_correction_id:
        raise DecisionConflict(
            f"{sample.path} was changed by someone else since you loaded it; reload to see the latest decision"
        )
    label, deleted, reverts_id = _next_state(session, sample, state, action, new_label, classes)
    correction = Correction(
        sample_id=sample.id, action=action, old_label=state.label, new_label=label,
        was_deleted=state.deleted, deleted=deleted, reviewer=reviewer, note=note,
        previous_id=state.last_correction_id, reverts_id=reverts_id, flag_id=flag_id,
    )
    try:
        with session.begin_nested():
            session.add(correction)
    except IntegrityError as error:
        raise DecisionConflict(
            f"{sample.path} was changed by someone else at the same moment; reload to see the latest decision"
        ) from error
    return correction
