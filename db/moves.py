"""Decisions follow a file that moved: when a scan finds a file gone and a new one with the same bytes (a class
folder renamed, a photo moved), the old path's decisions are carried to the new path, so none is orphaned.

Carried decisions are ordinary ones (the log keeps them, Undo reverts them), noted with the path they came from.
"""
from __future__ import annotations

from collections import Counter
from typing import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.corrections import decide, in_effect, new_batch_id, sample_state, undo_target
from db.models import Correction, Sample
from db.queries import dataset_classes


def _vanished_with_decisions(session: Session, dataset_id: int) -> list[Sample]:
    """Missing samples with a decision in effect."""
    decided = select(Correction.sample_id).where(in_effect())
    return list(session.scalars(select(Sample).where(Sample.dataset_id == dataset_id, Sample.missing.is_(True),
                                                     Sample.content_hash.is_not(None), Sample.id.in_(decided))))


def _unique_by_hash(samples: Iterable[Sample]) -> dict[str, Sample]:
    """content hash -> sample, for the hashes only one of `samples` has (a copy makes the match ambiguous)."""
    samples = list(samples)
    counts = Counter(sample.content_hash for sample in samples)
    return {sample.content_hash: sample for sample in samples if counts[sample.content_hash] == 1}


def carry_moved_decisions(session: Session, dataset_id: int, new_paths: Iterable[str]) -> list[tuple[str, str]]:
    """Carry the state of each vanished, decided sample to the one new sample (of `new_paths`, just scanned)
    with the same content hash; returns (old path, new path) of each carried. Writes: call it in the scan's
    transaction, after new files are stored and vanished ones marked missing.

    The new sample gets the old one's state as decisions: a relabel when the old one had been relabelled
    to a class that still exists, a delete when it was deleted, its fixed price, or a keep when the old
    decisions changed nothing, with the reviewer of the old path's last decision; each reviewer's carried
    decisions share a batch, so one Undo of theirs reverts them together.
    """
    old = _unique_by_hash(_vanished_with_decisions(session, dataset_id))
    if not old:  # the usual case, and every first scan: nothing to look up
        return []
    new_paths = set(new_paths)
    same_content = session.scalars(select(Sample).where(
        Sample.dataset_id == dataset_id, Sample.missing.is_(False), Sample.content_hash.in_(list(old))))
    new = _unique_by_hash(sample for sample in same_content if sample.path in new_paths)
    classes = dataset_classes(session, dataset_id)
    carried = []
    batches: dict[str, str] = {}  # reviewer -> batch: each reviewer's carried decisions are one action of theirs
    for content_hash, before in old.items():
        after = new.get(content_hash)
        if after is None or sample_state(session, after).last_correction_id:
            continue
        last = undo_target(session, before.id)
        reviewer = last.reviewer if last else ""
        _carry(session, before, after, classes=classes, reviewer=reviewer,
               batch_id=batches.setdefault(reviewer, new_batch_id()))
        carried.append((before.path, after.path))
    return sorted(carried)


def _carry(session: Session, before: Sample, after: Sample, *, classes: list[str], reviewer: str,
           batch_id: str) -> None:
    state = sample_state(session, before)
    options = dict(classes=classes, reviewer=reviewer, batch_id=batch_id,
                   note=f"carried from {before.path}: the same file, moved since the last scan")
    changed = False
    if state.label != before.label and state.label in classes and state.label != after.label:
        decide(session, after, "relabel", new_label=state.label, **options)
        changed = True
    if state.price is not None and state.price != after.price:
        decide(session, after, "price", new_price=state.price, **options)
        changed = True
    if state.deleted:
        decide(session, after, "delete", **options)
        changed = True
    if not changed:
        decide(session, after, "keep", **options)
