"""The dataset's evaluation split: which listings every training run is scored on, drawn once from file contents.

A listing's side depends on a hash of its bytes, its folder class and its duplicate group, never on its
current label or on a run's seed, so a rescan, a new database over the same folder and any decision keep
it; db.evaluation stores the sides and hands them to training runs (core.models.samples.select_samples).
"""
from __future__ import annotations

import hashlib
from typing import Sequence

import numpy as np
import pandas as pd

#: Share of each folder class drawn for evaluation when the split is first drawn.
EVALUATION_FRACTION = 0.2
#: Salt of the content hash, so the split is independent of other uses of the same hash.
SPLIT_SALT = "listing-audit evaluation split"


def split_position(content_hash: str) -> float:
    """Where a file's content falls in [0, 1): a uniform draw fixed by its sha256 hex digest."""
    digest = hashlib.sha256(f"{SPLIT_SALT}:{content_hash}".encode()).hexdigest()
    return int(digest[:13], 16) / 16 ** 13


def _stratified_draw(positions: np.ndarray, strata: np.ndarray, fraction: float) -> np.ndarray:
    """Bool (N,): within each stratum the round(fraction * n) rows with the lowest positions (at least one
    when the stratum has two or more rows, never all of them)."""
    chosen = np.zeros(len(positions), dtype=bool)
    for stratum in pd.unique(strata):
        rows = np.flatnonzero(strata == stratum)
        if len(rows) < 2:
            continue
        count = min(max(int(round(fraction * len(rows))), 1), len(rows) - 1)
        chosen[rows[np.argsort(positions[rows], kind="stable")[:count]]] = True
    return chosen


def _group_sides(positions: np.ndarray, groups: np.ndarray, sides: np.ndarray) -> np.ndarray:
    """`sides` (bool (N,)) with every group moved to the side of its member with the lowest position."""
    order = np.lexsort((positions, groups))
    first = pd.Series(sides[order]).groupby(groups[order], sort=False).transform("first").to_numpy(bool)
    together = np.empty_like(sides)
    together[order] = first
    return together


def assign_evaluation(content_hashes: Sequence[str], strata: Sequence[str], groups: Sequence[int],
                      assigned: Sequence[object], *, fraction: float = EVALUATION_FRACTION) -> np.ndarray:
    """The evaluation side of every listing: bool (N,), True = evaluation.

    content_hashes: sha256 hex of each file, shape (N,); strata: folder classes, shape (N,);
    groups: duplicate-group ids (core.scan.copies.duplicate_groups), shape (N,);
    assigned: each listing's stored side (True / False) or None where none is stored yet.
    Stored sides never change. When nothing is stored yet, the split is drawn stratified by folder
    class (the lowest split positions of each class); afterwards a new listing joins its duplicate
    group's stored side, or else evaluation when its split position is below `fraction`. Copies of
    one photo drawn together go to the side of the copy with the lowest position.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"the evaluation fraction must be between 0 and 1, got {fraction}")
    positions = np.array([split_position(h) for h in content_hashes], dtype=np.float64)
    strata, groups = np.asarray(strata, dtype=object), np.asarray(groups, dtype=np.int64)
    stored = pd.Series(list(assigned), dtype=object)
    known = stored.notna().to_numpy()
    if not known.any():
        return _group_sides(positions, groups, _stratified_draw(positions, strata, fraction))
    sides = np.where(known, stored.fillna(False).astype(bool).to_numpy(), positions < fraction)
    group_side = pd.Series(sides[known]).groupby(groups[known]).first()
    joins = ~known & np.isin(groups, group_side.index.to_numpy())
    sides[joins] = group_side.reindex(groups[joins]).to_numpy(bool)
    new = ~known & ~joins
    sides[new] = _group_sides(positions[new], groups[new], sides[new])
    return sides
