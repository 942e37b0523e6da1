"""The progress callback every long step takes: `progress(fraction in [0, 1], message)`."""
from __future__ import annotations

from typing import Callable

ProgressCallback = Callable[[float, str], None]
