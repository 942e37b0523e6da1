"""Filling a page's caches in the background for what the reviewer's next key press is likely to show.

A page calls `in_background(work)` once it has drawn everything: `work` only calls cached
functions (reads and image decoding), draws nothing and changes nothing, so the next run finds
those results ready instead of computing them while the reviewer waits.
"""
from __future__ import annotations

import logging
import threading
from typing import Callable

from streamlit.runtime.scriptrunner import add_script_run_ctx, get_script_run_ctx

log = logging.getLogger(__name__)
#: The name of every warm-up thread.
THREAD_NAME = "cache-warm-up"


def in_background(work: Callable[[], None]) -> threading.Thread:
    """Start `work()` in a daemon thread with this run's context (cached functions read it) and return the thread."""
    thread = threading.Thread(target=_quietly, args=(work,), name=THREAD_NAME, daemon=True)
    add_script_run_ctx(thread, get_script_run_ctx(suppress_warning=True))
    thread.start()
    return thread


def _quietly(work: Callable[[], None]) -> None:
    try:
        work()
    except Exception:  # noqa: BLE001 - a failed warm-up costs nothing: the run that needs the value computes it
        log.debug("cache warm-up failed", exc_info=True)
