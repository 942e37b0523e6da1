"""What a run keeps in its folder: checkpoints, out-of-fold probabilities, and who owns the folder.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch

BEST_CHECKPOINT = "best.pt"
LAST_CHECKPOINT = "last.pt"
CONFIG_FILE = "config.json"
SAMPLES_FILE = "samples.json"
OOF_PROBS_FILE = "oof_pred_probs.npy"
OOF_IDS_FILE = "oof_sample_ids.npy"
OOF_CLASSES_FILE = "oof_classes.json"
#: Which database and run a run folder belongs to (see claim_run_folder).
OWNER_FILE = "run.json"
#: Keys of the owner record that must match for a run to use a folder.
OWNER_KEYS = ("database_id", "run_id")
#: Files a run resumes from; another run must neither resume from them nor overwrite them.
RUN_STATE_FILES = (LAST_CHECKPOINT, BEST_CHECKPOINT, SAMPLES_FILE)


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    temporary = path.with_suffix(".tmp")
    torch.save(state, temporary)
    os.replace(temporary, path)


def link_checkpoint(source: Path, path: Path) -> None:
    """Make `path` hold what `source` holds: a hard link (nothing written again), or a copy where links are
    not supported. `path` is replaced in one step; a later replacement of `source` leaves it as it is."""
    temporary = path.with_suffix(".tmp")
    temporary.unlink(missing_ok=True)
    try:
        os.link(source, temporary)
    except OSError:
        shutil.copyfile(source, temporary)
    os.replace(temporary, path)


def load_checkpoint(path: Path, *, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """A checkpoint written by `fit` (plain tensors, numbers and lists only: loaded with weights_only=True)."""
    return torch.load(path, map_location=map_location, weights_only=True)


def save_out_of_fold(out_dir: Path, sample_ids: np.ndarray, probs: np.ndarray, classes: Sequence[str]) -> dict[str, str]:
    """Write oof_pred_probs.npy (N, K), oof_sample_ids.npy (N,) and oof_classes.json; returns their paths."""
    paths = {"pred_probs": out_dir / OOF_PROBS_FILE, "sample_ids": out_dir / OOF_IDS_FILE,
             "classes": out_dir / OOF_CLASSES_FILE}
    np.save(paths["pred_probs"], probs.astype(np.float32), allow_pickle=False)
    np.save(paths["sample_ids"], np.asarray(sample_ids, dtype=np.int64), allow_pickle=False)
    paths["classes"].write_text(json.dumps(list(classes)))
    return {name: str(path) for name, path in paths.items()}


def load_out_of_fold(run_dir: str | os.PathLike, sample_ids: Sequence[int], *,
                     classes: Optional[Sequence[str]] = None) -> np.ndarray:
    """Out-of-fold probabilities of a run aligned to `sample_ids`: float32, shape (len(sample_ids), K).

    Columns follow the run's classes; passing `classes` checks they are the
    same (the audit's class order). Raises KeyError when a sample has no
    out-of-fold row (it was not part of that run).
    """
    folder = Path(run_dir)
    probs = np.load(folder / OOF_PROBS_FILE, allow_pickle=False)
    stored_ids = np.load(folder / OOF_IDS_FILE, allow_pickle=False)
    stored_classes = json.loads((folder / OOF_CLASSES_FILE).read_text())
    if classes is not None and list(classes) != stored_classes:
        raise ValueError(f"the run's classes {stored_classes} differ from {list(classes)}")
    row_of = {int(sample_id): row for row, sample_id in enumerate(stored_ids)}
    missing = [int(s) for s in sample_ids if int(s) not in row_of]
    if missing:
        raise KeyError(f"{len(missing)} samples have no out-of-fold probabilities in {folder} (e.g. id {missing[0]})")
    return probs[[row_of[int(s)] for s in sample_ids]]


class ForeignRunFolder(ValueError):
    """A run folder that belongs to another run (of another database, or with another id)."""


def _describe_owner(owner: dict[str, Any]) -> str:
    return f"run {owner.get('run_id')} of database {owner.get('database') or owner.get('database_id')}"


def claim_run_folder(out_dir: Path, owner: dict[str, Any]) -> None:
    """Check that `out_dir` is the folder of the run `owner` names, recording the owner there on first use.

    owner: {"database_id": str, "run_id": int, ...}; only OWNER_KEYS are compared,
    other keys (the database's path) are kept for people to read. Raises
    ForeignRunFolder when the folder's owner record names another database or run,
    or when the folder holds a checkpoint or samples but no owner record (a run
    made before records were kept, or files copied in): whose they are cannot be told.
    """
    record = out_dir / OWNER_FILE
    if not record.is_file():
        leftovers = [name for name in RUN_STATE_FILES if (out_dir / name).exists()]
        if leftovers:
            raise ForeignRunFolder(f"{out_dir} holds {', '.join(leftovers)} but no {OWNER_FILE} saying whose they "
                                   f"are; refusing to resume from or overwrite them: start a new run")
        record.write_text(json.dumps(owner, indent=2))
        return
    try:
        stored = json.loads(record.read_text())
    except ValueError as error:
        raise ForeignRunFolder(f"cannot read {record} ({error}); start a new run") from error
    if not isinstance(stored, dict):
        stored = {}
    if any(stored.get(key) != owner[key] for key in OWNER_KEYS):
        raise ForeignRunFolder(f"{out_dir} belongs to {_describe_owner(stored)}, not to {_describe_owner(owner)}; "
                               f"refusing to use its checkpoint")
