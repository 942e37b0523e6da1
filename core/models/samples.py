"""The samples of a training run: which listings it may use, and their train/validation split.

The split is stratified by class and keeps copies (a duplicate group) on one side.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from core.files import CHANGED_SINCE_SCAN
from core.scan.copies import duplicate_groups


def _split_key(seed: int, sample_id: int) -> str:
    return hashlib.sha256(f"{seed}:{sample_id}".encode()).hexdigest()


def stratified_split(sample_ids: Sequence[int], strata: Sequence[str], *, val_fraction: float, seed: int) -> np.ndarray:
    """Which samples are validation samples: bool mask, shape (N,).

    Within each stratum, samples are ranked by a hash of (seed, sample id) and the
    first round(val_fraction * n) go to validation (at least one when the
    stratum has two or more samples, none when it has one). A sample's side
    depends only on its id, its stratum's size and the seed, so runs on the same
    samples get the same split whatever their labels are now.
    """
    sample_ids = np.asarray(sample_ids, dtype=np.int64)
    strata = np.asarray(strata, dtype=object)
    is_val = np.zeros(len(sample_ids), dtype=bool)
    for stratum in sorted(set(strata.tolist())):
        positions = np.flatnonzero(strata == stratum)
        if len(positions) < 2:
            continue
        ranked = sorted(positions, key=lambda p: _split_key(seed, int(sample_ids[p])))
        count = min(max(int(round(val_fraction * len(positions))), 1), len(positions) - 1)
        is_val[ranked[:count]] = True
    return is_val


@dataclass
class RunSamples:
    """What a run trains on, in a fixed order, and its split. Saved with the run (samples.json) for resuming.

    labels: indices into classes, shape (N,); train_index, val_index: positions into the arrays.
    skipped: sample id -> why it was left out although usable in the database (could not be decoded).
    """

    classes: list[str]
    sample_ids: np.ndarray
    paths: list[str]
    content_hashes: list[str]
    labels: np.ndarray
    train_index: np.ndarray
    val_index: np.ndarray
    skipped: dict[int, str] = field(default_factory=dict)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps({
            "classes": self.classes, "sample_ids": self.sample_ids.tolist(), "paths": self.paths,
            "content_hashes": self.content_hashes, "labels": self.labels.tolist(),
            "train_index": self.train_index.tolist(), "val_index": self.val_index.tolist(),
            "skipped": {str(k): v for k, v in self.skipped.items()},
        }))

    @classmethod
    def load(cls, path: Path) -> "RunSamples":
        data = json.loads(path.read_text())
        return cls(
            classes=data["classes"], sample_ids=np.asarray(data["sample_ids"], dtype=np.int64), paths=data["paths"],
            content_hashes=data["content_hashes"], labels=np.asarray(data["labels"], dtype=np.int64),
            train_index=np.asarray(data["train_index"], dtype=np.int64),
            val_index=np.asarray(data["val_index"], dtype=np.int64),
            skipped={int(k): v for k, v in data["skipped"].items()},
        )

    def split(self) -> dict[str, list[int]]:
        """Sample ids on each side: {"train": [...], "val": [...]}."""
        return {"train": self.sample_ids[self.train_index].tolist(), "val": self.sample_ids[self.val_index].tolist()}


def usable_samples(samples: pd.DataFrame, classes: Sequence[str]) -> pd.Series:
    """Bool per row: not deleted, readable, hashed, and labelled with one of `classes`."""
    return (~samples["deleted"] & samples["readable"] & samples["content_hash"].notna()
            & samples["current_label"].isin(list(classes)))


def keep_groups_together(is_val: np.ndarray, sample_ids: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """`is_val` (bool (N,)) with every group (int (N,)) moved to the side of its lowest sample id, so
    copies of one photo are never on both sides of a split."""
    order = np.lexsort((sample_ids, groups))
    first_of_group = pd.Series(is_val[order]).groupby(groups[order], sort=False).transform("first").to_numpy()
    together = np.empty_like(is_val)
    together[order] = first_of_group
    return together


def select_samples(samples: pd.DataFrame, classes: Sequence[str], *, val_fraction: float, seed: int) -> RunSamples:
    """The run's samples and split from a dataset's current state (db.queries.samples_frame columns).

    With an `evaluation` column (bool: the dataset's evaluation split, db.evaluation) validation is
    exactly the listings it marks, so every such run scores on the same images. Without one the split
    is drawn over all present samples stratified by folder class with `seed`, so relabelling or
    deleting a sample never moves other samples across it; copies of one photo (exact, or near by
    pHash: core.scan.copies.duplicate_groups) then go to the side of the copy with the lowest id,
    so a re-upload never validates its own original. Deleted, unreadable and unlabelled samples are
    left out. Labels are the current ones.
    """
    if "evaluation" in samples:
        is_val = samples["evaluation"].fillna(False).to_numpy(dtype=bool)
    else:
        is_val = stratified_split(samples["id"], samples["label"], val_fraction=val_fraction, seed=seed)
        is_val = keep_groups_together(is_val, samples["id"].to_numpy(dtype=np.int64), duplicate_groups(samples))
    keep = usable_samples(samples, classes).to_numpy()
    chosen = samples[keep]
    lookup = {name: index for index, name in enumerate(classes)}
    positions = np.arange(len(chosen))
    return RunSamples(
        classes=list(classes), sample_ids=chosen["id"].to_numpy(dtype=np.int64), paths=chosen["path"].tolist(),
        content_hashes=chosen["content_hash"].tolist(),
        labels=chosen["current_label"].map(lookup).to_numpy(dtype=np.int64),
        train_index=positions[~is_val[keep]], val_index=positions[is_val[keep]],
    )


def without_failed(samples: RunSamples, failed: dict[int, str]) -> tuple[RunSamples, np.ndarray]:
    """Drop positions that could not be decoded; returns the smaller RunSamples and the kept positions."""
    kept = np.array([p for p in range(len(samples.sample_ids)) if p not in failed], dtype=np.int64)
    new_position = {int(old): new for new, old in enumerate(kept)}
    reindex = lambda index: np.array([new_position[int(p)] for p in index if int(p) in new_position], dtype=np.int64)
    skipped = {**samples.skipped, **{int(samples.sample_ids[p]): reason for p, reason in failed.items()}}
    return RunSamples(
        classes=samples.classes, sample_ids=samples.sample_ids[kept], paths=[samples.paths[p] for p in kept],
        content_hashes=[samples.content_hashes[p] for p in kept], labels=samples.labels[kept],
        train_index=reindex(samples.train_index), val_index=reindex(samples.val_index), skipped=skipped,
    ), kept


def skipped_text(skipped: dict) -> str:
    """How many images a run left out and why, e.g. "3 left out: 2 changed since the scan (rescan the dataset),
    1 could not be decoded" ("none left out" when `skipped`, sample id -> reason, is empty)."""
    if not skipped:
        return "none left out"
    changed = sum(reason == CHANGED_SINCE_SCAN for reason in skipped.values())
    parts = ([f"{changed:,} {CHANGED_SINCE_SCAN}"] if changed else []) + (
        [f"{len(skipped) - changed:,} could not be decoded"] if len(skipped) > changed else [])
    return f"{len(skipped):,} left out: {', '.join(parts)}"


def check_trainable(samples: RunSamples) -> None:
    if len(samples.train_index) < 2 or len(samples.val_index) < 1:
        raise ValueError(
            f"too few usable samples to train: {len(samples.train_index)} for training and "
            f"{len(samples.val_index)} for validation (need at least 2 and 1)"
        )
    if len(np.unique(samples.labels[samples.train_index])) < 2:
        raise ValueError("the training samples all have one label: a classifier needs at least two classes")
