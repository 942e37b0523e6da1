"""The progress callback every long step takes: `progress(fraction in [0, 1], message)`."""
from __future__ import annotations

from typing import Callable

ProgressCallback = Callable[[float, str], None]


def within(progress: ProgressCallback, start: float, end: float, prefix: str = "") -> ProgressCallback:
    """A step's progress callback: its fraction done (clamped to [0, 1]) mapped onto [start, end] of
    `progress`, its messages after `prefix`. A finished step reports `end` exactly, so the next step's start
    is never below it and the bar never steps back."""
    def step(fraction: float, message: str) -> None:
        fraction = max(0.0, min(1.0, fraction))
        progress(end if fraction == 1.0 else start + (end - start) * fraction, f"{prefix}{message}")
    return step
