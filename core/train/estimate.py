"""How long a training run will take, from an earlier run of the same backbone on the same dataset.

Pure: the earlier run's phase times (core.models.loop.PhaseClock) and settings in, seconds out. Per
epoch, training and evaluation scale with the pixels per image (convolutions cost per pixel) and
with the number of models trained (the final one, plus K fold models with --folds K); start-up and
decoding do not depend on the epochs.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

#: Phases whose seconds grow with epochs and pixels; the others are paid once per run.
PER_EPOCH_PHASES = ("train", "evaluate", "checkpoint")


@dataclass(frozen=True)
class EarlierRun:
    """What an estimate needs of a finished run: its phase seconds, epochs trained, image side (px), folds."""

    phases: dict[str, float]
    epochs_done: int
    image_size: int
    folds: int = 0


def estimate_seconds(earlier: Optional[EarlierRun], *, epochs: int, image_size: int, folds: int = 0) -> Optional[float]:
    """Expected wall seconds of a run of `epochs` at `image_size` px (with `folds` fold models), or None
    without an earlier run that trained at least one epoch. An upper estimate when early stopping ends it sooner."""
    if earlier is None or earlier.epochs_done < 1:
        return None
    per_epoch_model = sum(earlier.phases.get(name, 0.0) for name in PER_EPOCH_PHASES) / (
        earlier.epochs_done * _models(earlier.folds))
    once = sum(seconds for name, seconds in earlier.phases.items() if name not in PER_EPOCH_PHASES)
    pixels = (image_size / earlier.image_size) ** 2
    return once + per_epoch_model * pixels * epochs * _models(folds)


def _models(folds: int) -> int:
    """Models a run trains: the final one, plus one per fold."""
    return 1 + max(0, int(folds))


def describe_seconds(seconds: float) -> str:
    """e.g. 45 -> "about 45 s", 380 -> "about 6 min", 5400 -> "about 1.5 h"."""
    if seconds < 90:
        return f"about {max(1, round(seconds))} s"
    if seconds < 5400:
        return f"about {round(seconds / 60)} min"
    return f"about {seconds / 3600:.1f} h"
